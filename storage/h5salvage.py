"""Opening ``signals.h5`` without ever hanging, and saving what a cut file still holds.

Three cases, told apart from the superblock alone (no HDF5 call):

- **closed cleanly, whole**: opened directly, without SWMR. A damaged metadata
  block then fails at once instead of being retried.
- **left open by its writer** (the recorder died; the consistency flags are
  set): opened with SWMR, which such a file needs - but only after a child
  process has walked all its metadata within a time limit. HDF5's SWMR reader
  retries a bad checksum for many minutes (``mmme check`` once hung 590 s).
- **cut short** (the file is shorter than the end address HDF5 recorded: a full
  disk, a partial copy): a child process reads every dataset through a view that
  pads the missing tail with zeros and clears the consistency flags, keeps only
  the rows whose chunks lie wholly inside the surviving bytes, and writes them
  to a salvage copy outside the session folder. Each dataset carries
  ``salvage_rows_written`` (its length in the cut file) so the loss is counted.
  A child is used because HDF5 may crash on damaged metadata.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PROBE_TIMEOUT_S = 20.0
SALVAGE_TIMEOUT_S = 120.0
WRITTEN_ATTR = "salvage_rows_written"
NOTES_ATTR = "salvage_notes"


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum HDF5 puts on its metadata."""
    m = 0xFFFFFFFF
    a = b = c = (0xDEADBEEF + len(data) + initval) & m
    n = len(data)
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & m
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & m
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & m
        a = (a - c) & m
        a ^= _rot(c, 4)
        c = (c + b) & m
        b = (b - a) & m
        b ^= _rot(a, 6)
        a = (a + c) & m
        c = (c - b) & m
        c ^= _rot(b, 8)
        b = (b + a) & m
        a = (a - c) & m
        a ^= _rot(c, 16)
        c = (c + b) & m
        b = (b - a) & m
        b ^= _rot(a, 19)
        a = (a + c) & m
        c = (c - b) & m
        c ^= _rot(b, 4)
        b = (b + a) & m
        i += 12
        n -= 12
    if n == 0:
        return c
    tail = data[i:] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c ^= b
    c = (c - _rot(b, 14)) & m
    a ^= c
    a = (a - _rot(c, 11)) & m
    b ^= a
    b = (b - _rot(a, 25)) & m
    c ^= b
    c = (c - _rot(b, 16)) & m
    a ^= c
    a = (a - _rot(c, 4)) & m
    b ^= a
    b = (b - _rot(a, 14)) & m
    c ^= b
    c = (c - _rot(b, 24)) & m
    return c


def superblock(path: Path) -> dict[str, Any] | None:
    """Version, consistency flags, recorded end of file and checksum state of a version
    2/3 superblock (what HDF5 with ``libver='latest'`` writes), or None for others."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(48)
        size = os.path.getsize(path)
    except OSError:
        return None
    if len(head) < 48 or head[:8] != HDF5_SIGNATURE or head[8] not in (2, 3) or head[9] != 8:
        return None
    return {
        "version": head[8],
        "flags": head[11],
        "eof": int.from_bytes(head[28:36], "little"),
        "size": size,
        "checksum_ok": lookup3(head[:44]) == int.from_bytes(head[44:48], "little"),
        "head": head,
    }


class _Padded(io.RawIOBase):
    """A read-only view of a cut HDF5 file: its recorded length, the missing tail as
    zeros, and a superblock whose consistency flags are cleared (checksum redone)."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        self._fh = open(path, "rb")  # closed with the view
        self._size = max(int(info["eof"]), int(info["size"]))
        self._pos = 0
        head = bytearray(info["head"])
        head[11] = 0
        head[44:48] = lookup3(bytes(head[:44])).to_bytes(4, "little")
        self._head = bytes(head)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        self._fh.seek(self._pos)
        got = self._fh.readinto(view[:n]) or 0
        view[got:n] = bytes(n - got)
        for i in range(max(self._pos, 0), min(self._pos + n, len(self._head))):
            view[i - self._pos] = self._head[i]
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _salvage(src: str, dst: str) -> None:
    """Child process: copy every readable row of a cut file into ``dst``; then exit hard
    (closing a file with damaged metadata can crash HDF5)."""
    import h5py
    import numpy as np

    path = Path(src)
    info = superblock(path)
    assert info is not None
    notes: list[str] = []
    source = h5py.File(_Padded(path, info), "r")
    with h5py.File(dst, "w") as out:

        def copy(group: Any, name: str) -> None:
            try:
                obj = group[name]
                path_ = obj.name.lstrip("/")
                if isinstance(obj, h5py.Group):
                    out.require_group(path_).attrs.update(dict(obj.attrs))
                    for key in list(obj):
                        copy(obj, key)
                    return
                rows = _rows_inside(obj, int(info["size"]))
                data = obj[:rows] if obj.shape else obj[()]
                ds = out.create_dataset(path_, data=np.asarray(data), dtype=obj.dtype)
                ds.attrs.update(dict(obj.attrs))
                ds.attrs[WRITTEN_ATTR] = int(obj.shape[0]) if obj.shape else 1
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                notes.append(f"{group.name.rstrip('/')}/{name}: {str(exc)[:120]}")

        try:
            for key in list(source):
                copy(source, key)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            notes.append(f"(file): {str(exc)[:120]}")
        out.attrs[NOTES_ATTR] = json.dumps(notes)
    sys.stdout.flush()
    os._exit(0)


def _rows_inside(ds: Any, size: int) -> int:
    """Leading rows of ``ds`` whose chunks lie wholly inside the first ``size`` bytes."""
    if not ds.shape:
        return 0
    if ds.chunks is None:
        offset = ds.id.get_offset()
        whole = offset is not None and offset + ds.id.get_storage_size() <= size
        return int(ds.shape[0]) if whole else 0
    first_bad = int(ds.shape[0])
    for i in range(ds.id.get_num_chunks()):
        chunk = ds.id.get_chunk_info(i)
        if chunk.byte_offset is None or chunk.byte_offset + chunk.size > size:
            first_bad = min(first_bad, int(chunk.chunk_offset[0]))
    return min(first_bad, int(ds.shape[0]))


def _walk(path: str) -> None:
    """Child process: touch every piece of metadata a SWMR reader will need."""
    import h5py

    with h5py.File(path, "r", libver="latest", swmr=True) as f:

        def visit(_: str, obj: Any) -> None:
            dict(obj.attrs)
            if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
                for i in range(obj.id.get_num_chunks()):
                    obj.id.get_chunk_info(i)

        f.visititems(visit)


def _child(function: str, args: list[str], timeout_s: float) -> str | None:
    """Run one of this module's child functions; None on success, else why not."""
    code = (
        f"import sys; from mmmelab.storage.h5salvage import {function}; {function}(*sys.argv[1:])"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"its metadata could not be read within {timeout_s:g} s"
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return f"its metadata is damaged ({lines[-1][:160] if lines else 'unreadable'})"
    return None


def probe_open(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """For a file left open by its writer: can a SWMR reader walk it in time? None if so."""
    return _child("_walk", [str(path)], timeout_s)


def salvage(path: Path, dst: Path, timeout_s: float = SALVAGE_TIMEOUT_S) -> str | None:
    """Copy what a cut file still holds into ``dst``; None on success, else why not."""
    problem = _child("_salvage", [str(path), str(dst)], timeout_s)
    if problem is None and not dst.exists():
        problem = "nothing could be copied out of it"
    return problem
