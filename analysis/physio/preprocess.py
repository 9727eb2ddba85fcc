"""Peripheral physiology (ECG, PPG, RSP, EDA, SKT) prepared for features, with NeuroKit2.

The MMME paper's values are the defaults (section 4.2.2): 1000 -> 200 Hz, low-frequency
drift removed, zero-phase Butterworth low-pass ECG 40 Hz, EDA 5 Hz, RSP 1 Hz. Where
the paper says nothing, the choices below are ours (``paper_spec.md`` section 3) and
every output records them (:meth:`PhysioParams.to_dict`):

* filter order 4, zero-phase (``sosfiltfilt``: order 8 in effect, no phase shift);
* drift: ECG high-pass 0.5 Hz, PPG band-pass 0.5-8 Hz (NeuroKit2's ``elgendi``
  band), RSP high-pass 0.05 Hz; EDA and SKT keep their level (their level *is* the
  feature: EDA_Mean, SKT_Mean), so they are only low-passed (SKT at 1 Hz);
* R peaks: NeuroKit2's ``neurokit`` detector on the 200 Hz signal (its detector
  fails on some 1 kHz ECG, NeuroKit#955; at 200 Hz it does not), with its
  Kubios-style artefact correction; PPG peaks ``elgendi``; RSP extrema
  ``khodadad2018``; EDA phasic/tonic by ``highpass`` and SCR peaks ``neurokit``;
* signal quality per sample: ``ecg_quality`` (averageQRS), ``ppg_quality`` (templatematch);
* no normalisation here: concordance compares physical units (the paper's
  normalisation belongs to recognition, fitted on training folds).

Times are the master clock: the resampled samples keep the device's sample grid
and take their master time from ``open_session`` (sync.json). Gaps in the stream
are kept as intervals; features of a window that touches one are NaN with a reason.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal as sps

from mmmelab.storage import SignalStream

logger = logging.getLogger(__name__)

MODALITIES = ("ECG", "PPG", "RSP", "EDA", "SKT")


@dataclass(frozen=True)
class PhysioParams:
    rate_hz: float = 200.0
    filter_order: int = 4
    ecg_band_hz: tuple[float, float] = (0.5, 40.0)
    ppg_band_hz: tuple[float, float] = (0.5, 8.0)
    rsp_band_hz: tuple[float, float] = (0.05, 1.0)
    eda_lowpass_hz: float = 5.0
    skt_lowpass_hz: float = 1.0
    rpeak_method: str = "neurokit"
    correct_artifacts: bool = True
    ppg_peak_method: str = "elgendi"
    rsp_peak_method: str = "khodadad2018"
    eda_phasic_method: str = "highpass"
    eda_peak_method: str = "neurokit"
    eda_amplitude_min: float = 0.1
    channels: dict[str, str] = field(default_factory=dict)  # modality -> channel name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PhysioData:
    """Cleaned signals at ``rate_hz`` with the events NeuroKit2 found in them."""

    rate_hz: float
    t: np.ndarray  # master time of every sample, s
    signals: dict[str, np.ndarray]  # modality -> cleaned signal (physical units)
    raw: dict[str, np.ndarray]  # modality -> resampled, unfiltered
    rpeaks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    heart_rate: np.ndarray | None = None  # bpm, interpolated at every sample
    ecg_quality: np.ndarray | None = None
    ppg_peaks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ppg_rate: np.ndarray | None = None
    ppg_quality: np.ndarray | None = None
    rsp_peaks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rsp_troughs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rsp_rate: np.ndarray | None = None
    eda_tonic: np.ndarray | None = None
    eda_phasic: np.ndarray | None = None
    scr: dict[str, np.ndarray] = field(default_factory=dict)  # SCR_Peaks, _Amplitude, ...
    gaps: list[tuple[float, float]] = field(default_factory=list)  # master-time intervals
    problems: dict[str, str] = field(default_factory=dict)  # modality -> why it is missing
    params: PhysioParams = field(default_factory=PhysioParams)

    def index(self, t0: float, t1: float) -> tuple[int, int]:
        """Sample range [a, b) of master times [t0, t1)."""
        return int(np.searchsorted(self.t, t0)), int(np.searchsorted(self.t, t1))

    def gap_in(self, t0: float, t1: float) -> bool:
        return any(g0 < t1 and g1 > t0 for g0, g1 in self.gaps)


def _sos(order: int, band: tuple[float, float] | float, fs: float, kind: str) -> np.ndarray:
    return sps.butter(order, band, btype=kind, fs=fs, output="sos")


def find_channels(names: list[str], wanted: dict[str, str]) -> dict[str, int]:
    """Column of each modality: an explicit name, else the channel called like it."""
    lower = [n.lower() for n in names]
    out = {}
    for mod in MODALITIES:
        name = wanted.get(mod, mod).lower()
        hits = [i for i, n in enumerate(lower) if n == name or n.startswith(name + " ")]
        if hits:
            out[mod] = hits[0]
    return out


def resample(x: np.ndarray, rate_hz: float, target_hz: float) -> np.ndarray:
    """Polyphase resampling with its anti-alias filter (scipy), along axis 0."""
    ratio = Fraction(target_hz / rate_hz).limit_denominator(1000)
    if ratio == 1:
        return np.asarray(x, dtype=np.float64)
    return sps.resample_poly(np.asarray(x, np.float64), ratio.numerator, ratio.denominator, axis=0)


def from_arrays(
    data: dict[str, np.ndarray],
    rate_hz: float,
    t0: float = 0.0,
    params: PhysioParams | None = None,
    t: np.ndarray | None = None,
    gaps: list[tuple[float, float]] | None = None,
) -> PhysioData:
    """Preprocess signals given as arrays (a CSV, a vendor file) sampled at ``rate_hz``.

    ``t`` (master time of every input sample) defaults to ``t0 + i / rate_hz``.
    """
    params = params or PhysioParams()
    n_in = len(next(iter(data.values())))
    t_in = t if t is not None else t0 + np.arange(n_in) / rate_hz
    fs = params.rate_hz
    raw = {m: resample(x, rate_hz, fs) for m, x in data.items()}
    n = min(len(v) for v in raw.values())
    raw = {m: v[:n] for m, v in raw.items()}
    positions = np.arange(n) * (rate_hz / fs)
    times = np.interp(positions, np.arange(n_in), t_in)
    out = PhysioData(fs, times, {}, raw, gaps=list(gaps or []), params=params)
    steps = (_ecg, _ppg, _rsp, _eda, _skt)
    for mod, step in zip(MODALITIES, steps, strict=True):
        if mod not in raw:
            out.problems[mod] = f"no {mod} channel"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                step(out, raw[mod])
        except (ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            out.problems[mod] = f"{mod} could not be processed: {exc}"
            logger.warning("%s", out.problems[mod])
    return out


def from_stream(stream: SignalStream, params: PhysioParams | None = None) -> PhysioData:
    """Preprocess a session's physiology stream (on the master clock)."""
    params = params or PhysioParams()
    cols = find_channels(stream.channels, params.channels)
    data_all = np.asarray(stream.data[()], dtype=np.float64)
    data = {m: data_all[:, i] for m, i in cols.items()}
    if not data:
        raise ValueError(f"stream {stream.name!r} has none of the channels {MODALITIES}")
    t = stream.master_time
    gaps = []
    index = stream.sample_index
    for k in np.flatnonzero(np.diff(index) != 1):
        gaps.append((float(t[k]), float(t[k + 1])))
    return from_arrays(data, stream.rate_hz, params=params, t=t, gaps=gaps)


# ---------------------------------------------------------------- per modality


def _ecg(out: PhysioData, x: np.ndarray) -> None:
    import neurokit2 as nk

    p, fs = out.params, out.rate_hz
    clean = sps.sosfiltfilt(_sos(p.filter_order, p.ecg_band_hz, fs, "bandpass"), x)
    out.signals["ECG"] = clean
    _, info = nk.ecg_peaks(
        clean, sampling_rate=fs, method=p.rpeak_method, correct_artifacts=p.correct_artifacts
    )
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    out.rpeaks = peaks[(peaks >= 0) & (peaks < len(clean))]
    if len(out.rpeaks) < 3:
        raise ValueError(f"only {len(out.rpeaks)} R peaks found")
    out.heart_rate = np.asarray(
        nk.signal_rate(
            out.rpeaks,
            sampling_rate=fs,
            desired_length=len(clean),
            interpolation_method="monotone_cubic",
        )
    )
    out.ecg_quality = np.asarray(nk.ecg_quality(clean, rpeaks=out.rpeaks, sampling_rate=fs))


def _ppg(out: PhysioData, x: np.ndarray) -> None:
    import neurokit2 as nk

    p, fs = out.params, out.rate_hz
    clean = sps.sosfiltfilt(_sos(p.filter_order, p.ppg_band_hz, fs, "bandpass"), x)
    out.signals["PPG"] = clean
    peaks = np.asarray(
        nk.ppg_findpeaks(clean, sampling_rate=fs, method=p.ppg_peak_method)["PPG_Peaks"],
        dtype=np.int64,
    )
    out.ppg_peaks = peaks
    if len(peaks) < 3:
        raise ValueError(f"only {len(peaks)} pulse peaks found")
    out.ppg_rate = np.asarray(
        nk.signal_rate(
            peaks,
            sampling_rate=fs,
            desired_length=len(clean),
            interpolation_method="monotone_cubic",
        )
    )
    out.ppg_quality = np.asarray(nk.ppg_quality(clean, peaks=peaks, sampling_rate=fs))


def _rsp(out: PhysioData, x: np.ndarray) -> None:
    import neurokit2 as nk

    p, fs = out.params, out.rate_hz
    clean = sps.sosfiltfilt(_sos(p.filter_order, p.rsp_band_hz, fs, "bandpass"), x)
    out.signals["RSP"] = clean
    _, info = nk.rsp_peaks(clean, sampling_rate=fs, method=p.rsp_peak_method)
    out.rsp_peaks = np.asarray(info["RSP_Peaks"], dtype=np.int64)
    out.rsp_troughs = np.asarray(info["RSP_Troughs"], dtype=np.int64)
    if len(out.rsp_troughs) < 3:
        raise ValueError(f"only {len(out.rsp_troughs)} breaths found")
    out.rsp_rate = np.asarray(
        nk.signal_rate(
            out.rsp_troughs,
            sampling_rate=fs,
            desired_length=len(clean),
            interpolation_method="monotone_cubic",
        )
    )


def _eda(out: PhysioData, x: np.ndarray) -> None:
    import neurokit2 as nk

    p, fs = out.params, out.rate_hz
    clean = sps.sosfiltfilt(_sos(p.filter_order, p.eda_lowpass_hz, fs, "lowpass"), x)
    out.signals["EDA"] = clean
    comp = nk.eda_phasic(clean, sampling_rate=fs, method=p.eda_phasic_method)
    out.eda_tonic = np.asarray(comp["EDA_Tonic"])
    out.eda_phasic = np.asarray(comp["EDA_Phasic"])
    _, info = nk.eda_peaks(
        out.eda_phasic,
        sampling_rate=fs,
        method=p.eda_peak_method,
        amplitude_min=p.eda_amplitude_min,
    )
    keys = (
        "SCR_Onsets",
        "SCR_Peaks",
        "SCR_Height",
        "SCR_Amplitude",
        "SCR_RiseTime",
        "SCR_Recovery",
        "SCR_RecoveryTime",
    )
    out.scr = {k: np.asarray(info[k], dtype=np.float64) for k in keys if k in info}


def _skt(out: PhysioData, x: np.ndarray) -> None:
    p, fs = out.params, out.rate_hz
    out.signals["SKT"] = sps.sosfiltfilt(_sos(p.filter_order, p.skt_lowpass_hz, fs, "lowpass"), x)
