"""``mmme consolidate SESSION --to DIR``: a session whose frames are striped over
several volumes gathered into one self-contained folder.

Every file of the session folder is copied and its SHA-256 compared with the
source's. The camera's frames are read from whichever volume holds each one (the
journal says) and written into the usual chunk files of the new folder; each
chunk's SHA-256, computed from the frames as they were read, is compared with
the file read back from the new folder. The merged journal names volume 0 for
every frame. Frames a lost volume took with it stay missing, and the new
``camera.json`` says how many and why (``frames_lost``). The source is left as
it was: deleting it is the user's call, after the check.

A target without room for the session is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.checksum import sha256
from mmmelab.storage.frames import JOURNAL_DTYPE, chunk_name
from mmmelab.storage.framestore import FrameStore

CAMERA = "camera"
_CAMERA_OWN = ("camera.json", "journal.bin")


def _plain_files(folder: Path) -> list[Path]:
    """The session's files, except the camera's frames and journals (gathered apart)."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if (
            not p.is_file()
            or rel.parts[0] == CAMERA
            and (p.name.startswith(("frames-", "journal")) or p.name in _CAMERA_OWN)
        ):
            continue
        out.append(p)
    return out


def consolidate(session: Path, to: Path,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Copy ``session`` into ``to/<session name>`` with every frame in its camera folder;
    returns a summary (files, frames, bytes, what was verified, what is missing)."""
    session = Path(session)
    cam = session / CAMERA
    if not (cam / "camera.json").is_file():
        raise LabError(f"{session}: no camera recording ({cam / 'camera.json'})")
    store = FrameStore(cam)
    try:
        dest = Path(to) / session.name
        if dest.exists():
            raise LabError(f"{dest}: already exists; consolidate into an empty place")
        plain = _plain_files(session)
        need = sum(p.stat().st_size for p in plain) + len(store) * store.stride
        Path(to).mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(to).free
        if free < need * 1.01 + (64 << 20):
            raise LabError(f"{to}: {free / 1e9:.1f} GB free, the session needs "
                           f"{need / 1e9:.1f} GB; nothing was written")  # fmt: skip
        verified = _copy_plain(session, dest, plain)
        frames = _gather_frames(store, dest / CAMERA, progress)
    finally:
        store.close()
    return {"session": str(session), "to": str(dest), "files": verified,
            "frames": frames["frames"], "chunks": frames["chunks"], "bytes": need,
            "volumes": [str(v) for v in store.volumes], "frames_lost": store.missing}  # fmt: skip


def _copy_plain(session: Path, dest: Path, files: list[Path]) -> int:
    for src in files:
        out = dest / src.relative_to(session)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
        if sha256(src) != sha256(out):
            raise LabError(f"{out}: the copy differs from {src} (checksum); the disk is suspect")
    return len(files)


def _gather_frames(store: FrameStore, cam: Path,
                   progress: Callable[[int, int], None] | None) -> dict[str, int]:  # fmt: skip
    cam.mkdir(parents=True, exist_ok=True)
    per, stride = store.per_chunk, store.stride
    journal = store.journal.copy()
    chunks = journal["index"].astype(np.int64) // per
    n_chunks = 0
    for chunk in np.unique(chunks).tolist():
        rows = np.flatnonzero(chunks == chunk)
        path = cam / chunk_name(int(chunk))
        h = hashlib.sha256()
        with open(path, "wb") as out:
            for i in rows.tolist():  # frame order: each chunk's frames by their place
                key, pos = store.locate(i)
                out.seek(pos * stride)
                data = os.pread(store.chunk_fd(key), stride, pos * stride)
                if len(data) != stride:
                    raise LabError(f"{store.chunk_path(key)}: frame {i} is cut short")
                out.write(data)
                h.update(data)
            out.flush()
            os.fsync(out.fileno())
        back = hashlib.sha256()
        with open(path, "rb") as fh:
            for i in rows.tolist():
                fh.seek(int(journal["index"][i]) % per * stride)
                back.update(fh.read(stride))
        if back.hexdigest() != h.hexdigest():
            raise LabError(f"{path}: the frames read back differ from the source (checksum)")
        n_chunks += 1
        if progress:
            progress(int(rows[-1]) + 1, len(journal))
    journal["volume"] = 0
    journal.astype(JOURNAL_DTYPE).tofile(cam / "journal.bin")
    meta = dict(store.meta)
    meta.pop("volumes", None)
    meta["consolidated_from"] = [str(v) for v in store.volumes]
    meta["frames_lost"] = dict(store.missing)
    (cam / "camera.json").write_text(json.dumps(meta, indent=2))
    return {"frames": len(journal), "chunks": n_chunks}
