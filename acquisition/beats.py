"""Beats and breaths in a few seconds of raw physiology, for the set-up checks.

The rig's pre-flight needs a heart rate from the ECG and from the PPG, and a clean
breathing signal, from about ten seconds of data. These are small, fixed filters
and peak pickers on SciPy, so a recording PC does not install NeuroKit2 and its
analysis stack (pandas, scikit-learn) for them; the tests hold them to NeuroKit2's
``ecg_peaks``, ``ppg_peaks`` and ``rsp_clean`` on simulated and real recordings.
The offline analyses use NeuroKit2 itself.

All functions are pure, take samples at ``rate_hz`` (Hz) and return sample indices
or samples; they run in whichever thread calls them (the rig check's worker).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

QRS_BAND_HZ = (5.0, 20.0)  # where the QRS complex has its energy and the T wave little
PPG_BAND_HZ = (0.5, 8.0)  # Elgendi's band for the pulse wave
RSP_BAND_HZ = (0.05, 3.0)  # Khodadad et al. (2018), NeuroKit2's default RSP cleaning
REFRACTORY_S = 0.3  # no two beats closer than this (200 bpm)
ECG_EDGE_S = 0.3  # R-peaks this close to either end are cut off or half filtered
PPG_EDGE_S = 0.15  # the pulse wave is slower and smoother: less is lost at the ends


def _bandpass(x: np.ndarray, rate_hz: float, band: tuple[float, float], order: int) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections); the upper edge is
    kept below Nyquist for slow recordings."""
    high = min(band[1], 0.45 * rate_hz)
    sos = signal.butter(order, [band[0], high], btype="bandpass", output="sos", fs=rate_hz)
    return np.asarray(signal.sosfiltfilt(sos, x))


def _finite(x: np.ndarray, rate_hz: float, min_s: float) -> np.ndarray | None:
    """The signal as float64 with NaNs forward-filled; None when too short or flat."""
    y = np.asarray(x, dtype=np.float64).ravel()
    if len(y) < min_s * rate_hz or not np.isfinite(y).any():
        return None
    bad = ~np.isfinite(y)
    if bad.any():
        idx = np.where(bad, 0, np.arange(len(y)))
        np.maximum.accumulate(idx, out=idx)
        y = y[idx]
        y[: int(np.argmax(~bad))] = y[int(np.argmax(~bad))]
    return y if np.ptp(y) > 0 else None


def ecg_r_peaks(ecg: np.ndarray, rate_hz: float) -> np.ndarray:
    """R-peak sample indices: the QRS band's energy (squared, integrated over 100 ms,
    as Pan and Tompkins do), its peaks at least 300 ms apart that reach 30 % of the
    typical beat's energy, each moved to the largest deflection of the band-passed
    ECG within 60 ms (either polarity: a reversed lead still counts). Beats in the
    first and last 300 ms are left out."""
    x = _finite(ecg, rate_hz, 2.0)
    if x is None:
        return np.zeros(0, dtype=np.int64)
    qrs = _bandpass(x - np.median(x), rate_hz, QRS_BAND_HZ, 3)
    width = max(1, round(0.1 * rate_hz))
    energy = np.convolve(qrs * qrs, np.ones(width) / width, mode="same")
    cand, _ = signal.find_peaks(energy, distance=max(1, round(REFRACTORY_S * rate_hz)))
    if len(cand) < 2:
        return np.zeros(0, dtype=np.int64)
    heights = energy[cand]
    typical = float(np.median(np.sort(heights)[len(heights) // 2 :]))  # the upper half
    beats = cand[heights >= 0.3 * typical]
    half = max(1, round(0.06 * rate_hz))
    out = []
    for b in beats:
        lo, hi = max(0, b - half), min(len(qrs), b + half + 1)
        out.append(lo + int(np.argmax(np.abs(qrs[lo:hi]))))
    return _inside(np.unique(np.asarray(out, dtype=np.int64)), len(x), ECG_EDGE_S * rate_hz)


def ppg_beats(ppg: np.ndarray, rate_hz: float) -> np.ndarray:
    """Systolic peak sample indices: peaks of the band-passed pulse wave at least
    300 ms apart whose prominence is at least 30 % of the typical beat's, leaving
    out the first and last 150 ms."""
    x = _finite(ppg, rate_hz, 2.0)
    if x is None:
        return np.zeros(0, dtype=np.int64)
    wave = _bandpass(x - np.median(x), rate_hz, PPG_BAND_HZ, 3)
    cand, props = signal.find_peaks(
        wave, distance=max(1, round(REFRACTORY_S * rate_hz)), prominence=0.0
    )
    if len(cand) < 2:
        return np.zeros(0, dtype=np.int64)
    prom = props["prominences"]
    typical = float(np.median(np.sort(prom)[len(prom) // 2 :]))
    beats = np.asarray(cand[prom >= 0.3 * typical], dtype=np.int64)
    return _inside(beats, len(x), PPG_EDGE_S * rate_hz)


def _inside(peaks: np.ndarray, n: int, edge: float) -> np.ndarray:
    """The peaks at least ``edge`` samples from either end."""
    return peaks[(peaks >= edge) & (peaks < n - edge)]


def median_bpm(peaks: np.ndarray, rate_hz: float) -> float:
    """Beats per minute from the median interval between successive peaks (NaN with
    fewer than three peaks)."""
    if len(peaks) < 3:
        return float("nan")
    return float(60.0 / np.median(np.diff(np.asarray(peaks)) / rate_hz))


def rsp_clean(rsp: np.ndarray, rate_hz: float) -> np.ndarray:
    """The breathing belt's signal band-passed 0.05-3 Hz (second-order Butterworth,
    zero phase): NeuroKit2's default ``rsp_clean`` (Khodadad et al., 2018)."""
    return _bandpass(np.asarray(rsp, dtype=np.float64), rate_hz, RSP_BAND_HZ, 2)
