"""Synthetic signals for the simulators, precomputed once and looped.

EEG: per channel a 1/f-like background, a 10 Hz alpha rhythm strongest over the
back of the head, 50 Hz line noise and blinks on frontal channels. Physiology:
NeuroKit2's ECG, PPG, RSP and EDA simulators plus a slow skin temperature.
Both return float32 arrays in physical units (uV; mV, a.u., a.u., degC, uS).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

# 10-10 labels of a 64-channel QuickCap (without the references).
QUICKCAP64 = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 "
    "T7 C5 C3 C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 "
    "P4 P6 P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2 HEO VEO"
).split()


def eeg_labels(n: int) -> list[str]:
    return QUICKCAP64[:n] if n <= len(QUICKCAP64) else [f"E{i + 1}" for i in range(n)]


@functools.lru_cache(maxsize=8)
def eeg_background(n_channels: int, rate_hz: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(samples, channels) float32 microvolts (cached and read-only: do not modify)."""
    rng = np.random.default_rng(seed)
    n = int(rate_hz * seconds)
    t = np.arange(n) / rate_hz
    white = rng.standard_normal((n, n_channels))
    spec = np.fft.rfft(white, axis=0)
    freqs = np.fft.rfftfreq(n, 1 / rate_hz)
    spec /= np.sqrt(np.maximum(freqs, 0.5))[:, None]
    pink = np.fft.irfft(spec, n=n, axis=0)
    pink *= 8.0 / pink.std()
    labels = eeg_labels(n_channels)
    back = np.array([1.0 if lab.startswith(("O", "P", "CB")) else 0.3 for lab in labels])
    phase = rng.uniform(0, 2 * np.pi, n_channels)
    alpha = 12.0 * back * np.sin(2 * np.pi * 10.0 * t[:, None] + phase)
    line = 2.0 * np.sin(2 * np.pi * 50.0 * t)[:, None]
    eeg = pink + alpha + line
    front = np.array([lab.startswith(("FP", "AF", "VEO")) for lab in labels])
    blink = 150.0 * np.exp(-0.5 * ((np.arange(400) - 200) / 60.0) ** 2)
    for start in rng.integers(0, max(1, n - 400), size=max(1, int(seconds / 4))):
        eeg[start : start + 400, front] += blink[:, None]
    out = eeg.astype(np.float32)
    out.flags.writeable = False
    return out


ME_HR_RISE_BPM = 12.0  # heart-rate rise after a micro-expression ...
ME_HR_DELAY_S = 2.0  # ... peaking this long after its onset ...
ME_HR_WIDTH_S = 1.2  # ... with this Gaussian width
PULSE_TRANSIT_S = 0.25  # R peak to the systolic peak of the pulse wave at the finger


@dataclasses.dataclass(frozen=True)
class HrResponse:
    """The heart-rate rise after an expression onset: a Gaussian bump."""

    rise_bpm: float = ME_HR_RISE_BPM
    delay_s: float = ME_HR_DELAY_S
    width_s: float = ME_HR_WIDTH_S


def heart_rate_profile(
    t: np.ndarray, base_bpm: float, me_onsets: tuple[float, ...], hrv_seed: int | None = None,
    response: HrResponse | None = None, gains: tuple[float, ...] | None = None,
) -> np.ndarray:  # fmt: skip
    """Instantaneous heart rate (bpm) at times ``t``: a brief rise after each onset.

    With ``hrv_seed``, the rate also varies as a real one does: respiratory sinus
    arrhythmia (about 2 bpm at 0.25 Hz), a Mayer wave (about 2.5 bpm near 0.1 Hz)
    and a slow wander (about 2 bpm over minutes), each with a random phase.
    """
    hr = np.full(len(t), base_bpm, dtype=np.float64)
    if hrv_seed is not None:
        rng = np.random.default_rng(hrv_seed)
        rsa_hz, mayer_hz = rng.uniform(0.22, 0.28), rng.uniform(0.08, 0.12)
        ph = rng.uniform(0, 2 * np.pi, 4)
        hr += 2.0 * np.sin(2 * np.pi * rsa_hz * t + ph[0])
        hr += 2.5 * np.sin(2 * np.pi * mayer_hz * t + ph[1])
        hr += 1.2 * np.sin(2 * np.pi * t / 173.0 + ph[2]) + 0.8 * np.sin(
            2 * np.pi * t / 61.0 + ph[3]
        )
    r = response or HrResponse()
    for k, onset in enumerate(me_onsets):
        g = 1.0 if gains is None else gains[k]
        hr += g * r.rise_bpm * np.exp(-0.5 * ((t - onset - r.delay_s) / r.width_s) ** 2)
    return hr


def beat_times(
    seconds: float,
    base_bpm: float,
    me_onsets: tuple[float, ...],
    hrv_seed: int | None = None,
    response: HrResponse | None = None,
    gains: tuple[float, ...] | None = None,
) -> np.ndarray:
    """R-peak times (s) following the heart-rate profile (the ground truth)."""
    grid = np.arange(0.0, seconds + 2.0, 0.01)
    hr = heart_rate_profile(grid, base_bpm, me_onsets, hrv_seed, response, gains)
    times = [0.4]
    while times[-1] < seconds:
        times.append(times[-1] + 60.0 / float(np.interp(times[-1], grid, hr)))
    return np.array(times[:-1])


def _template(
    signal: np.ndarray, fs: int, peaks: np.ndarray, before_s: float, after_s: float
) -> np.ndarray:
    """The median beat around ``peaks``, baseline-removed and tapered (for overlap-add)."""
    a, b = int(before_s * fs), int(after_s * fs)
    beats = [signal[p - a : p + b] for p in peaks if p - a >= 0 and p + b <= len(signal)]
    beat = np.median(np.array(beats), axis=0)
    beat = beat - np.linspace(beat[0], beat[-1], len(beat))
    taper = np.ones(len(beat))
    ramp = max(1, len(beat) // 10)
    taper[:ramp] = np.linspace(0, 1, ramp)
    taper[-ramp:] = np.linspace(1, 0, ramp)
    return beat * taper


def _place(templ: np.ndarray, fs: int, n: int, times: np.ndarray, before_s: float) -> np.ndarray:
    out = np.zeros(n)
    a = int(before_s * fs)
    for t in times:
        start = int(round(t * fs)) - a
        lo, hi = max(0, start), min(n, start + len(templ))
        if lo < hi:
            out[lo:hi] += templ[lo - start : hi - start]
    return out


@functools.lru_cache(maxsize=8)
def physio_signals(
    rate_hz: float,
    seconds: float,
    heart_rate: float = 70.0,
    seed: int = 0,
    me_onsets: tuple[float, ...] = (),
) -> dict[str, np.ndarray]:
    """ECG (mV), PPG, RSP, EDA (uS) and SKT (degC), float32 each (cached, read-only).

    ECG and PPG are built beat by beat: NeuroKit2's beats placed at R-peak times
    that follow :func:`heart_rate_profile`, so the heart rate rises briefly after
    each micro-expression onset in ``me_onsets`` (seconds from the start) - the
    ground truth the analysis must recover. RSP and EDA come from NeuroKit2.
    """
    out = make_physio(rate_hz, seconds, heart_rate, seed, me_onsets)
    for arr in out.values():
        arr.flags.writeable = False  # cached: shared by every caller
    return out


#: How each emotion moves the peripheral signals after its expression (relative
#: effects, scaled by ``emotion_scale``): the heart rate's rise (x the response),
#: an SCR (uS), breathing depth, a skin-temperature drop (degC) and the pulse
#: amplitude (vasoconstriction). Made-up but distinct patterns, so a simulated study
#: has physiology that separates the emotions by a known amount. The skin
#: temperature's changes (a fingertip cooling by up to 0.2 degC within ten seconds,
#: the size reported for fear-like vasoconstriction; a warming is negative) differ
#: between every pair of emotions, so each modality alone can tell them apart.
EMOTION_PHYSIO: dict[str, dict[str, float]] = {
    "happiness": {"hr": 0.6, "eda": 0.15, "rsp": 0.35, "skt": -0.08, "ppg": 0.10},
    "surprise": {"hr": 0.2, "eda": 0.60, "rsp": -0.40, "skt": 0.10, "ppg": -0.10},
    "sadness": {"hr": -0.6, "eda": 0.05, "rsp": -0.20, "skt": 0.04, "ppg": 0.15},
    "fear": {"hr": 1.0, "eda": 0.50, "rsp": 0.30, "skt": 0.20, "ppg": -0.35},
    "anger": {"hr": 0.9, "eda": 0.35, "rsp": 0.50, "skt": 0.14, "ppg": -0.20},
    "disgust": {"hr": -0.3, "eda": 0.30, "rsp": -0.45, "skt": -0.03, "ppg": -0.05},
    "contempt": {"hr": 0.0, "eda": 0.10, "rsp": 0.10, "skt": -0.14, "ppg": 0.25},
}


#: The EEG's change around an expression's apex per emotion: the alpha source's gain
#: and a beta (20 Hz) burst's amplitude (relative to the alpha), x ``emotion_scale``.
EMOTION_EEG: dict[str, tuple[float, float]] = {
    "happiness": (-0.30, 0.40), "surprise": (-0.60, 0.10), "sadness": (0.40, -0.00),
    "fear": (-0.50, 0.60), "anger": (-0.20, 0.80), "disgust": (0.20, 0.30),
    "contempt": (0.50, 0.50),
}  # fmt: skip


def _emotion_effects(
    t: np.ndarray, onsets: tuple[float, ...], effects: list[dict[str, float]], scale: float,
    ppg: np.ndarray, rsp: np.ndarray, eda: np.ndarray, skt: np.ndarray,
) -> None:  # fmt: skip
    """Add each expression's emotion-specific responses in place (see EMOTION_PHYSIO)."""
    for onset, fx in zip(onsets, effects, strict=True):
        a, b = np.searchsorted(t, [onset, onset + 14.0])
        if b <= a:
            continue
        dt = t[a:b] - onset
        bump = np.exp(-0.5 * ((dt - 3.0) / 1.5) ** 2)  # a few seconds after the onset
        lag = np.clip(dt - 1.5, 0.0, None)  # the SCR's latency, then rise and recovery
        scr = (1.0 - np.exp(-lag / 0.7)) * np.exp(-lag / 3.0)
        eda[a:b] += scale * fx.get("eda", 0.0) * scr
        rsp[a:b] *= 1.0 + scale * fx.get("rsp", 0.0) * bump
        ppg[a:b] *= 1.0 + scale * fx.get("ppg", 0.0) * bump
        skt[a:b] -= scale * fx.get("skt", 0.0) * np.clip(dt / 6.0, 0.0, 1.0) * np.exp(-dt / 12.0)


def make_physio(
    rate_hz: float,
    seconds: float,
    heart_rate: float = 70.0,
    seed: int = 0,
    me_onsets: tuple[float, ...] = (),
    hrv_seed: int | None = None,
    skt_base: float = 33.0,
    eda_base: float = 2.0,
    eda_drift: float = -0.01,
    skt_wander: bool = False,
    response: HrResponse | None = None,
    emotions: tuple[str, ...] | None = None,
    emotion_scale: float = 0.0,
) -> dict[str, np.ndarray]:
    """As :func:`physio_signals`, not cached, with optional heart-rate variability
    (``hrv_seed``, see :func:`heart_rate_profile`), skin temperature and conductance
    levels, and NeuroKit2's EDA drift (its default -0.01 suits a few minutes only)."""
    import neurokit2 as nk

    fs = int(rate_hz)
    seconds = int(np.ceil(seconds))  # NeuroKit2's simulators need whole seconds
    n = int(rate_hz * seconds)
    rng = np.random.default_rng(seed)
    ecg_ref = nk.ecg_simulate(duration=12, sampling_rate=fs, heart_rate=60, random_state=seed)
    _, info = nk.ecg_peaks(ecg_ref, sampling_rate=fs)
    peaks = np.asarray(info["ECG_R_Peaks"])
    ppg_ref = nk.ppg_simulate(duration=12, sampling_rate=fs, heart_rate=60, random_state=seed)
    effects = [EMOTION_PHYSIO.get(e, {}) for e in emotions] if emotions else []
    gains = tuple(1.0 + emotion_scale * fx.get("hr", 0.0) for fx in effects) if effects else None
    beats = beat_times(seconds, heart_rate, me_onsets, hrv_seed, response, gains)
    ecg = _place(_template(ecg_ref, fs, peaks, 0.35, 0.55), fs, n, beats, 0.35)
    ppg_peaks = np.asarray(nk.ppg_findpeaks(ppg_ref, sampling_rate=fs)["PPG_Peaks"])
    ppg_beat = _template(ppg_ref, fs, ppg_peaks, 0.3, 0.6)
    ppg = _place(ppg_beat, fs, n, beats + PULSE_TRANSIT_S, 0.3)  # systolic peaks
    ecg += 0.01 * rng.standard_normal(n)
    ppg += 0.005 * rng.standard_normal(n)
    rsp = nk.rsp_simulate(
        duration=seconds, sampling_rate=fs, respiratory_rate=15, random_state=seed
    )
    eda = (
        nk.eda_simulate(
            duration=seconds,
            sampling_rate=fs,
            scr_number=max(1, int(seconds / 20)),
            drift=eda_drift,
            random_state=seed,
        )
        + eda_base
    )
    t = np.arange(n) / rate_hz
    if skt_wander:  # stationary slow fluctuation (periods of 40-200 s), no trend
        periods = rng.uniform(40.0, 200.0, 3)
        slow = sum(0.03 * np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi)) for p in periods)
    else:
        slow = 0.05 * np.sin(2 * np.pi * t / max(seconds, 1.0))
    skt = skt_base + slow + 0.002 * rng.standard_normal(n)
    if effects and emotion_scale:
        _emotion_effects(t, me_onsets, effects, emotion_scale, ppg, rsp, eda, skt)
    return {
        k: np.asarray(v[:n], dtype=np.float32)
        for k, v in {"ECG": ecg, "PPG": ppg, "RSP": rsp, "SKT": skt, "EDA": eda}.items()
    }
