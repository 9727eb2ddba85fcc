"""Reading a recorded camera stream: the frames wherever they are, and what is missing.

:class:`FrameStore` reads what :class:`~mmmelab.storage.frames.FrameWriter` (one
per volume, for a striped recording) wrote: every writer's journal, merged in
frame order, and each frame from the chunk file on its volume.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmmelab.errors import SessionFormatError
from mmmelab.storage.frames import (
    FRAME_FORMAT_VERSION,
    JOURNAL_DTYPE,
    chunk_name,
    debayer_half,
)  # fmt: skip

if TYPE_CHECKING:
    from mmmelab.storage.framereads import FrameBlocks, RowReader

logger = logging.getLogger(__name__)


class FrameStore:
    """Read-only access to a recorded camera stream, frames memory-mapped from the files.

    ``store[i]`` is a ``height x width`` uint8 view into the mapped file (no copy).
    Only frames whose journal record is complete *and* whose bytes are on disk
    count, so a store opened after a crash shows exactly the frames that survived;
    journalled frames whose chunk file is missing or cut short are counted in
    ``missing`` (by reason), never read as garbage.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            meta = json.loads((folder / "camera.json").read_text())
        except (OSError, ValueError) as exc:
            raise SessionFormatError(f"{folder / 'camera.json'}: cannot be read ({exc})") from None
        if meta.get("format_version") != FRAME_FORMAT_VERSION:
            raise SessionFormatError(
                f"{folder / 'camera.json'}: unknown format_version {meta.get('format_version')!r}"
            )
        self.meta = meta
        self.width = int(meta["width"])
        self.height = int(meta["height"])
        self.stride = int(meta["stride_bytes"])
        self.per_chunk = int(meta["frames_per_chunk"])
        self.bayer_pattern = str(meta["bayer_pattern"])
        kr, kg, kb = (float(k) for k in meta.get("white_balance", (1.0, 1.0, 1.0)))
        self.white_balance = (kr, kg, kb)
        #: the folder of each volume (0: this one; a striped recording lists the others)
        self.volumes = [(folder / v).resolve() if not Path(v).is_absolute() else Path(v)
                        for v in meta.get("volumes", ["."])]  # fmt: skip
        journal, self.torn_records = self._read_journals(folder)
        #: journal records whose frame could not be found on disk, by reason
        self.missing: dict[str, int] = {}
        self._maps: dict[tuple[int, int], np.ndarray] = {}
        self._fds: dict[tuple[int, int], int] = {}
        self._direct_fds: dict[tuple[int, int], int] = {}
        self._open_lock = threading.Lock()  # readers in several threads open chunks
        #: None until a direct read was tried; then whether direct I/O works here
        self.direct_reads: bool | None = None
        self.direct_fallback = ""  # why reads went through the page cache instead
        on_disk = self._find_frames(journal)
        for why, n in (meta.get("frames_lost") or {}).items():  # lost before a consolidation
            self.missing[str(why)] = self.missing.get(str(why), 0) + int(n)
        #: whole journal records, whether or not their frame bytes survived
        self.journal_records = len(journal)
        self.journal = journal[on_disk] if not on_disk.all() else journal
        self.frame_files = sorted(p.name for p in folder.glob("frames-*.raw"))

    @staticmethod
    def _read_journals(folder: Path) -> tuple[np.ndarray, bool]:
        """Every writer's journal (``journal.bin``; ``journal-v<k>.bin`` of the writers of
        other volumes), whole records only, in frame order."""
        parts, torn = [], False
        for path in [folder / "journal.bin", *sorted(folder.glob("journal-v*.bin"))]:
            try:
                raw = np.fromfile(path, dtype=np.uint8)
            except OSError as exc:
                raise SessionFormatError(f"{path}: cannot be read ({exc})") from None
            whole = len(raw) // JOURNAL_DTYPE.itemsize
            parts.append(raw[: whole * JOURNAL_DTYPE.itemsize].view(JOURNAL_DTYPE))
            torn |= len(raw) % JOURNAL_DTYPE.itemsize != 0
        if len(parts) == 1:
            return parts[0], torn
        journal = np.concatenate(parts)
        journal = journal[np.argsort(journal["index"], kind="stable")]
        # a frame two writers both saved (a takeover right at a failure): read it once
        first = np.ones(len(journal), bool)
        first[1:] = journal["index"][1:] != journal["index"][:-1]
        return journal if first.all() else journal[first], torn

    def _find_frames(self, journal: np.ndarray) -> np.ndarray:
        """Which journalled frames are on disk; the others are counted in ``missing``."""
        positions = journal["index"].astype(np.int64)
        chunks = positions // self.per_chunk
        vols = journal["volume"].astype(np.int64)
        #: journalled frames per volume (whether or not their bytes survived)
        self.volume_frames = np.bincount(vols, minlength=len(self.volumes)).tolist()
        keys = vols * (1 << 32) + chunks
        uniq, counts = np.unique(keys, return_counts=True)
        # frames each chunk file holds (0: missing); chunks are mapped on first use
        self._held: dict[tuple[int, int], int] = {}
        held = np.zeros(len(uniq), np.int64)
        for k, (key, count) in enumerate(zip(uniq.tolist(), counts.tolist(), strict=True)):
            vol, chunk = divmod(int(key), 1 << 32)
            where = self._volume_text(vol)
            if vol >= len(self.volumes):
                self.missing[f"volume {vol} is not in camera.json"] = int(count)
                continue
            path = self.volumes[vol] / chunk_name(chunk)
            if not path.exists():
                gone = not self.volumes[vol].is_dir()
                why = (f"volume {vol} ({self.volumes[vol]}) is gone" if gone
                       else f"{where}{path.name} is missing")  # fmt: skip
                self.missing[why] = self.missing.get(why, 0) + int(count)
                continue
            held[k] = self._held[(vol, chunk)] = min(path.stat().st_size // self.stride,
                                                     self.per_chunk)  # fmt: skip
        slot = np.searchsorted(uniq, keys)
        on_disk = (positions % self.per_chunk) < held[slot]
        kept = np.bincount(slot[on_disk], minlength=len(uniq))
        for k, key in enumerate(uniq.tolist()):
            vol, chunk = divmod(int(key), 1 << 32)
            short = int(counts[k] - kept[k])
            if short and (vol, chunk) in self._held:
                self.missing[f"{self._volume_text(vol)}{chunk_name(chunk)} is cut short"] = short
        return on_disk

    def _volume_text(self, vol: int) -> str:
        """How a message names a volume: nothing for this folder, else its number and path."""
        if vol == 0:
            return ""
        return f"volume {vol} ({self.volumes[vol] if vol < len(self.volumes) else '?'}): "

    def locate(self, index: int) -> tuple[tuple[int, int], int]:
        """((volume, chunk), position in the chunk) of frame ``index``."""
        rec = self.journal[index]
        chunk, pos = divmod(int(rec["index"]), self.per_chunk)
        return (int(rec["volume"]), chunk), pos

    def chunk_path(self, key: tuple[int, int]) -> Path:
        """The file of chunk ``(volume, chunk)``."""
        path: Path = self.volumes[key[0]] / chunk_name(key[1])
        return path

    @property
    def frames_missing(self) -> int:
        """Journalled frames whose bytes are not on disk (deleted or truncated chunk files)."""
        return sum(self.missing.values())

    def __len__(self) -> int:
        return len(self.journal)

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range (0..{len(self) - 1})")
        key, pos = self.locate(index)
        m = self._maps.get(key)
        if m is None:
            m = self._maps[key] = np.memmap(self.chunk_path(key), np.uint8, mode="r",
                                            shape=(self._held[key], self.stride))  # fmt: skip
        flat = m[pos, : self.width * self.height]
        return flat.reshape(self.height, self.width)

    def read_rows(self, index: int, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``y0..y1-1`` of frame ``index`` read with ``pread`` into ``out`` (uint8,
        (y1 - y0, width)): unlike indexing, which maps the chunk, nothing stays mapped,
        so a long streaming read does not grow the process's memory."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range (0..{len(self) - 1})")
        if not 0 <= y0 < y1 <= self.height:
            raise ValueError(f"rows {y0}..{y1} outside the frame's 0..{self.height}")
        key, pos = self.locate(index)
        if out is None:
            out = np.empty((y1 - y0, self.width), np.uint8)
        fd = self.chunk_fd(key)
        offset = pos * self.stride + y0 * self.width
        n = os.preadv(fd, [memoryview(out.reshape(-1))], offset)  # type: ignore[arg-type]
        if n != out.nbytes:
            raise SessionFormatError(f"{self.chunk_path(key)}: frame {index} is cut short")
        return out

    def blocks(self, start: int = 0, stop: int | None = None, per_block: int = 16) -> FrameBlocks:
        """Frames ``start..stop-1`` in order, read ahead in blocks by a thread (see
        :class:`~mmmelab.storage.framereads.FrameBlocks`; use it as a context manager)."""
        from mmmelab.storage.framereads import FrameBlocks

        return FrameBlocks(self, start, stop, per_block)

    def chunk_fd(self, key: tuple[int, int]) -> int:
        with self._open_lock:
            fd = self._fds.get(key)
            if fd is None:
                fd = self._fds[key] = os.open(self.chunk_path(key), os.O_RDONLY)
            return fd

    def row_reader(self, y0: int, y1: int) -> RowReader:
        """A reader of rows ``y0..y1-1`` of any frame, with direct I/O where the file
        system allows it (one per thread: it owns its aligned buffer)."""
        if not 0 <= y0 < y1 <= self.height:
            raise ValueError(f"rows {y0}..{y1} outside the frame's 0..{self.height}")
        from mmmelab.storage.framereads import RowReader

        return RowReader(self, y0, y1)

    def direct_fd(self, key: tuple[int, int]) -> int | None:
        with self._open_lock:
            return self._open_direct(key)

    def _open_direct(self, key: tuple[int, int]) -> int | None:
        fd = self._direct_fds.get(key)
        if fd is None and self.direct_reads is not False:
            try:
                fd = os.open(self.chunk_path(key), os.O_RDONLY | os.O_DIRECT)
            except OSError as exc:  # tmpfs and some network file systems: no O_DIRECT
                if exc.errno != errno.EINVAL:
                    raise
                self.direct_reads = False
                self.direct_fallback = f"{self.folder}: no direct I/O here ({exc.strerror})"
                return None
            self._direct_fds[key] = fd
            self.direct_reads = True
        return fd

    def rgb(self, index: int) -> np.ndarray:
        """The frame debayered to RGB at half resolution (one pixel per 2x2 cell), with
        the white balance set at recording."""
        image: np.ndarray = debayer_half(self[index], self.bayer_pattern, self.white_balance)
        return image

    def close(self) -> None:
        # The maps close when the last view into them is released.
        self._maps.clear()
        for fd in [*self._fds.values(), *self._direct_fds.values()]:
            os.close(fd)
        self._fds.clear()
        self._direct_fds.clear()
