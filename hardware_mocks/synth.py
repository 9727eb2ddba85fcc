"""Synthetic signals for the simulators, precomputed once and looped.

EEG: per channel a 1/f-like background, a 10 Hz alpha rhythm strongest over the
back of the head, 50 Hz line noise and blinks on frontal channels. Physiology:
NeuroKit2's ECG, PPG, RSP and EDA simulators plus a slow skin temperature.
Both return float32 arrays in physical units (uV; mV, a.u., a.u., degC, uS).
"""

from __future__ import annotations

import numpy as np

# 10-10 labels of a 64-channel QuickCap (without the references).
QUICKCAP64 = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 "
    "T7 C5 C3 C1 CZ C2 C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 "
    "P4 P6 P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2 HEO VEO"
).split()


def eeg_labels(n: int) -> list[str]:
    return QUICKCAP64[:n] if n <= len(QUICKCAP64) else [f"E{i + 1}" for i in range(n)]


def eeg_background(n_channels: int, rate_hz: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(samples, channels) float32 microvolts."""
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
    return eeg.astype(np.float32)


def physio_signals(
    rate_hz: float, seconds: float, heart_rate: float = 70.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """ECG (mV), PPG, RSP, EDA (uS) from NeuroKit2 and SKT (degC), float32 each."""
    import neurokit2 as nk

    fs = int(rate_hz)
    seconds = int(np.ceil(seconds))  # NeuroKit2's simulators need whole seconds
    n = int(rate_hz * seconds)
    rng = np.random.default_rng(seed)
    ecg = nk.ecg_simulate(
        duration=seconds, sampling_rate=fs, heart_rate=heart_rate, random_state=seed
    )
    ppg = nk.ppg_simulate(
        duration=seconds, sampling_rate=fs, heart_rate=heart_rate, random_state=seed
    )
    rsp = nk.rsp_simulate(
        duration=seconds, sampling_rate=fs, respiratory_rate=15, random_state=seed
    )
    eda = (
        nk.eda_simulate(
            duration=seconds,
            sampling_rate=fs,
            scr_number=max(1, int(seconds / 20)),
            random_state=seed,
        )
        + 2.0
    )
    t = np.arange(n) / rate_hz
    skt = 33.0 + 0.05 * np.sin(2 * np.pi * t / max(seconds, 1.0)) + 0.002 * rng.standard_normal(n)
    return {
        k: np.asarray(v[:n], dtype=np.float32)
        for k, v in {"ECG": ecg, "PPG": ppg, "RSP": rsp, "SKT": skt, "EDA": eda}.items()
    }
