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
        img[_ellipse(height, width, cy - 0.08 * s, ex, 0.025 * s, 0.05 * s)] = (235, 235, 235)
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


@dataclass
class Rig:
    """What is around the simulated camera (fault and set-up injection): the lamps,
    the lens, and the exposure the scene's brightness was made for."""

    flicker_hz: float = 0.0  # lamp brightness oscillation (mains lamps: 100 or 120 Hz)
    flicker_depth: float = 0.0  # its modulation depth, 0..1
    focus_offset: float = 0.0  # lens ring turned away from focus (units: 1.5 px of blur each)
    reference_exposure_us: float = 5000.0  # the variants' brightness at gain 0 dB

    def light(self, t: float, exposure_s: float) -> float:
        """The lamp's mean relative brightness over the exposure [t, t + exposure_s]:
        an exposure of whole flicker periods averages the flicker away, as on a sensor."""
        if not (self.flicker_hz and self.flicker_depth):
            return 1.0
        w = 2.0 * np.pi * self.flicker_hz
        if exposure_s <= 0:
            return 1.0 + self.flicker_depth * float(np.cos(w * t))
        avg = (np.sin(w * (t + exposure_s)) - np.sin(w * t)) / (w * exposure_s)
        return 1.0 + self.flicker_depth * float(avg)


class Scene:
    """The precomputed frame variants for one ROI, rendered through the rig."""

    CACHE = 48  # rendered (variant, brightness, focus) frames kept

    def __init__(
        self,
        width: int,
        height: int,
        schedule: MotionSchedule | None = None,
        rig: Rig | None = None,
    ) -> None:
        self.width = width
        self.height = height
        self.schedule = schedule or MotionSchedule()
        self.rig = rig or Rig()
        self.variants = [mosaic_rggb(face_rgb(height, width, e)) for e in (0.0, 1.0)]
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def frame(self, t: float, exposure_us: float | None = None, gain_db: float = 0.0) -> np.ndarray:
        """The mosaic exposed from ``t`` (lab seconds) for ``exposure_us`` at ``gain_db``."""
        variant = self.schedule.variant_at(t)
        rig = self.rig
        exposure_us = rig.reference_exposure_us if exposure_us is None else exposure_us
        gain = (exposure_us / rig.reference_exposure_us) * 10.0 ** (gain_db / 20.0)
        level = gain * rig.light(t, exposure_us * 1e-6)
        key = (variant, int(round(level * 512)), int(round(rig.focus_offset * 20)))
        if key[1:] == (512, 0):
            return self.variants[variant]  # the fast path: one memmove per frame
        out = self._cache.get(key)
        if out is None:
            out = self._render(self.variants[variant], key[1] / 512, key[2] / 20)
            if len(self._cache) >= self.CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = out
        return out

    @staticmethod
    def _render(raw: np.ndarray, level: float, focus_offset: float) -> np.ndarray:
        from scipy import ndimage

        img = raw.astype(np.float32)
        sigma = 1.5 * abs(focus_offset)
        if sigma > 0:  # defocus blurs each colour plane of the mosaic on its own
            for dy in (0, 1):
                for dx in (0, 1):
                    plane = img[dy::2, dx::2]
                    img[dy::2, dx::2] = ndimage.gaussian_filter(plane, sigma / 2.0)
        return np.ascontiguousarray(np.clip(img * level, 0, 255).astype(np.uint8))
