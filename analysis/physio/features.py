"""The MMME paper's physiology features on a window of master time.

* :func:`table3_features`: the 48 features of Table 3 (concordance, section 4.1),
  NeuroKit2's names. HRV time-domain features are NeuroKit2's own ``hrv_time`` on
  the R peaks inside the window; the others are numpy/scipy statistics of the
  cleaned signals. SKT has no NeuroKit2 module: its features are ours.
* :func:`table6_features`: the 25 features of Table 6 (recognition, a 10 s window
  centred on the apex), with both readings of the paper's RSP amplitude feature
  (difference ``mu_[E-I]`` and the text's ratio), so 26 columns.

A feature that cannot be computed is NaN and its note says why (too few beats, no
SCR peak, a gap in the recording...); a value the window cannot estimate reliably
(LF power from a 10 s window) is kept and its note says so. Nothing here raises
on short or degenerate windows.

Choices where the paper is vague (recorded in every output through ``CHOICES``):
``RR_Mean``/``RR_Std`` are the mean and SD of the R-R interval signal (s),
interpolated at every sample (time-weighted), next to ``HRV_MeanNN`` (beat-weighted, ms);
``Heart_Rate_Mean`` is the mean of the interpolated heart rate; LF/HF come from the
R-R series interpolated at 4 Hz (cubic), mean removed, a Hann-windowed Welch
periodogram over the whole window, bands LF 0.05-0.15 and HF 0.15-0.4 Hz (the
paper's, configurable); LFn = LF / (LF + HF) and HFn = HF / (LF + HF) (Task Force
normalised units); ``EDA_Tonic_Change`` = tonic level at the end minus the start
(the integral of SCL'); ``EDA_SCR_Rate`` = SCR peaks per second.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import interpolate, stats

from mmmelab.analysis.physio.preprocess import PhysioData

HRV_TIME = (
    "MeanNN", "SDNN", "RMSSD", "SDSD", "CVNN", "CVSD", "MedianNN", "MadNN", "MCVNN",
    "IQRNN", "SDRMSSD", "Prc20NN", "Prc80NN", "pNN50", "pNN20", "MinNN", "MaxNN", "HTI", "TINN",
)  # fmt: skip

TABLE3 = (
    "ECG_Mean", "ECG_Std", "ECG_Max", "ECG_Min", "ECG_Range", "RR_Mean", "RR_Std",
    "Heart_Rate_Mean", *(f"HRV_{n}" for n in HRV_TIME), "PPG_Rate_Mean",
    "RSP_Mean", "RSP_Std_dev", "RSP_Median", "RSP_Max_value", "RSP_Min_value",
    "RSP_Skewness", "RSP_Kurtosis",
    "EDA_Mean", "EDA_Std", "EDA_Max", "EDA_Min", "EDA_Range", "EDA_Num_peaks",
    "EDA_Mean_amplitude",
    "SKT_Mean", "SKT_Std", "SKT_Max", "SKT_Min", "SKT_Range", "SKT_Slope",
)  # fmt: skip
assert len(TABLE3) == 48

TABLE6 = (
    "PPG_PR",
    "ECG_HR", "ECG_SDSD", "ECG_SDNN", "ECG_RMSSD", "ECG_LF", "ECG_HF", "ECG_LFn", "ECG_HFn",
    "ECG_LF_HF", "ECG_SD1_SD2", "ECG_PSS", "ECG_PIP",
    "RSP_BR_Mean", "RSP_BR_Std", "RSP_Amp_Diff_Mean", "RSP_Amp_Ratio_Mean",
    "SKT_Mean", "SKT_Std", "SKT_Min", "SKT_Max",
    "EDA_Tonic_Change", "EDA_SCR_Rate", "EDA_SCR_Amplitude_Mean", "EDA_SCR_RiseTime_Mean",
    "EDA_SCR_HalfRecovery_Mean",
)  # fmt: skip
QUALITY = ("ECG_Quality_Mean", "PPG_Quality_Mean")


@dataclass(frozen=True)
class FeatureParams:
    lf_band_hz: tuple[float, float] = (0.05, 0.15)
    hf_band_hz: tuple[float, float] = (0.15, 0.4)
    rri_interp_hz: float = 4.0
    min_beats: int = 3  # R peaks a window needs for HRV features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CHOICES = {
    "RR_Mean/RR_Std": "mean/SD (s) of the interpolated R-R interval signal over the window",
    "Heart_Rate_Mean": "mean of the heart rate interpolated (monotone cubic) between R peaks",
    "HRV_*": "neurokit2.hrv_time on the R peaks inside the window (intervals between them)",
    "ECG_LF/HF": "R-R at 4 Hz (cubic), mean removed, Welch (Hann, one segment = the window)",
    "ECG_LFn/HFn": "LF/(LF+HF), HF/(LF+HF)",
    "ECG_SD1_SD2": "Poincare SD1/SD2 as neurokit2 (ddof 1)",
    "ECG_PSS/PIP": "heart-rate fragmentation (Costa 2017) as neurokit2",
    "RSP_Amp_Diff_Mean": "mean over breaths of (exhalation - inhalation) amplitude, the "
    "paper's symbol mu_[E-I]",
    "RSP_Amp_Ratio_Mean": "mean of inhalation/exhalation amplitude, the paper's text",
    "EDA_Tonic_Change": "tonic SCL at the window's end minus its start",
    "EDA_SCR_Rate": "SCR peaks in the window per second",
    "SKT_Slope": "least-squares slope, degC per s",
}


class _Out:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.values: dict[str, float] = dict.fromkeys(names, float("nan"))
        self.notes: dict[str, str] = {}

    def set(self, name: str, value: Any) -> None:
        v = float(value)
        if np.isfinite(v):
            self.values[name] = v
        elif name not in self.notes:
            self.notes[name] = "not finite for this window"

    def missing(self, names: Any, why: str) -> None:
        for n in names:
            self.values[n] = float("nan")
            self.notes.setdefault(n, why)


def _window_ok(d: PhysioData, t0: float, t1: float) -> str:
    if not len(d.t) or t0 < d.t[0] or t1 > d.t[-1] + 0.5 / d.rate_hz:
        return "window outside the recording"
    if d.gap_in(t0, t1):
        return "a gap in the recording lies in this window"
    return ""


def _peaks_in(d: PhysioData, peaks: np.ndarray, t0: float, t1: float) -> np.ndarray:
    a, b = d.index(t0, t1)
    return peaks[(peaks >= a) & (peaks < b)]


def hrv_time_window(
    peaks: np.ndarray, rate_hz: float, min_beats: int = 3
) -> tuple[dict[str, float], str]:
    """NeuroKit2's ``hrv_time`` on these R peaks, guarded: ({} , reason) when impossible."""
    import neurokit2 as nk

    if len(peaks) < min_beats:
        return {}, f"{len(peaks)} R peak(s) in the window; HRV needs at least {min_beats}"
    rri = np.diff(peaks) / rate_hz * 1000.0
    if np.ptp(rri) == 0:
        return {}, "constant R-R intervals (TINN and HTI undefined; NeuroKit#533)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = nk.hrv_time(np.asarray(peaks), sampling_rate=rate_hz)
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        return {}, f"neurokit2.hrv_time failed: {exc}"
    return {k.removeprefix("HRV_"): float(df[k].iloc[0]) for k in df.columns}, ""


def table3_features(
    d: PhysioData, t0: float, t1: float, params: FeatureParams | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """Table 3's 48 features (plus signal quality) on master times [t0, t1)."""
    params = params or FeatureParams()
    out = _Out((*TABLE3, *QUALITY))
    why = _window_ok(d, t0, t1)
    if why:
        out.missing(out.values, why)
        return out.values, out.notes
    a, b = d.index(t0, t1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        _ecg3(d, a, b, t0, t1, params, out)
        _rsp3(d, a, b, out)
        _eda3(d, a, b, out)
        _skt(d, a, b, out, ("SKT_Mean", "SKT_Std", "SKT_Max", "SKT_Min", "SKT_Range", "SKT_Slope"))
    return out.values, out.notes


def _ecg3(
    d: PhysioData, a: int, b: int, t0: float, t1: float, params: FeatureParams, out: _Out
) -> None:
    ecg_names = ("ECG_Mean", "ECG_Std", "ECG_Max", "ECG_Min", "ECG_Range")
    hr_names = ("RR_Mean", "RR_Std", "Heart_Rate_Mean", *(f"HRV_{n}" for n in HRV_TIME))
    if "ECG" not in d.signals:
        out.missing((*ecg_names, *hr_names, "ECG_Quality_Mean"), d.problems.get("ECG", "no ECG"))
    else:
        x = d.signals["ECG"][a:b]
        if len(x) < 2:
            out.missing(ecg_names, "fewer than 2 samples")
        else:
            for name, v in zip(ecg_names, _stats5(x), strict=True):
                out.set(name, v)
        if d.heart_rate is None:
            out.missing(hr_names, d.problems.get("ECG", "no R peaks"))
        else:
            hr = d.heart_rate[a:b]
            out.set("Heart_Rate_Mean", np.mean(hr))
            rr = 60.0 / hr
            out.set("RR_Mean", np.mean(rr))
            out.set("RR_Std", np.std(rr, ddof=1) if len(rr) > 1 else np.nan)
            hrv, why = hrv_time_window(_peaks_in(d, d.rpeaks, t0, t1), d.rate_hz, params.min_beats)
            if why:
                out.missing([f"HRV_{n}" for n in HRV_TIME], why)
            for n in HRV_TIME:
                if n in hrv:
                    out.set(f"HRV_{n}", hrv[n])
        if d.ecg_quality is not None:
            out.set("ECG_Quality_Mean", np.mean(d.ecg_quality[a:b]))
    if d.ppg_rate is None:
        out.missing(("PPG_Rate_Mean", "PPG_Quality_Mean"), d.problems.get("PPG", "no PPG"))
    else:
        out.set("PPG_Rate_Mean", np.mean(d.ppg_rate[a:b]))
        if d.ppg_quality is not None:
            out.set("PPG_Quality_Mean", np.mean(d.ppg_quality[a:b]))


def _stats5(x: np.ndarray) -> tuple[float, ...]:
    return (np.mean(x), np.std(x, ddof=1), np.max(x), np.min(x), np.ptp(x))


def _rsp3(d: PhysioData, a: int, b: int, out: _Out) -> None:
    names = ("RSP_Mean", "RSP_Std_dev", "RSP_Median", "RSP_Max_value", "RSP_Min_value",
             "RSP_Skewness", "RSP_Kurtosis")  # fmt: skip
    if "RSP" not in d.signals:
        out.missing(names, d.problems.get("RSP", "no RSP"))
        return
    x = d.signals["RSP"][a:b]
    if len(x) < 3:
        out.missing(names, "fewer than 3 samples")
        return
    vals = (np.mean(x), np.std(x, ddof=1), np.median(x), np.max(x), np.min(x),
            stats.skew(x), stats.kurtosis(x))  # fmt: skip
    for n, v in zip(names, vals, strict=True):
        out.set(n, v)


def _scr_in(d: PhysioData, a: int, b: int) -> np.ndarray:
    peaks = d.scr.get("SCR_Peaks", np.zeros(0))
    ok = np.isfinite(peaks) & (peaks >= a) & (peaks < b)
    return np.flatnonzero(ok)


def _eda3(d: PhysioData, a: int, b: int, out: _Out) -> None:
    names = ("EDA_Mean", "EDA_Std", "EDA_Max", "EDA_Min", "EDA_Range")
    if "EDA" not in d.signals:
        out.missing(
            (*names, "EDA_Num_peaks", "EDA_Mean_amplitude"), d.problems.get("EDA", "no EDA")
        )
        return
    x = d.signals["EDA"][a:b]
    for n, v in zip(names, _stats5(x), strict=True):
        out.set(n, v)
    sel = _scr_in(d, a, b)
    out.set("EDA_Num_peaks", len(sel))
    if len(sel):
        out.set("EDA_Mean_amplitude", np.nanmean(d.scr["SCR_Amplitude"][sel]))
    else:
        out.missing(["EDA_Mean_amplitude"], "no SCR peak in the window")


def _skt(d: PhysioData, a: int, b: int, out: _Out, names: tuple[str, ...]) -> None:
    if "SKT" not in d.signals:
        out.missing(names, d.problems.get("SKT", "no SKT"))
        return
    x = d.signals["SKT"][a:b]
    if len(x) < 2:
        out.missing(names, "fewer than 2 samples")
        return
    vals = {
        "SKT_Mean": np.mean(x),
        "SKT_Std": np.std(x, ddof=1),
        "SKT_Max": np.max(x),
        "SKT_Min": np.min(x),
        "SKT_Range": np.ptp(x),
        "SKT_Slope": stats.linregress(d.t[a:b] - d.t[a], x).slope,
    }
    for n in names:
        out.set(n, vals[n])


# ---------------------------------------------------------------- Table 6


def band_powers(
    peaks: np.ndarray,
    rate_hz: float,
    lf: tuple[float, float],
    hf: tuple[float, float],
    interp_hz: float = 4.0,
) -> tuple[float, float]:
    """LF and HF power (ms^2) of the R-R series between ``peaks`` (see the module docstring)."""
    from scipy import signal as sps

    t = peaks[1:] / rate_hz
    rri = np.diff(peaks) / rate_hz * 1000.0
    grid = np.arange(t[0], t[-1], 1.0 / interp_hz)
    if len(grid) < 8:
        return float("nan"), float("nan")
    x = interpolate.CubicSpline(t, rri)(grid) if len(t) > 3 else np.interp(grid, t, rri)
    x = x - x.mean()
    f, p = sps.welch(x, fs=interp_hz, window="hann", nperseg=len(x), detrend=False)

    def band(lo_hi: tuple[float, float]) -> float:
        m = (f >= lo_hi[0]) & (f < lo_hi[1])
        return (
            float(np.trapezoid(p[m], f[m])) if m.sum() > 1 else float(np.sum(p[m]) * (f[1] - f[0]))
        )

    return band(lf), band(hf)


def poincare_sd1_sd2(rri: np.ndarray) -> float:
    x1 = (rri[:-1] - rri[1:]) / np.sqrt(2)
    x2 = (rri[:-1] + rri[1:]) / np.sqrt(2)
    return float(np.std(x1, ddof=1) / np.std(x2, ddof=1))


def _runs(idx: np.ndarray) -> list[int]:
    """Lengths of runs of consecutive integers in ``idx``."""
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    bounds = np.concatenate([[-1], breaks, [len(idx) - 1]])
    return list(np.diff(bounds))


def fragmentation(rri: np.ndarray) -> tuple[float, float]:
    """(PIP, PSS) of Costa et al. 2017, computed as NeuroKit2 does."""
    d = np.diff(rri)
    zero_cross = np.flatnonzero(np.diff(np.sign(d)) != 0)
    pip = len(zero_cross) / (len(d) + 1)
    lengths = np.array(_runs(np.flatnonzero(d > 0)) + _runs(np.flatnonzero(d < 0)))
    pss = float(lengths[lengths < 3].sum() / lengths.sum()) if lengths.sum() else float("nan")
    return float(pip), pss


def table6_features(
    d: PhysioData, t0: float, t1: float, params: FeatureParams | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """Table 6's features on master times [t0, t1) (the paper: apex +- 5 s)."""
    params = params or FeatureParams()
    out = _Out(TABLE6)
    why = _window_ok(d, t0, t1)
    if why:
        out.missing(out.values, why)
        return out.values, out.notes
    a, b = d.index(t0, t1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        _ppg_ecg6(d, a, b, t0, t1, params, out)
        _rsp6(d, a, b, out)
        _skt(d, a, b, out, ("SKT_Mean", "SKT_Std", "SKT_Min", "SKT_Max"))
        _eda6(d, a, b, t1 - t0, out)
    return out.values, out.notes


def _ppg_ecg6(
    d: PhysioData, a: int, b: int, t0: float, t1: float, params: FeatureParams, out: _Out
) -> None:
    if d.ppg_rate is None:
        out.missing(["PPG_PR"], d.problems.get("PPG", "no PPG"))
    else:
        out.set("PPG_PR", np.mean(d.ppg_rate[a:b]))
    ecg = [n for n in TABLE6 if n.startswith("ECG_")]
    if d.heart_rate is None:
        out.missing(ecg, d.problems.get("ECG", "no R peaks"))
        return
    out.set("ECG_HR", np.mean(d.heart_rate[a:b]))
    peaks = _peaks_in(d, d.rpeaks, t0, t1)
    hrv, why = hrv_time_window(peaks, d.rate_hz, params.min_beats)
    if why:
        out.missing(ecg[1:], why)
        return
    for n in ("SDSD", "SDNN", "RMSSD"):
        out.set(f"ECG_{n}", hrv[n])
    rri = np.diff(peaks) / d.rate_hz * 1000.0
    lf, hf = band_powers(
        peaks, d.rate_hz, params.lf_band_hz, params.hf_band_hz, params.rri_interp_hz
    )
    for n, v in (("ECG_LF", lf), ("ECG_HF", hf)):
        out.set(n, v)
    if lf + hf > 0:
        out.set("ECG_LFn", lf / (lf + hf))
        out.set("ECG_HFn", hf / (lf + hf))
        out.set("ECG_LF_HF", lf / hf if hf > 0 else np.nan)
    cycles = (t1 - t0) * params.lf_band_hz[0]
    if cycles < 2:
        for n in ("ECG_LF", "ECG_LFn", "ECG_HFn", "ECG_LF_HF"):
            out.notes[n] = (
                f"unreliable: a {t1 - t0:g} s window holds {cycles:.1f} cycles of the LF "
                f"band's lowest frequency ({params.lf_band_hz[0]:g} Hz); at least 2 are needed "
                f"(about {2 / params.lf_band_hz[0]:.0f} s)"
            )
    if len(rri) >= 3:
        out.set("ECG_SD1_SD2", poincare_sd1_sd2(rri))
        pip, pss = fragmentation(rri)
        out.set("ECG_PIP", pip)
        out.set("ECG_PSS", pss)
    else:
        out.missing(("ECG_SD1_SD2", "ECG_PIP", "ECG_PSS"), "fewer than 3 R-R intervals")


def breath_amplitudes(x: np.ndarray, peaks: np.ndarray, troughs: np.ndarray) -> tuple[Any, Any]:
    """Per breath whose peak has a trough on each side: inhalation amplitude (peak minus the
    trough before it) and exhalation amplitude (peak minus the trough after it)."""
    inh, exh = [], []
    for p in peaks:
        before = troughs[troughs < p]
        after = troughs[troughs > p]
        if len(before) and len(after):
            inh.append(x[p] - x[before[-1]])
            exh.append(x[p] - x[after[0]])
    return np.array(inh), np.array(exh)


def _rsp6(d: PhysioData, a: int, b: int, out: _Out) -> None:
    names = ("RSP_BR_Mean", "RSP_BR_Std", "RSP_Amp_Diff_Mean", "RSP_Amp_Ratio_Mean")
    if d.rsp_rate is None or "RSP" not in d.signals:
        out.missing(names, d.problems.get("RSP", "no RSP"))
        return
    br = d.rsp_rate[a:b]
    out.set("RSP_BR_Mean", np.mean(br))
    out.set("RSP_BR_Std", np.std(br, ddof=1))
    peaks = d.rsp_peaks[(d.rsp_peaks >= a) & (d.rsp_peaks < b)]
    inh, exh = breath_amplitudes(d.signals["RSP"], peaks, d.rsp_troughs)
    if not len(inh):
        out.missing(names[2:], "no complete breath (trough, peak, trough) in the window")
        return
    out.set("RSP_Amp_Diff_Mean", np.mean(exh - inh))
    ok = exh != 0
    out.set("RSP_Amp_Ratio_Mean", np.mean(inh[ok] / exh[ok]) if ok.any() else np.nan)


def _eda6(d: PhysioData, a: int, b: int, width_s: float, out: _Out) -> None:
    names = ("EDA_Tonic_Change", "EDA_SCR_Rate", "EDA_SCR_Amplitude_Mean",
             "EDA_SCR_RiseTime_Mean", "EDA_SCR_HalfRecovery_Mean")  # fmt: skip
    if d.eda_tonic is None:
        out.missing(names, d.problems.get("EDA", "no EDA"))
        return
    out.set("EDA_Tonic_Change", d.eda_tonic[b - 1] - d.eda_tonic[a])
    sel = _scr_in(d, a, b)
    out.set("EDA_SCR_Rate", len(sel) / width_s)
    if not len(sel):
        out.missing(names[2:], "no SCR peak in the window")
        return
    for n, key in (("EDA_SCR_Amplitude_Mean", "SCR_Amplitude"),
                   ("EDA_SCR_RiseTime_Mean", "SCR_RiseTime"),
                   ("EDA_SCR_HalfRecovery_Mean", "SCR_RecoveryTime")):  # fmt: skip
        v = d.scr.get(key, np.full(len(d.scr.get("SCR_Peaks", [])), np.nan))[sel]
        if np.isfinite(v).any():
            out.set(n, np.nanmean(v))
        else:
            out.missing([n], f"{key} not measurable for the SCRs in this window")
