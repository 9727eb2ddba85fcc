"""Camera frames on disk: append-only chunk files plus a fixed-record journal.

Layout inside ``<session>/camera/``::

    camera.json          geometry, pixel format, stride, journal dtype, chunking
    frames-00000.raw     frames back to back, each padded to a 4096-byte stride
    frames-00001.raw     (a new chunk every ``frames_per_chunk`` frames)
    journal.bin          one 64-byte record per frame (JOURNAL_DTYPE)
    journal-v01.bin      striped recordings: the records of volume 1's writer, ...

Frame ``i`` lives in chunk ``i // frames_per_chunk`` at byte offset
``(i % frames_per_chunk) * stride``, in the folder of the volume its record
names (camera.json ``volumes``; 0 is this folder). Reading is
:mod:`~mmmelab.storage.framestore`. The journal record of a frame is written
only after the frame's bytes, both without user-space buffering, so a killed
recorder leaves every journalled frame complete on disk; a torn last record is
ignored. Padding each frame to a page multiple keeps writes aligned for direct
I/O.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.storage.directio import PAGE, aligned_buffer, direct_works, write_all

logger = logging.getLogger(__name__)

FRAME_FORMAT_VERSION = 1

#: One record per frame; 64 bytes, little-endian.
JOURNAL_DTYPE = np.dtype(
    [
        ("index", "<u8"),  # position of the frame in the chunk files
        ("acq_nframe", "<u8"),  # camera frame counter, reset only at acquisition start
        ("nframe", "<u4"),  # camera frame number (may reset on exposure/gain change)
        ("gpi_level", "<u4"),  # digital input levels at exposure start (bit 0 = GPI 1)
        ("ts_us", "<u8"),  # camera timestamp, unwrapped, microseconds
        ("exposure_us", "<u4"),
        ("flags", "<u4"),
        ("host_time", "<f8"),  # master clock (LSL local_clock) when the frame arrived, s
        ("api_skipped", "<u4"),  # API skipped-frame counter at this frame (cumulative)
        ("transport_skipped", "<u4"),  # transport skipped-frame counter (cumulative)
        ("gain_db", "<f4"),
        ("volume", "<u4"),  # the volume holding the frame (camera.json "volumes"); 0: this folder
    ]
)
assert JOURNAL_DTYPE.itemsize == 64

#: journal ``flags`` bits
FLAG_CLOCK_RESET = 1  # the first frame after a camera timestamp reset (a new time base)


def frame_stride(width: int, height: int, bytes_per_pixel: int = 1) -> int:
    """Bytes one frame occupies on disk: its pixels rounded up to a page multiple."""
    size = width * height * bytes_per_pixel
    return int(-(-size // PAGE) * PAGE)


@dataclass(frozen=True)
class FrameGeometry:
    """The stored frames' shape: size (px), pixel format, Bayer pattern and chunking."""

    width: int
    height: int
    pixel_format: str = "RAW8"
    bayer_pattern: str = "RGGB"
    frames_per_chunk: int = 900
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)  # kr, kg, kb; not applied

    @property
    def stride(self) -> int:
        return frame_stride(self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FRAME_FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "pixel_format": self.pixel_format,
            "bayer_pattern": self.bayer_pattern,
            "white_balance": list(self.white_balance),
            "frames_per_chunk": self.frames_per_chunk,
            "stride_bytes": self.stride,
            "page_bytes": PAGE,
            "journal_record_bytes": JOURNAL_DTYPE.itemsize,
            "journal_fields": [[n, JOURNAL_DTYPE[n].str] for n in JOURNAL_DTYPE.names or ()],
        }


def _whole_records(journal: Path) -> int:
    """Cut a torn last record off ``journal``; returns how many whole records it holds."""
    size = journal.stat().st_size
    whole = size // JOURNAL_DTYPE.itemsize
    if size % JOURNAL_DTYPE.itemsize:
        os.truncate(journal, whole * JOURNAL_DTYPE.itemsize)
    return whole


def chunk_name(chunk: int) -> str:
    """The file name of frame chunk number ``chunk``."""
    return f"frames-{chunk:05d}.raw"


class FrameWriter:
    """Appends frames and their journal records; one instance per recording.

    Called from a single thread (the camera writer). Frames go to disk with direct
    I/O (``O_DIRECT``) where the filesystem allows it: on this class of machine
    buffered writes with write-back reach about 0.3 GB/s, direct sequential
    writes several times that, and direct writes skip a copy through the page
    cache. A frame given as a page-aligned, full-stride buffer
    (:func:`aligned_buffer`) is written directly; anything else goes through a
    bounce buffer. Where direct I/O is refused the writer falls back to buffered
    writes, logs it and records ``direct_io: false`` in ``camera.json``. The
    journal record follows the frame with a plain ``os.write``, so a killed
    process loses nothing it already appended.
    """

    def __init__(
        self, folder: Path, geometry: FrameGeometry, direct: bool = True, resume: bool = False,
        volume: int = 0, journal_folder: Path | None = None, volumes: list[str] | None = None,
    ) -> None:  # fmt: skip
        """A striped recording (``volumes``: each volume's folder as camera.json lists it,
        the first ``"."``) has one writer per volume, each placing its frames with
        :meth:`append_at` / :meth:`append_run_at`. ``volume`` > 0: the writer of another
        volume; its chunk files go to ``folder`` (on that volume), its journal to
        ``journal-v<volume>.bin`` in ``journal_folder`` (the session's camera folder)."""
        self.folder = folder
        self.geometry = geometry
        self.volume = volume
        folder.mkdir(parents=True, exist_ok=True)
        journal = (Path(journal_folder or folder) / f"journal-v{volume:02d}.bin" if volume
                   else folder / "journal.bin")  # fmt: skip
        self.journal_path = journal
        #: frames this writer journalled before it was restarted (a striped resume)
        self.journalled = np.zeros(0, np.int64)
        placed = volume > 0 or bool(volumes and len(volumes) > 1)
        self._last_acq = -1
        if resume and placed:
            self.count = self._resume_placed()
        else:
            self.count = self._resume_point() if resume else 0
        #: camera frame counter of the last journalled frame (resume: skip what is written)
        self.last_acq_nframe = self._last_acq if resume else -1
        self.direct = direct and hasattr(os, "O_DIRECT") and direct_works(folder)
        if direct and not self.direct:
            logger.warning(
                "direct I/O is not available in %s; frames are written through the "
                "page cache (slower, more CPU)",
                folder,
            )
        meta = geometry.to_dict() | {"direct_io": self.direct}
        if volumes and len(volumes) > 1:
            meta["volumes"] = list(volumes)
        if volume == 0 and (not resume or not (folder / "camera.json").exists()):
            (folder / "camera.json").write_text(json.dumps(meta, indent=2))
        self._bounce = aligned_buffer(geometry.stride)
        self._journal_fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._placed: dict[int, int] = {}  # append_at: chunk -> its open descriptor
        self._chunk_fd = -1
        self._chunk = -1
        self.bytes_written = 0

    def _resume_placed(self) -> int:
        """A restarted writer of a striped recording: drop a torn journal record and
        remember which frames are journalled (frames are placed, so nothing to cut)."""
        path = self.journal_path
        if not path.exists():
            return 0
        whole = _whole_records(path)
        records = np.fromfile(path, JOURNAL_DTYPE, count=whole)
        self.journalled = np.sort(records["index"].astype(np.int64))
        return whole

    def _resume_point(self) -> int:
        """After a writer died: drop a torn journal record and frame bytes nobody
        journalled, so appending goes on exactly after the last complete frame."""
        journal = self.folder / "journal.bin"
        self._last_acq = -1
        if not journal.exists():
            return 0
        whole = _whole_records(journal)
        if whole:
            with open(journal, "rb") as fh:
                fh.seek((whole - 1) * JOURNAL_DTYPE.itemsize)
                last = np.frombuffer(fh.read(JOURNAL_DTYPE.itemsize), JOURNAL_DTYPE)
            self._last_acq = int(last["acq_nframe"][0])
        per, stride = self.geometry.frames_per_chunk, self.geometry.stride
        chunk, pos = divmod(whole, per)
        path = self.folder / chunk_name(chunk)
        if path.exists() and path.stat().st_size > pos * stride:
            os.truncate(path, pos * stride)
        for later in self.folder.glob("frames-*.raw"):
            if int(later.stem.split("-")[1]) > chunk:
                later.unlink()
        return whole

    def _open_chunk(self, chunk: int) -> None:
        if self._chunk_fd >= 0:
            os.close(self._chunk_fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_DIRECT if self.direct else 0)
        self._chunk_fd = os.open(self.folder / chunk_name(chunk), flags, 0o644)
        self._chunk = chunk

    def _slot(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` as one full-stride, page-aligned buffer: itself when it is one, else
        copied into the bounce buffer (zero-padded)."""
        stride = self.geometry.stride
        flat = frame.reshape(-1) if frame.flags.c_contiguous else np.ravel(frame)
        if flat.nbytes == stride and flat.ctypes.data % PAGE == 0:
            return flat
        n = min(flat.nbytes, stride)
        self._bounce[:n] = flat[:n]
        self._bounce[n:] = 0
        bounce: np.ndarray = self._bounce
        return bounce

    def append(self, frame: np.ndarray, record: np.ndarray) -> None:
        """Write one frame (``height x width`` uint8, or a full-stride buffer) and its record.

        ``record`` is a one-element JOURNAL_DTYPE array; its ``index`` is set here.
        """
        chunk = self.count // self.geometry.frames_per_chunk
        if chunk != self._chunk:
            self._open_chunk(chunk)
        stride = self.geometry.stride
        write_all(self._chunk_fd, self._slot(frame).data)
        record["index"] = self.count
        write_all(self._journal_fd, memoryview(record.tobytes()))
        self.count += 1
        self.bytes_written += stride

    def append_run(self, frames: np.ndarray, records: np.ndarray) -> None:
        """Write consecutive full-stride frames (``(m, stride)``, C-contiguous, page-aligned)
        with as few large writes as the chunk files allow, then their journal records.

        Used by the writer process on runs of ring slots, which are contiguous in memory.
        """
        per = self.geometry.frames_per_chunk
        stride = self.geometry.stride
        if frames.ndim != 2 or frames.shape[1] != stride or frames.ctypes.data % PAGE:
            for i in range(len(frames)):
                self.append(frames[i], records[i : i + 1])
            return
        done = 0
        while done < len(frames):
            chunk = self.count // per
            if chunk != self._chunk:
                self._open_chunk(chunk)
            take = min(len(frames) - done, per - self.count % per)
            write_all(self._chunk_fd, frames[done : done + take].reshape(-1).data)
            part = records[done : done + take]
            part["index"] = np.arange(self.count, self.count + take)
            write_all(self._journal_fd, memoryview(part.tobytes()))
            self.count += take
            self.bytes_written += take * stride
            done += take

    def append_at(self, index: int, frame: np.ndarray, record: np.ndarray) -> None:
        """Write frame ``index`` of the recording at its own place (chunk ``index //
        frames_per_chunk``, in this writer's folder) and its record, with this writer's
        volume: how the writers of a striped recording, each writing the chunks given to
        its volume, build one recording between them."""
        per, stride = self.geometry.frames_per_chunk, self.geometry.stride
        chunk, pos = divmod(index, per)
        write_all(self._placed_fd(chunk), self._slot(frame).data, pos * stride)
        record["index"] = index
        record["volume"] = self.volume
        write_all(self._journal_fd, memoryview(record.tobytes()))
        self.count += 1
        self.bytes_written += stride

    def append_run_at(self, index: int, frames: np.ndarray, records: np.ndarray) -> None:
        """Frames ``index .. index + len(frames) - 1`` (full-stride rows, all in one chunk)
        at their place, with one write, then their records (see :meth:`append_at`)."""
        per, stride = self.geometry.frames_per_chunk, self.geometry.stride
        chunk, pos = divmod(index, per)
        m = len(frames)
        if pos + m > per:
            raise ValueError(f"frames {index}..{index + m - 1} span two chunks")
        if m == 1 or frames.ndim != 2 or frames.shape[1] != stride or frames.ctypes.data % PAGE:
            for i in range(m):
                self.append_at(index + i, frames[i], records[i : i + 1])
            return
        write_all(self._placed_fd(chunk), frames.reshape(-1).data, pos * stride)
        records["index"] = np.arange(index, index + m)
        records["volume"] = self.volume
        write_all(self._journal_fd, memoryview(records.tobytes()))
        self.count += m
        self.bytes_written += m * stride

    def _placed_fd(self, chunk: int) -> int:
        fd = self._placed.get(chunk)
        if fd is None:
            if len(self._placed) >= 4:  # a chunk is done once the stripe moved on
                os.close(self._placed.pop(min(self._placed)))
            flags = os.O_WRONLY | os.O_CREAT | (os.O_DIRECT if self.direct else 0)
            fd = self._placed[chunk] = os.open(self.folder / chunk_name(chunk), flags, 0o644)
        return fd

    def sync_journal(self) -> None:
        """Put the journal on the disk (frames written with direct I/O already are)."""
        if self._journal_fd >= 0:
            os.fdatasync(self._journal_fd)

    def sync(self) -> None:
        """Ask the OS to put written data on the disk (protects against power loss)."""
        for fd in (self._chunk_fd, self._journal_fd):
            if fd >= 0:
                os.fdatasync(fd)

    def close(self) -> None:
        for fd in (self._chunk_fd, self._journal_fd, *self._placed.values()):
            if fd >= 0:
                os.close(fd)
        self._chunk_fd = self._journal_fd = -1
        self._placed.clear()


#: (R, G1, G2, B) positions (row, column) in the 2x2 cell, per Bayer pattern
BAYER_OFFSETS = {
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (0, 1), (1, 0), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (0, 0), (1, 1), (0, 1)),
}


def debayer_half(
    raw: np.ndarray, pattern: str = "RGGB", white_balance: tuple[float, float, float] | None = None
) -> np.ndarray:
    """RGB image at half resolution from a Bayer mosaic: R, mean of both G, B per 2x2 cell
    (each times its white balance gain, clipped at 255, when gains are given)."""
    (ry, rx), (g1y, g1x), (g2y, g2x), (by, bx) = BAYER_OFFSETS[pattern]
    h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
    r = raw[ry:h:2, rx:w:2]
    g = (raw[g1y:h:2, g1x:w:2].astype(np.uint16) + raw[g2y:h:2, g2x:w:2]) // 2
    b = raw[by:h:2, bx:w:2]
    if white_balance is not None and tuple(white_balance) != (1.0, 1.0, 1.0):
        gains = zip((r, g, b), white_balance, strict=True)
        planes = [np.minimum(255.0, p * k + 0.5) for p, k in gains]
        return np.dstack(planes).astype(np.uint8)
    return np.dstack([r, g.astype(np.uint8), b])
