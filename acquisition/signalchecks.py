"""The set-up checks of the EEG and the physiology, as pure functions of the data
(the verdicts, :class:`~mmmelab.acquisition.rigchecks.Check`, and the camera's
checks are in :mod:`mmmelab.acquisition.rigchecks`).

EEG
    ``impedances`` (kOhm against a threshold, with the electrodes' places on the
    head map) or, without impedance data, ``eeg_signal_flags`` (flat / noisy / line
    noise per channel).
Physiology
    ``heart_rate`` (ECG R-peaks against PPG beats), ``eda``, ``breathing``,
    ``skin_temperature``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import signal

from mmmelab.acquisition import beats
from mmmelab.acquisition.rigchecks import Check, Verdict


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
    """Heart rate from the ECG's R-peaks and from the PPG's beats
    (:mod:`~mmmelab.acquisition.beats`), and whether they agree within
    ``max_diff_bpm``."""
    hr_ecg = beats.median_bpm(beats.ecg_r_peaks(ecg, rate_hz), rate_hz)
    hr_ppg = beats.median_bpm(beats.ppg_beats(ppg, rate_hz), rate_hz)
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
    signal (NeuroKit2's default RSP cleaning, :func:`~mmmelab.acquisition.beats.rsp_clean`),
    between 1.5 and 15 s of lag. Peak counting
    needs three breaths inside the window; this needs about two periods, so 12 s
    of data serve down to 8 breaths a minute (within about 10 % of the peak count
    over a minute: breathing varies from breath to breath)."""
    x = np.asarray(rsp, dtype=np.float64)
    if len(x) < 3 * rate_hz or not np.ptp(x) > 0:
        return float("nan")
    clean = beats.rsp_clean(x, rate_hz)
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
    """Skin temperature (degC, median): green 28-37.5, amber 20-40, red outside."""
    t = float(np.median(np.asarray(skt_c, dtype=np.float64)))
    return _rate_check(
        "skin temperature", t, "degC", (28.0, 37.5), (20.0, 40.0), {"degC": round(t, 2)}
    )
