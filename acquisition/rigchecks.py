"""The set-up checks before the first trial, as pure functions of the data.

Each check returns a :class:`Check`: a verdict (green / amber / red), one sentence
saying why, and the figures behind it, so the console can colour it, the session
manifest can keep it, and an analyst can later see how the rig was.

Camera
    ``exposure`` (histogram of the face box, saturated and crushed pixels),
    ``sharpness`` with :class:`FocusTracker` (best-so-far while the lens is turned)
    and ``flicker`` (spectrum of the face box's mean brightness; mains flicker at
    100/120 Hz aliases below the Nyquist frequency of the camera).
EEG and physiology
    in :mod:`mmmelab.acquisition.signalchecks`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage


class Verdict(enum.StrEnum):
    """A check's outcome: green (fine), amber (shown, passed), red (fix before Start)."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"


@dataclass
class Check:
    """One set-up check: its verdict, the reason in a line and the figures behind it."""

    name: str
    verdict: Verdict
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "figures": self.figures,
        }


def worst(checks: Sequence[Check]) -> Verdict:
    """The worst verdict of ``checks`` (green when there are none)."""
    order = [Verdict.GREEN, Verdict.AMBER, Verdict.RED]
    return max((c.verdict for c in checks), key=order.index, default=Verdict.GREEN)


# ---------------------------------------------------------------- camera


def exposure(box: np.ndarray, max_value: int = 255) -> Check:
    """Saturated (>= 98 % of full scale) and crushed (<= 2 %) shares of the face box's
    raw pixels, its mean level, and a 32-bin histogram."""
    px = np.asarray(box).ravel().astype(np.float64)
    if not px.size:
        return Check("exposure", Verdict.RED, "the face box is empty")
    sat = float(np.mean(px >= 0.98 * max_value))
    crushed = float(np.mean(px <= 0.02 * max_value))
    level = float(px.mean() / max_value)
    hist, _ = np.histogram(px, bins=32, range=(0, max_value + 1))
    figures = {
        "saturated_share": round(sat, 5),
        "crushed_share": round(crushed, 5),
        "mean_level": round(level, 4),
        "histogram": hist.tolist(),
    }
    if sat > 0.02 or crushed > 0.05 or not 0.10 <= level <= 0.90:
        verdict = Verdict.RED
    elif sat > 0.005 or crushed > 0.01 or not 0.20 <= level <= 0.80:
        verdict = Verdict.AMBER
    else:
        verdict = Verdict.GREEN
    if sat > 0.005:
        reason = f"{sat:.1%} of the face box is saturated: shorten the exposure or lower the gain"
    elif crushed > 0.01:
        reason = f"{crushed:.1%} of the face box is black: lengthen the exposure or add light"
    elif not 0.20 <= level <= 0.80:
        reason = f"the face box's mean level is {level:.0%} of full scale (aim for 20-80 %)"
    else:
        reason = f"mean level {level:.0%}, {sat:.2%} saturated, {crushed:.2%} crushed"
    return Check("exposure", verdict, reason, figures)


def grey(raw: np.ndarray) -> np.ndarray:
    """Half-resolution luminance of a Bayer mosaic: the mean of each 2x2 cell, so the
    pattern itself does not read as detail."""
    h, w = (raw.shape[0] // 2) * 2, (raw.shape[1] // 2) * 2
    r = raw[:h, :w].astype(np.float32)
    return 0.25 * (r[0::2, 0::2] + r[0::2, 1::2] + r[1::2, 0::2] + r[1::2, 1::2])


def sharpness(box: np.ndarray) -> float:
    """Focus figure of a face box (Bayer raw): the variance of the Laplacian of its
    luminance over its squared mean, so it does not change with the exposure."""
    g = grey(np.asarray(box))
    if g.size < 9:
        return 0.0
    lap = ndimage.laplace(g)
    mean = float(g.mean())
    return float(lap.var() / (mean * mean)) if mean > 0 else 0.0


class FocusTracker:
    """The sharpness while the lens is turned, and the best seen so far: the lens is
    at its peak when the current figure is back near the best."""

    def __init__(self) -> None:
        self.best = 0.0
        self.current = 0.0

    def update(self, box: np.ndarray) -> float:
        self.current = sharpness(box)
        self.best = max(self.best, self.current)
        return self.current

    def reset(self) -> None:
        self.best = self.current = 0.0

    def check(self) -> Check:
        if self.best <= 0:
            return Check("focus", Verdict.RED, "no image to judge the focus on")
        ratio = self.current / self.best
        figures = {
            "sharpness": round(self.current, 6),
            "best": round(self.best, 6),
            "of_best": round(ratio, 3),
        }
        if ratio >= 0.9:
            return Check("focus", Verdict.GREEN, f"at {ratio:.0%} of the sharpest seen", figures)
        verdict = Verdict.AMBER if ratio >= 0.7 else Verdict.RED
        return Check(
            "focus",
            verdict,
            f"at {ratio:.0%} of the sharpest seen: turn the focus ring back towards the peak",
            figures,
        )


MAINS_FLICKER_HZ = (100.0, 120.0)  # lamps on 50 / 60 Hz mains flicker at twice that


def alias_hz(f_hz: float, fps: float) -> float:
    """Where a brightness oscillation at ``f_hz`` appears when sampled at ``fps``."""
    return float(abs(f_hz - fps * round(f_hz / fps)))


def flicker(means: np.ndarray, fps: float, max_depth: float = 0.01) -> Check:
    """Lighting flicker from the face box's mean brightness, frame by frame.

    The modulation depth at each frequency is the amplitude over the mean (a
    Hann-windowed spectrum, amplitude-corrected). Mains flicker at 100 or 120 Hz is
    faster than the camera's Nyquist frequency at 150 fps, so it shows as a slow
    wave at its alias (100 Hz -> 50 Hz, 120 Hz -> 30 Hz at 150 fps).
    """
    x = np.asarray(means, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else 0.0
    if n < 2 * fps * 0.5 or mean <= 0:
        return Check("flicker", Verdict.RED, f"too few frames ({n}) to judge the lighting")
    win = np.hanning(n)
    spec = np.abs(np.fft.rfft((x - mean) * win)) * 2.0 / win.sum() / mean
    freqs = np.fft.rfftfreq(n, 1.0 / fps)
    usable = freqs >= 2.0  # slow drift (a head moving, auto-exposure) is not flicker
    k = int(np.argmax(np.where(usable, spec, 0.0)))
    depth, f_peak = float(spec[k]), float(freqs[k])
    aliases = {f: alias_hz(f, fps) for f in MAINS_FLICKER_HZ}
    resolution = fps / n
    mains = [f for f, a in aliases.items() if abs(f_peak - a) <= max(1.0, 2 * resolution)]
    figures = {
        "fps": fps,
        "frames": n,
        "peak_hz": round(f_peak, 2),
        "peak_depth": round(depth, 5),
        "aliases_hz": {f"{f:g}": a for f, a in aliases.items()},
        "spectrum_hz": freqs[:: max(1, n // 256)].round(2).tolist(),
        "spectrum_depth": spec[:: max(1, n // 256)].round(5).tolist(),
    }
    alias_text = ", ".join(f"{f:g} Hz shows at {a:g} Hz" for f, a in aliases.items())
    if depth <= max_depth:
        return Check(
            "flicker",
            Verdict.GREEN,
            f"steady light: no brightness oscillation above {max_depth:.0%} "
            f"(largest {depth:.2%} at {f_peak:.1f} Hz; at {fps:g} fps mains flicker "
            f"would alias: {alias_text})",
            figures,
        )
    if mains:
        return Check(
            "flicker",
            Verdict.RED,
            f"mains flicker: {depth:.1%} brightness oscillation at {f_peak:.1f} Hz, the "
            f"alias of {mains[0]:g} Hz lamp flicker at {fps:g} fps; use DC-powered "
            f"lights (or an exposure of a whole number of flicker periods)",
            figures,
        )
    return Check(
        "flicker",
        Verdict.AMBER,
        f"the light oscillates by {depth:.1%} at {f_peak:.1f} Hz (not a mains alias "
        f"at {fps:g} fps: a PWM-dimmed lamp or a screen?)",
        figures,
    )


# ---------------------------------------------------------------- EEG
