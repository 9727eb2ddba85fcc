"""Synthetic face frames for the simulated camera, as RAW8 Bayer (RGGB) mosaics.

A face-like oval on a green background: eyes, brows, a mouth. A few variants are
precomputed (neutral, and a micro-expression: brows raised and mouth corners
pulled up by a few pixels); a frame is then one ``memmove`` of a variant, so the
simulator never limits a benchmark. ``MotionSchedule`` says when the
micro-expressions happen - the ground truth later analysis is checked against.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.ogrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def face_rgb(height: int, width: int, expression: float = 0.0, seed: int = 3) -> np.ndarray:
    """An RGB uint8 face image; ``expression`` in [0, 1] raises brows and mouth corners."""
    img = np.empty((height, width, 3), np.float32)
    img[:] = (40, 170, 60)  # green backdrop
    cy, cx = height * 0.5, width * 0.5
    s = min(height, width)
    img[_ellipse(height, width, cy, cx, 0.40 * s, 0.30 * s)] = (225, 180, 150)
    lift = expression * 0.012 * s
    for side in (-1, 1):
        ex = cx + side * 0.11 * s
        img[_ellipse(height, width, cy - 0.08 * s, ex, 0.025 * s, 0.05 * s)] = (250, 250, 250)
        img[_ellipse(height, width, cy - 0.08 * s, ex, 0.02 * s, 0.02 * s)] = (60, 40, 30)
        img[_ellipse(height, width, cy - 0.15 * s - lift, ex, 0.01 * s, 0.06 * s)] = (90, 60, 40)
        img[
            _ellipse(height, width, cy + 0.17 * s - lift, cx + side * 0.09 * s, 0.015 * s, 0.03 * s)
        ] = (170, 60, 70)
    img[_ellipse(height, width, cy + 0.18 * s, cx, 0.02 * s, 0.09 * s)] = (170, 60, 70)
    rng = np.random.default_rng(seed)
    img += rng.normal(0.0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    """RAW8 Bayer mosaic (RGGB) of an RGB image."""
    h, w = rgb.shape[:2]
    raw = np.empty((h, w), np.uint8)
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[0::2, 1::2] = rgb[0::2, 1::2, 1]
    raw[1::2, 0::2] = rgb[1::2, 0::2, 1]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


@dataclass
class MotionSchedule:
    """Micro-expression events, seconds after the simulated lab's epoch: (onset, duration)."""

    events: list[tuple[float, float]] = field(
        default_factory=lambda: [(3.0 + 7.0 * k, 0.2) for k in range(2000)]
    )

    def variant_at(self, t: float) -> int:
        """0 = neutral, 1 = micro-expression, for a frame exposed ``t`` s after start."""
        i = bisect.bisect_right(self.events, (t, float("inf"))) - 1
        return int(i >= 0 and t < self.events[i][0] + self.events[i][1])


class Scene:
    """The precomputed frame variants for one ROI."""

    def __init__(self, width: int, height: int, schedule: MotionSchedule | None = None) -> None:
        self.width = width
        self.height = height
        self.schedule = schedule or MotionSchedule()
        self.variants = [mosaic_rggb(face_rgb(height, width, e)) for e in (0.0, 1.0)]

    def frame(self, t: float) -> np.ndarray:
        return self.variants[self.schedule.variant_at(t)]
