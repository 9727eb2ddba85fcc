"""Writing a session folder: :class:`SessionWriter` opens the streams' files, keeps
the manifest up to date and finalises the folder (the ``session.h5`` entry point,
the manifest's last status); a reserve file keeps room for that on a full disk.
:func:`check_output_root` tells before anything is created whether a folder can hold
sessions. The format is described in :mod:`mmmelab.storage.session`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmmelab import __version__
from mmmelab.errors import SessionFormatError
from mmmelab.storage.frames import FrameGeometry, chunk_name
from mmmelab.storage.framestore import FrameStore
from mmmelab.storage.manifest import (
    FORMAT,
    FORMAT_VERSION,
    SessionStatus,
    write_manifest,
)
from mmmelab.storage.session import TRIAL_DTYPE
from mmmelab.storage.signals import SignalFile, SignalSpec
from mmmelab.streams import StreamKind

logger = logging.getLogger(__name__)


RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 16 << 20  # freed at finalisation: room for the manifest on a full disk


def _reserve_space(path: Path, size: int) -> None:
    """Allocate ``size`` bytes on the disk now, so they can be given back when it is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:  # a filesystem without fallocate: write it
            os.write(fd, bytes(size))
    finally:
        os.close(fd)


def check_output_root(root: Path) -> None:
    """Make sure sessions can be written under ``root`` (created if missing).

    Raises SessionFormatError with one line naming the folder and the reason: it is a
    file or a device, lies under a file, is read-only or not ours to write. Called
    before any device is opened, so a bad ``--out`` costs nothing.
    """
    if root.exists() and not root.is_dir():
        raise SessionFormatError(f"{root}: cannot hold sessions (it is a file, not a folder)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".mmme-write-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, NotADirectoryError):
            reason = "a part of the path is a file, not a folder"
        raise SessionFormatError(f"{root}: cannot write sessions there ({reason})") from None


def session_folder_name(participant: str, session: int, when: dt.datetime) -> str:
    """``sub-<id>_ses-<nn>_<start time>``: the session's folder name."""
    return f"sub-{participant}_ses-{session:02d}_{when.strftime('%Y%m%dT%H%M%S')}"


class SessionWriter:
    """Creates and fills one session folder. Used by the engine's control thread.

    The manifest is written at once (status ``recording``); ``finalize`` closes
    the writers, writes ``session.h5`` and the final manifest.
    """

    def __init__(
        self, root: Path, manifest_fields: dict[str, Any], participant: str, session: int
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        root.mkdir(parents=True, exist_ok=True)
        self.folder = root / session_folder_name(participant, session, now)
        suffix = 1
        while self.folder.exists():
            suffix += 1
            self.folder = root / f"{session_folder_name(participant, session, now)}-{suffix}"
        self.folder.mkdir()
        self.manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "software": {"name": "mmme-lab", "version": __version__},
            "session_id": self.folder.name,
            "status": SessionStatus.RECORDING.value,
            "created_utc": now.isoformat(),
            "ended_utc": None,
            "streams": {},
            "problems": [],
            **manifest_fields,
        }
        write_manifest(self.folder, self.manifest)
        self.signals: SignalFile | None = None
        self._reserve = self.folder / RESERVE_FILE
        free = shutil.disk_usage(self.folder).free
        _reserve_space(self._reserve, int(min(RESERVE_BYTES, free // 8)))

    @property
    def camera_folder(self) -> Path:
        return self.folder / "camera"

    def open_streams(
        self,
        camera: FrameGeometry | None,
        signals: list[SignalSpec],
        camera_info: dict[str, Any] | None = None,
        logs: dict[str, np.dtype] | None = None,
    ) -> None:
        """Create the signal file and declare the streams; called once devices are connected.

        Camera frames are written by a frame writer (``mmmelab.storage.writer``, its
        own process) into ``camera_folder``; this only declares the stream.
        """
        streams: dict[str, Any] = {}
        if camera is not None:
            streams["camera"] = {
                "kind": StreamKind.CAMERA,
                "path": "camera/",
                **(camera_info or {}),
            }
        self.signals = SignalFile(
            self.folder / "signals.h5", signals, logs={"trials": TRIAL_DTYPE, **(logs or {})}
        )
        for spec in signals:
            streams[spec.name] = {
                "kind": spec.kind,
                "path": f"signals.h5:/{spec.name}",
                "rate_hz": spec.rate_hz,
                "channels": len(spec.channels),
            }
        streams["markers"] = {"kind": StreamKind.MARKERS, "path": "signals.h5:/markers/log"}
        self.manifest["streams"] = streams
        write_manifest(self.folder, self.manifest)

    def update(self, **fields: Any) -> None:
        self.manifest.update(fields)
        write_manifest(self.folder, self.manifest)

    def finalize(self, status: SessionStatus, extra: dict[str, Any] | None = None) -> None:
        """Close the signal file, write the ``session.h5`` entry point and the final manifest.

        The frame writer must have finished before (the engine stops it first). Every
        step runs whatever the one before did; the space reserved at the start is
        freed first, so the manifest is written even on a full disk. Raises
        SessionFormatError only when the manifest itself cannot be written.
        """
        self._reserve.unlink(missing_ok=True)
        if self.signals is not None:
            try:
                self.signals.close()
            except Exception as exc:  # the manifest must still be written
                logger.exception("closing signals.h5")
                self.signals.error = self.signals.error or f"closing failed: {exc}"
            if self.signals.error is not None:
                self.manifest["problems"].append(f"signal writer failed: {self.signals.error}")
                # the fault rows may not be in signals.h5: keep them here
                self.manifest["faults"] = self.signals.fault_rows
                self.manifest["signal_writer_log"] = self.signals.log_lines[-20:]
        extra = dict(extra or {})
        self.manifest["problems"] = [*self.manifest["problems"], *extra.pop("problems", [])]
        self.manifest.update(extra)
        self.manifest["status"] = status.value
        self.manifest["ended_utc"] = dt.datetime.now(dt.UTC).isoformat()
        try:
            self._write_entry_point()
        except (OSError, ValueError, SessionFormatError) as exc:
            logger.error("could not write session.h5: %s", exc)
            with contextlib.suppress(OSError):
                (self.folder / "session.h5").unlink(missing_ok=True)  # give its space back
            self.manifest["problems"].append(f"session.h5 not written: {exc}")
        try:
            write_manifest(self.folder, self.manifest)
        except OSError as exc:
            raise SessionFormatError(
                f"{self.folder / 'session.json'}: the final manifest could not be written "
                f"({exc.strerror or exc}); the data files are readable, the session stays "
                f"marked 'recording'"
            ) from None

    def _write_entry_point(self) -> None:
        with h5py.File(self.folder / "session.h5", "w") as entry:
            entry.attrs["manifest"] = json.dumps(self.manifest, default=str)
            entry.attrs["note"] = (
                "Signals are external links into signals.h5; camera/frames "
                "maps the raw frame files without copying. HDF5 looks for "
                "those files relative to the working directory unless "
                "HDF5_EXTFILE_PREFIX='${ORIGIN}' is set."
            )
            if self.signals is not None:
                for name in (*self.signals.specs, *self.signals.logs, "markers", "faults"):
                    entry[name] = h5py.ExternalLink("signals.h5", f"/{name}")
            if (self.camera_folder / "camera.json").exists():
                self._link_camera(entry)

    def _link_camera(self, entry: h5py.File) -> None:
        store = FrameStore(self.camera_folder)
        try:
            if not len(store):
                return
            # the frames dataset maps the chunk files in order: only the run of frames
            # from the first that has no hole (a missing chunk file ends it)
            index = store.journal["index"].astype(np.int64)
            holes = np.flatnonzero(index != np.arange(len(index)))
            n = int(holes[0]) if len(holes) else len(index)
            if not n:
                return
            cam = entry.create_group("camera")
            cam.create_dataset("journal", data=store.journal[:n])
            per, stride = store.per_chunk, store.stride
            segments = [
                (f"camera/{chunk_name(chunk)}", 0, min(per, n - chunk * per) * stride)
                for chunk in range(-(-n // per))
            ]
            cam.create_dataset("frames", shape=(n, stride), dtype="u1", external=segments)
            for key, value in store.meta.items():
                if not isinstance(value, list):
                    cam.attrs[key] = value
        finally:
            store.close()
