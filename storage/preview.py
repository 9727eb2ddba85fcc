"""Live preview frames: debayered and downscaled in numba, in a small shared buffer.

The disk-writer process renders the newest frame about 30 times a second into a
``PreviewBuffer``; the GUI (or anything else) reads the latest preview without
ever touching the camera path. Each preview pixel averages ``factor x factor``
Bayer cells (R, the mean of both G, B), so a 2040x1080 RAW8 frame at factor 2
becomes a 510x270 RGB image.
"""

from __future__ import annotations

from multiprocessing import shared_memory

import numba
import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.frames import BAYER_OFFSETS
from mmmelab.storage.ringbuffer import _attach_untracked, segment_name

HEADER_WORDS = 8  # seq, height, width, source acq_nframe, ...


@numba.njit(nogil=True, cache=False)
def debayer_downscale(
    raw: np.ndarray,
    out: np.ndarray,
    factor: int,
    ry: int,
    rx: int,
    by: int,
    bx: int,
    kr: int = 256,
    kg: int = 256,
    kb: int = 256,
) -> None:  # pragma: no cover - compiled
    """RGB ``out`` (h, w, 3) from Bayer ``raw``: each pixel averages factor^2 2x2 cells,
    times the white balance gains ``kr, kg, kb`` (in 1/256), clipped at 255."""
    h, w = out.shape[0], out.shape[1]
    gy, gx = ry, 1 - rx  # the G on the red row
    n = factor * factor
    for y in range(h):
        for x in range(w):
            r = 0
            g = 0
            b = 0
            for dy in range(factor):
                cy = 2 * (y * factor + dy)
                for dx in range(factor):
                    cx = 2 * (x * factor + dx)
                    r += raw[cy + ry, cx + rx]
                    b += raw[cy + by, cx + bx]
                    g += raw[cy + gy, cx + gx] + raw[cy + 1 - gy, cx + 1 - gx]
            out[y, x, 0] = min(255, r * kr // (256 * n))
            out[y, x, 1] = min(255, g * kg // (512 * n))
            out[y, x, 2] = min(255, b * kb // (256 * n))


def preview_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """(height, width) of a preview that halves the RAW frame (debayer) and shrinks it
    ``factor`` times."""
    return height // (2 * factor), width // (2 * factor)


WB_UNITY = (1.0, 1.0, 1.0)


def render(
    raw: np.ndarray,
    out: np.ndarray,
    factor: int,
    pattern: str = "RGGB",
    white_balance: tuple[float, float, float] = WB_UNITY,
) -> None:
    """Debayer and shrink the RAW8 frame ``raw`` into the RGB image ``out``, with the white
    balance applied (numba; on the calling thread)."""
    (ry, rx), _, _, (by, bx) = BAYER_OFFSETS[pattern]
    kr, kg, kb = (int(round(k * 256)) for k in white_balance)
    debayer_downscale(raw, out, factor, ry, rx, by, bx, kr, kg, kb)


class PreviewBuffer:
    """Latest-frame preview in shared memory (double-buffered, sequence-checked)."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm: shared_memory.SharedMemory | None = shm
        self.owner = owner
        self.name = shm.name
        self.header = np.ndarray((HEADER_WORDS,), dtype=np.int64, buffer=shm.buf)
        h, w = int(self.header[1]), int(self.header[2])
        self.images = np.ndarray(
            (2, h, w, 3), dtype=np.uint8, buffer=shm.buf, offset=HEADER_WORDS * 8
        )

    @classmethod
    def create(cls, height: int, width: int) -> PreviewBuffer:
        size = HEADER_WORDS * 8 + 2 * height * width * 3
        shm = shared_memory.SharedMemory(segment_name("preview"), create=True, size=size)
        header = np.ndarray((HEADER_WORDS,), dtype=np.int64, buffer=shm.buf)
        header[:] = 0
        header[1], header[2] = height, width
        return cls(shm, owner=True)

    @classmethod
    def attach(cls, name: str) -> PreviewBuffer:
        try:
            return cls(_attach_untracked(name), owner=False)
        except FileNotFoundError:
            raise LabError(f"preview buffer {name!r} does not exist") from None

    def publish(
        self,
        raw: np.ndarray,
        factor: int,
        pattern: str,
        acq_nframe: int,
        scratch: bool = False,
        white_balance: tuple[float, float, float] = WB_UNITY,
    ) -> None:
        """Render ``raw`` as the newest preview (``scratch``: only compile, publish nothing)."""
        if scratch:
            h, w = preview_shape(raw.shape[0], raw.shape[1], factor)
            render(raw, np.empty((h, w, 3), np.uint8), factor, pattern, white_balance)
            return
        seq = int(self.header[0]) + 1
        render(raw, self.images[seq % 2], factor, pattern, white_balance)
        self.header[3] = acq_nframe
        self.header[0] = seq

    def put(self, rgb: np.ndarray, acq_nframe: int) -> None:
        """Publish an image rendered elsewhere (same shape as the buffer's)."""
        seq = int(self.header[0]) + 1
        self.images[seq % 2] = rgb
        self.header[3] = acq_nframe
        self.header[0] = seq

    def seq(self) -> int:
        """How many previews were published (cheap: tells whether ``latest`` is new)."""
        return int(self.header[0])

    def latest(self) -> tuple[int, int, np.ndarray] | None:
        """(seq, acq_nframe, RGB copy) of the newest preview, or None before the first."""
        seq = int(self.header[0])
        if seq == 0:
            return None
        image = self.images[seq % 2].copy()
        nframe = int(self.header[3])
        if int(self.header[0]) > seq + 1:  # overwritten while copying: take the next
            return self.latest()
        return seq, nframe, image

    def close(self) -> None:
        if self._shm is None:
            return
        self.header = self.images = None  # type: ignore[assignment]
        shm, self._shm = self._shm, None
        shm.close()
        if self.owner:
            shm.unlink()
