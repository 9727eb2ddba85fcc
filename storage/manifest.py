"""``session.json``: the versioned, self-describing manifest of a session folder.

It is written when the session starts (status ``recording``) and rewritten
atomically (temporary file, fsync, rename) whenever something worth keeping
changes; a crash therefore leaves either the old or the new manifest, never half
of one. A manifest still saying ``recording`` after the recorder is gone means
the recorder did not finish: the data are readable, the session is incomplete.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from pathlib import Path
from typing import Any

from mmmelab.errors import SessionFormatError

FORMAT = "mmme-session"
FORMAT_VERSION = 1
MANIFEST = "session.json"


class SessionStatus(enum.StrEnum):
    """How a session ended, as its manifest says."""

    RECORDING = "recording"  # written at start; still there after a crash
    COMPLETE = "complete"  # the protocol ran to its end and the session was finalised
    ABORTED = "aborted"  # the experimenter stopped early; data finalised
    FAILED = "failed"  # a fault ended the session; data finalised as far as possible


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Atomically replace ``folder/session.json``."""
    tmp = folder / (MANIFEST + ".tmp")
    data = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / MANIFEST)
    except OSError:
        with contextlib.suppress(OSError):  # a half-written copy must not hold the space
            tmp.unlink(missing_ok=True)
        raise


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``session.json``; SessionFormatError says what is wrong and where."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SessionFormatError(f"{folder}: not a session folder (no such folder)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionFormatError(
            f"{folder}: not a session folder ({MANIFEST} is missing)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionFormatError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SessionFormatError(
            f"{path}: is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SessionFormatError(
            f'{path}: not an mmme-lab session manifest ("format" is not {FORMAT!r})'
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise SessionFormatError(
            f"{path}: format_version {version!r} is not supported by this "
            f"version of mmme-lab (it reads version {FORMAT_VERSION})"
        )
    status = manifest.get("status")
    if status not in {s.value for s in SessionStatus}:
        raise SessionFormatError(
            f"{path}: status {status!r} is not one of {', '.join(s.value for s in SessionStatus)}"
        )
    for key in ("participant", "streams", "clock"):
        if not isinstance(manifest.get(key), dict):
            raise SessionFormatError(f'{path}: "{key}" is missing or not an object')
    _check_shapes(path, manifest)
    return manifest


def _check_shapes(path: Path, manifest: dict[str, Any]) -> None:
    """The parts readers rely on have the types they expect (a hand-edited or damaged
    manifest is refused here in one line, not with a traceback somewhere later)."""

    def bad(key: str, what: str) -> SessionFormatError:
        return SessionFormatError(f'{path}: "{key}" {what}')

    participant = manifest["participant"]
    if not isinstance(participant.get("id"), str):
        raise bad("participant.id", "is missing or not a string")
    consent = participant.get("consent_level", 2)
    if isinstance(consent, bool) or consent not in (1, 2):
        raise bad("participant.consent_level", f"is {consent!r}; must be 1 or 2")
    for name, stream in manifest["streams"].items():
        if not isinstance(stream, dict) or not isinstance(stream.get("kind"), str):
            raise bad(f"streams.{name}", 'is not an object with a "kind"')
        if not isinstance(stream.get("path", ""), str):
            raise bad(f"streams.{name}.path", "is not a string")
    problems = manifest.get("problems", [])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise bad("problems", "is not a list of strings")
    for key in ("protocol", "telemetry", "lab", "devices"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise bad(key, "is not an object")
    protocol = manifest.get("protocol", {})
    for key in ("practice", "trial_order"):
        if key in protocol and not isinstance(protocol[key], list):
            raise bad(f"protocol.{key}", "is not a list")
    fps = manifest["streams"].get("camera", {}).get("fps", 0.0)
    if isinstance(fps, bool) or not isinstance(fps, int | float):
        raise bad("streams.camera.fps", "is not a number")
