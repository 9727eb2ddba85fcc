"""Frames for analysis: any range of a recorded camera stream (or of a plain video
file), as grey or colour, debayering only the region asked for.

Frames are named by the camera's own counter (the journal's ``acq_nframe``), so a
dropped frame is a gap in the numbers, never a renumbering, and every frame comes
with its master-clock time (exposure start, after ``mmme align``; the host receive
time before). The RAW8 Bayer mosaic is reduced per 2x2 cell (R, the mean of both
G, B - no interpolation), so images are half the sensor's size; a region is given
in sensor pixels and rounded out to whole cells. Grey is the BT.601 luma of the
cells. White balance, where the recording set one, is applied to colour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.frames import BAYER_OFFSETS
from mmmelab.storage.session import CameraStream

Region = tuple[int, int, int, int]  # x, y, width, height in sensor pixels


@numba.njit(nogil=True, cache=False)
def _cells(
    raw: np.ndarray, y0: int, x0: int, h: int, w: int, ry: int, rx: int, by: int, bx: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    """float32 (h, w, 3) R, G, B of the 2x2 cells of ``raw`` from cell (y0, x0)."""
    gy, gx = ry, 1 - rx
    for i in range(h):
        cy = 2 * (y0 + i)
        for j in range(w):
            cx = 2 * (x0 + j)
            out[i, j, 0] = raw[cy + ry, cx + rx]
            out[i, j, 1] = 0.5 * (np.float32(raw[cy + gy, cx + gx]) + raw[cy + 1 - gy, cx + 1 - gx])
            out[i, j, 2] = raw[cy + by, cx + bx]


def debayer_region(
    raw: np.ndarray, region: Region | None = None, pattern: str = "RGGB",
    colour: bool = False, white_balance: tuple[float, float, float] | None = None,
) -> np.ndarray:  # fmt: skip
    """One frame's region at half resolution: float32 grey (h, w) or RGB (h, w, 3)."""
    full_h, full_w = raw.shape[0] // 2, raw.shape[1] // 2
    if region is None:
        x0, y0, w, h = 0, 0, full_w, full_h
    else:
        x, y, rw, rh = region
        x0, y0 = max(0, x // 2), max(0, y // 2)
        w = min(full_w, -(-(x + rw) // 2)) - x0
        h = min(full_h, -(-(y + rh) // 2)) - y0
        if w <= 0 or h <= 0:
            raise LabError(f"region {region} lies outside the {raw.shape[1]}x{raw.shape[0]} frame")
    (ry, rx), _, _, (by, bx) = BAYER_OFFSETS[pattern]
    out = np.empty((h, w, 3), np.float32)
    _cells(raw, y0, x0, h, w, ry, rx, by, bx, out)
    if not colour:
        return out @ np.array([0.299, 0.587, 0.114], np.float32)
    if white_balance is not None and tuple(white_balance) != (1.0, 1.0, 1.0):
        out *= np.asarray(white_balance, np.float32)
        np.minimum(out, 255.0, out=out)
    return out


@dataclass
class Frame:
    number: int  # the camera's acq_nframe (video files: the decoded index)
    t: float  # master clock, s (video files: the presentation time)
    image: np.ndarray


class SessionFrames:
    """The frames of a recorded camera stream (``open_session(...).streams["camera"]``)."""

    def __init__(self, camera: CameraStream) -> None:
        self.camera = camera
        self.store = camera.frames
        self.numbers = camera.journal["acq_nframe"].astype(np.int64)
        self.times = np.asarray(camera.master_time, dtype=np.float64)
        self.fps = float(camera.rate_hz)
        self.aligned = camera.aligned
        self.width, self.height = self.store.width, self.store.height

    def __len__(self) -> int:
        return len(self.numbers)

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Stored indices of the frames numbered ``first..last`` (inclusive)."""
        a = int(np.searchsorted(self.numbers, first, "left"))
        b = int(np.searchsorted(self.numbers, last, "right"))
        return a, b

    def missing(self, first: int, last: int) -> list[int]:
        """Frame numbers in ``first..last`` the recording does not hold (dropped)."""
        a, b = self.span(first, last)
        have = set(self.numbers[a:b].tolist())
        return [n for n in range(first, last + 1) if n not in have]

    def read(
        self, first: int | None = None, last: int | None = None, region: Region | None = None,
        colour: bool = False, step: int = 1,
    ) -> Iterator[Frame]:  # fmt: skip
        """Frames numbered ``first..last`` (inclusive; default all) that exist."""
        if not len(self):
            return
        lo = int(self.numbers[0]) if first is None else first
        hi = int(self.numbers[-1]) if last is None else last
        a, b = self.span(lo, hi)
        wb = self.store.white_balance if colour else None
        for i in range(a, b, step):
            img = debayer_region(self.store[i], region, self.store.bayer_pattern, colour, wb)
            yield Frame(int(self.numbers[i]), float(self.times[i]), img)

    def provenance(self) -> dict[str, Any]:
        return {"source": str(self.store.folder), "fps": self.fps, "frames": len(self),
                "clock": "master (aligned)" if self.aligned else "host receive time",
                "bayer_pattern": self.store.bayer_pattern, "reduction": "2x2 cells"}  # fmt: skip


class VideoFrames:
    """A plain video file (any codec PyAV reads, any fps), with the same ``read``: the
    decoded index as the frame number, the presentation time, full-resolution images
    and a region in the video's own pixels."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = Path(path)
        try:
            with av.open(str(self.path)) as f:
                stream = f.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else 0.0
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise LabError(f"{self.path}: not a readable video ({exc})") from None
        if self.fps <= 0:
            raise LabError(f"{self.path}: the video does not say its frame rate")
        self.aligned = False

    def read(
        self, first: int | None = None, last: int | None = None, region: Region | None = None,
        colour: bool = False, step: int = 1,
    ) -> Iterator[Frame]:  # fmt: skip
        import av

        lo, hi = first or 0, last
        with av.open(str(self.path)) as f:
            stream = f.streams.video[0]
            for i, fr in enumerate(f.decode(stream)):
                if hi is not None and i > hi:
                    break
                if i < lo or (i - lo) % step:
                    continue
                img = fr.to_ndarray(format="rgb24").astype(np.float32)
                if region is not None:
                    x, y, w, h = region
                    img = img[y : y + h, x : x + w]
                if not colour:
                    img = img @ np.array([0.299, 0.587, 0.114], np.float32)
                t = float(fr.time) if fr.time is not None else i / self.fps
                yield Frame(i, t, img)

    def provenance(self) -> dict[str, Any]:
        return {"source": str(self.path), "fps": self.fps, "clock": "video presentation time"}
