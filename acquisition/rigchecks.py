"""The set-up checks before the first trial, as pure functions of the data.

Each check returns a :class:`Check`: a verdict (green / amber / red), one sentence
saying why, and the figures behind it, so the console can colour it, the session
manifest can keep it, and an analyst can later see how the rig was.

Camera
    ``exposure`` (histogram of the face box, saturated and crushed pixels),
    ``sharpness`` with :class:`FocusTracker` (best-so-far while the lens is turned)
    and ``flicker`` (spectrum of the face box's mean brightness; mains flicker at
    100/120 Hz aliases below the Nyquist frequency of the camera).
EEG
    ``impedances`` (kOhm against a threshold) or, without impedance data,
    ``eeg_signal_flags`` (flat / noisy / line noise per channel).
Physiology
    ``heart_rate`` (ECG R-peaks against PPG beats), ``eda``, ``breathing``,
    ``skin_temperature``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, signal


class Verdict(enum.StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


@dataclass
class Check:
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


def impedances(kohm: Sequence[float], labels: Sequence[str], threshold_kohm: float = 10.0) -> Check:
    """Electrode impedances against a threshold: red when any is above it, amber
    when any is above 70 % of it."""
    z = np.asarray(kohm, dtype=np.float64)
    high = [lab for lab, v in zip(labels, z, strict=True) if not v <= threshold_kohm]
    near = [
        lab for lab, v in zip(labels, z, strict=True) if 0.7 * threshold_kohm < v <= threshold_kohm
    ]
    figures = {
        "threshold_kohm": threshold_kohm,
        "kohm": dict(zip(labels, z.round(2).tolist(), strict=True)),
        "above": high,
        "near": near,
    }
    if high:
        return Check(
            "impedance",
            Verdict.RED,
            f"{len(high)} electrode(s) above {threshold_kohm:g} kOhm: {', '.join(high[:8])}"
            + (" ..." if len(high) > 8 else ""),
            figures,
        )
    if near:
        return Check(
            "impedance",
            Verdict.AMBER,
            f"all below {threshold_kohm:g} kOhm; {len(near)} close to it: {', '.join(near[:8])}",
            figures,
        )
    top = float(np.nanmax(z)) if len(z) else 0.0
    return Check(
        "impedance",
        Verdict.GREEN,
        f"all {len(z)} below {threshold_kohm:g} kOhm (max {top:.1f})",
        figures,
    )


def head_positions(labels: Sequence[str]) -> dict[str, list[float]]:
    """Where each electrode sits on a head seen from above (nose up, the head's rim
    at radius 1): the 10-05 positions (MNE's ``standard_1005`` montage) projected
    azimuthally, so the rim is the Fpz-T7-Oz-T8 circle. Labels not in the montage
    are put outside the head when they are few (EOG, mastoids), else (E1, E2, ...
    from Acquire) evenly on rings, in order."""
    import mne

    names = mne.channels.get_builtin_montages()
    montage = mne.channels.make_standard_montage(
        "colin27_1005" if "colin27_1005" in names else "standard_1005"
    )
    pos = {k.upper(): np.asarray(v) for k, v in montage.get_positions()["ch_pos"].items()}
    rim = [pos[k] for k in ("FPZ", "OZ", "T7", "T8")]
    centre = np.array([(rim[2][0] + rim[3][0]) / 2, (rim[0][1] + rim[1][1]) / 2,
                       np.mean([p[2] for p in rim])])  # fmt: skip

    def polar(xyz: np.ndarray) -> tuple[float, float, float]:
        x, y, z = xyz - centre
        r = float(np.hypot(x, y))
        return float(x), float(y), float(np.arctan2(r, z)) / (np.pi / 2)

    scale = float(np.mean([polar(p)[2] for p in rim]))  # the rim at radius 1
    out: dict[str, list[float]] = {}
    unknown = []
    for lab in labels:
        xyz = pos.get(str(lab).upper())
        if xyz is None:
            unknown.append(lab)
            continue
        x, y, rho = polar(xyz)
        r = float(np.hypot(x, y))
        f = rho / scale / r if r else 0.0
        out[str(lab)] = [round(f * x, 3), round(f * y, 3)]
    if len(unknown) <= len(out):  # a few extra channels (EOG, mastoids): outside the head
        for j, lab in enumerate(unknown):
            a = np.pi * (0.75 + 0.5 * j / max(1, len(unknown) - 1))  # the lower left arc
            out[str(lab)] = [round(float(1.2 * np.cos(a)), 3), round(float(1.2 * np.sin(a)), 3)]
        return out
    rings = (8, 16, 24, 32)  # numbered channels only (Acquire's E1, E2, ...): in order
    k = 0
    for radius, n in zip((0.25, 0.5, 0.75, 0.95), rings, strict=True):
        for i in range(n):
            if k == len(unknown):
                break
            a = np.pi / 2 - 2 * np.pi * i / n
            out[str(unknown[k])] = [round(float(radius * np.cos(a)), 3),
                                    round(float(radius * np.sin(a)), 3)]  # fmt: skip
            k += 1
    for j, lab in enumerate(unknown[k:]):  # more than 80: an outer ring
        a = np.pi / 2 - 2 * np.pi * j / (len(unknown) - k)
        out[str(lab)] = [round(float(1.1 * np.cos(a)), 3), round(float(1.1 * np.sin(a)), 3)]
    return out


def eeg_signal_flags(
    data_uv: np.ndarray,
    rate_hz: float,
    labels: Sequence[str],
    line_hz: float = 50.0,
    flat_uv: float = 0.5,
    noisy_uv: float = 100.0,
    line_share: float = 0.5,
) -> Check:
    """Per-channel flags from the signal itself (no impedance data): flat (standard
    deviation under ``flat_uv``), noisy (over ``noisy_uv``) and line noise (more than
    ``line_share`` of the 1-100 Hz power within 1 Hz of the line frequency)."""
    x = np.asarray(data_uv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < rate_hz:
        return Check("eeg signal", Verdict.RED, "less than a second of EEG to judge")
    x = signal.detrend(x, axis=0)
    sd = x.std(axis=0)
    f, pxx = signal.welch(x, fs=rate_hz, nperseg=int(rate_hz), axis=0)
    band = (f >= 1.0) & (f <= min(100.0, rate_hz / 2 - 1))
    near_line = band & (np.abs(f - line_hz) <= 1.0)
    total = pxx[band].sum(axis=0)
    share = np.where(total > 0, pxx[near_line].sum(axis=0) / np.where(total > 0, total, 1), 0.0)
    flags: dict[str, list[str]] = {"flat": [], "noisy": [], "line_noise": []}
    for j, lab in enumerate(labels):
        if sd[j] < flat_uv:
            flags["flat"].append(lab)
        elif sd[j] > noisy_uv:
            flags["noisy"].append(lab)
        elif share[j] > line_share:
            flags["line_noise"].append(lab)
    figures = {
        "sd_uv": dict(zip(labels, sd.round(2).tolist(), strict=True)),
        "line_share": dict(zip(labels, share.round(3).tolist(), strict=True)),
        "line_hz": line_hz,
        **flags,
    }
    bad = [(k, v) for k, v in flags.items() if v]
    if not bad:
        return Check(
            "eeg signal", Verdict.GREEN, f"all {len(labels)} channels look like EEG", figures
        )
    n_bad = sum(len(v) for _, v in bad)
    verdict = Verdict.RED if n_bad > max(1, len(labels) // 10) else Verdict.AMBER
    text = "; ".join(
        f"{k.replace('_', ' ')}: {', '.join(v[:6])}" + (" ..." if len(v) > 6 else "")
        for k, v in bad
    )
    return Check("eeg signal", verdict, text, figures)


# ---------------------------------------------------------------- physiology


def _rate_check(
    name: str,
    value: float,
    unit: str,
    ok: tuple[float, float],
    plausible: tuple[float, float],
    figures: dict[str, Any],
) -> Check:
    if not np.isfinite(value):
        return Check(name, Verdict.RED, f"no {name} could be measured (sensor off?)", figures)
    if ok[0] <= value <= ok[1]:
        return Check(name, Verdict.GREEN, f"{value:.1f} {unit}", figures)
    verdict = Verdict.AMBER if plausible[0] <= value <= plausible[1] else Verdict.RED
    return Check(name, verdict, f"{value:.1f} {unit}, outside {ok[0]:g}-{ok[1]:g} {unit}", figures)


def heart_rate(
    ecg: np.ndarray, ppg: np.ndarray, rate_hz: float, max_diff_bpm: float = 5.0
) -> Check:
    """Heart rate from the ECG's R-peaks and from the PPG's beats (NeuroKit2), and
    whether they agree within ``max_diff_bpm``."""
    import neurokit2 as nk

    def bpm(peaks: np.ndarray) -> float:
        if len(peaks) < 3:
            return float("nan")
        return float(60.0 / np.median(np.diff(peaks) / rate_hz))

    try:
        _, info = nk.ecg_peaks(
            nk.ecg_clean(ecg, sampling_rate=int(rate_hz)), sampling_rate=int(rate_hz)
        )
        hr_ecg = bpm(np.asarray(info["ECG_R_Peaks"]))
    except (ValueError, IndexError, ZeroDivisionError):
        hr_ecg = float("nan")
    try:
        _, pinfo = nk.ppg_peaks(
            nk.ppg_clean(ppg, sampling_rate=int(rate_hz)), sampling_rate=int(rate_hz)
        )
        hr_ppg = bpm(np.asarray(pinfo["PPG_Peaks"]))
    except (ValueError, IndexError, ZeroDivisionError):
        hr_ppg = float("nan")
    figures = {"ecg_bpm": round(hr_ecg, 1), "ppg_bpm": round(hr_ppg, 1)}
    check = _rate_check("heart rate", hr_ecg, "bpm", (45, 120), (35, 180), figures)
    if check.verdict is Verdict.RED:
        return check
    if not np.isfinite(hr_ppg):
        return Check(
            "heart rate",
            Verdict.RED,
            f"ECG {hr_ecg:.0f} bpm but no beats in the PPG (sensor off?)",
            figures,
        )
    diff = abs(hr_ecg - hr_ppg)
    figures["diff_bpm"] = round(diff, 1)
    if diff > max_diff_bpm:
        return Check(
            "heart rate",
            Verdict.AMBER,
            f"ECG {hr_ecg:.0f} bpm and PPG {hr_ppg:.0f} bpm disagree by {diff:.0f}",
            figures,
        )
    check.reason = f"ECG {hr_ecg:.0f} bpm, PPG {hr_ppg:.0f} bpm (agree within {diff:.1f})"
    return check


def eda(eda_us: np.ndarray) -> Check:
    """Skin conductance level and range (microsiemens)."""
    x = np.asarray(eda_us, dtype=np.float64)
    level, spread = float(np.median(x)), float(np.ptp(x)) if len(x) else 0.0
    figures = {"level_us": round(level, 3), "range_us": round(spread, 3)}
    if not 0.05 <= level <= 60.0:
        return Check(
            "EDA",
            Verdict.RED,
            f"level {level:.2f} uS is not skin (electrodes off or shorted?)",
            figures,
        )
    if spread < 1e-4:
        return Check("EDA", Verdict.AMBER, f"level {level:.2f} uS but no variation at all", figures)
    verdict = Verdict.GREEN if 0.5 <= level <= 40.0 else Verdict.AMBER
    return Check("EDA", verdict, f"level {level:.2f} uS, range {spread:.2f} uS", figures)


def breathing_rate(rsp: np.ndarray, rate_hz: float) -> float:
    """Breaths per minute from the first autocorrelation peak of the cleaned belt
    signal (NeuroKit2's RSP cleaning), between 1.5 and 15 s of lag. Peak counting
    needs three breaths inside the window; this needs about two periods, so 12 s
    of data serve down to 8 breaths a minute (within about 10 % of the peak count
    over a minute: breathing varies from breath to breath)."""
    import neurokit2 as nk

    x = np.asarray(rsp, dtype=np.float64)
    if len(x) < 3 * rate_hz or not np.ptp(x) > 0:
        return float("nan")
    clean = nk.rsp_clean(x, sampling_rate=int(rate_hz))
    step = max(1, int(rate_hz // 20))  # 20 Hz is plenty for breathing
    y = np.asarray(clean[::step]) - float(np.mean(clean[::step]))
    fs = rate_hz / step
    ac = signal.correlate(y, y, mode="full", method="fft")[len(y) - 1 :]
    if not ac[0] > 0:
        return float("nan")
    ac = ac / ac[0]
    lo, hi = int(1.5 * fs), min(int(15 * fs), int(len(y) / 1.6))
    if hi <= lo + 2:
        return float("nan")
    peaks, _ = signal.find_peaks(ac[lo:hi], height=0.2)
    if not len(peaks):
        return float("nan")
    k = lo + int(peaks[0])
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0  # parabolic
    return float(60.0 * fs / (k + shift))


def breathing(rsp: np.ndarray, rate_hz: float) -> Check:
    """Breathing rate from the respiration belt."""
    rate = breathing_rate(rsp, rate_hz)
    return _rate_check("breathing", rate, "/min", (8, 25), (4, 40), {"per_min": round(rate, 1)})


def skin_temperature(skt_c: np.ndarray) -> Check:
    t = float(np.median(np.asarray(skt_c, dtype=np.float64)))
    return _rate_check(
        "skin temperature", t, "degC", (28.0, 37.5), (20.0, 40.0), {"degC": round(t, 2)}
    )
