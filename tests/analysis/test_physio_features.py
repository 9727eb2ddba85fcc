"""Physiology features equal NeuroKit2's and scipy's own functions on the same input:
on real recordings (../shared/testdata/physio_csv) and on degenerate windows."""

from __future__ import annotations

import os
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
from scipy import signal as sps
from scipy import stats

from mmmelab.analysis.physio import TABLE3, TABLE6, from_arrays, table3_features, table6_features
from mmmelab.analysis.physio.features import band_powers, fragmentation, poincare_sd1_sd2

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "physio_csv"


def _need(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data missing under CI: {path}")
        pytest.skip(f"shared test data not present: {path}")
    return path


@pytest.fixture(scope="module")
def ecg_real():
    x = np.loadtxt(_need(DATA / "ecg_1000hz.csv"), delimiter=",", skiprows=1)
    return from_arrays({"ECG": x}, 1000.0, t0=100.0)


@pytest.fixture(scope="module")
def bio_real():
    raw = np.genfromtxt(_need(DATA / "bio_eventrelated_100hz.csv"), delimiter=",", names=True)
    return from_arrays({"ECG": raw["ECG"], "EDA": raw["EDA"], "RSP": raw["RSP"]}, 100.0)


def test_hrv_and_heart_rate_equal_neurokit_on_a_real_ecg(ecg_real):
    d = ecg_real
    assert d.rate_hz == 200.0 and len(d.rpeaks) > 40  # 50 s at about 70 bpm
    t0, t1 = 110.0, 125.0
    values, notes = table3_features(d, t0, t1)
    a, b = d.index(t0, t1)
    peaks = d.rpeaks[(d.rpeaks >= a) & (d.rpeaks < b)]
    ref = nk.hrv_time(peaks, sampling_rate=200.0)
    for name in ("MeanNN", "SDNN", "RMSSD", "SDSD", "pNN50", "HTI", "TINN", "MedianNN"):
        assert values[f"HRV_{name}"] == pytest.approx(float(ref[f"HRV_{name}"].iloc[0]))
    rate = nk.signal_rate(d.rpeaks, sampling_rate=200.0, desired_length=len(d.t),
                          interpolation_method="monotone_cubic")  # fmt: skip
    assert values["Heart_Rate_Mean"] == pytest.approx(np.mean(rate[a:b]))
    x = d.signals["ECG"][a:b]
    assert values["ECG_Std"] == pytest.approx(np.std(x, ddof=1))
    assert values["ECG_Range"] == pytest.approx(np.ptp(x))
    assert 50 < values["Heart_Rate_Mean"] < 110
    assert "PPG_Rate_Mean" in notes and np.isnan(values["PPG_Rate_Mean"])  # no PPG channel
    assert set(TABLE3) <= set(values)


def test_rsp_and_eda_equal_scipy_and_neurokit_on_real_signals(bio_real):
    d = bio_real
    assert set(d.problems) == {"PPG", "SKT"}, d.problems  # not in this file
    t0, t1 = 20.0, 60.0
    values, _ = table3_features(d, t0, t1)
    a, b = d.index(t0, t1)
    rsp = d.signals["RSP"][a:b]
    assert values["RSP_Skewness"] == pytest.approx(stats.skew(rsp))
    assert values["RSP_Kurtosis"] == pytest.approx(stats.kurtosis(rsp))
    assert values["RSP_Median"] == pytest.approx(np.median(rsp))
    _, info = nk.eda_peaks(d.eda_phasic, sampling_rate=200.0, method="neurokit")
    peaks = np.asarray(info["SCR_Peaks"])
    inside = (peaks >= a) & (peaks < b)
    assert values["EDA_Num_peaks"] == inside.sum()
    if inside.any():
        amp = np.asarray(info["SCR_Amplitude"])[inside]
        assert values["EDA_Mean_amplitude"] == pytest.approx(np.nanmean(amp))


def test_table6_band_powers_equal_scipy_welch(ecg_real):
    d = ecg_real
    t0, t1 = 105.0, 145.0
    values, notes = table6_features(d, t0, t1)
    a, b = d.index(t0, t1)
    peaks = d.rpeaks[(d.rpeaks >= a) & (d.rpeaks < b)]
    t = peaks[1:] / 200.0
    rri = np.diff(peaks) / 200.0 * 1000
    from scipy.interpolate import CubicSpline

    grid = np.arange(t[0], t[-1], 0.25)
    x = CubicSpline(t, rri)(grid)
    f, p = sps.welch(x - x.mean(), fs=4.0, window="hann", nperseg=len(x), detrend=False)
    m = (f >= 0.15) & (f < 0.4)
    assert values["ECG_HF"] == pytest.approx(np.trapezoid(p[m], f[m]))
    assert values["ECG_LFn"] + values["ECG_HFn"] == pytest.approx(1.0)
    assert "ECG_LF" not in notes  # 40 s holds 2 cycles of 0.05 Hz
    _, short = table6_features(d, 110.0, 120.0)
    assert "unreliable" in short["ECG_LF"] and "0.5 cycles" in short["ECG_LF"]
    assert values["ECG_LF"] == pytest.approx(
        band_powers(peaks, 200.0, (0.05, 0.15), (0.15, 0.4))[0]
    )
    assert set(TABLE6) == set(values)


def test_poincare_and_fragmentation_equal_neurokit():
    rng = np.random.default_rng(4)
    rri = 800 + np.cumsum(rng.normal(0, 8, 300)) * 0.2 + rng.normal(0, 20, 300)
    peaks = np.round(np.r_[0, np.cumsum(rri)]).astype(int)  # sampling rate 1000 Hz
    rri_ms = np.diff(peaks).astype(float)
    ref = nk.hrv_nonlinear(peaks, sampling_rate=1000)
    assert poincare_sd1_sd2(rri_ms) == pytest.approx(float(ref["HRV_SD1SD2"].iloc[0]))
    pip, pss = fragmentation(rri_ms)
    assert pip == pytest.approx(float(ref["HRV_PIP"].iloc[0]))
    assert pss == pytest.approx(float(ref["HRV_PSS"].iloc[0]))


def test_skin_temperature_module():
    t = np.arange(0, 60, 1 / 1000)
    skt = 32.0 + 0.01 * t + 0.001 * np.sin(t)
    d = from_arrays({"SKT": skt}, 1000.0)
    values, _ = table3_features(d, 10.0, 40.0)
    a, b = d.index(10.0, 40.0)
    assert values["SKT_Slope"] == pytest.approx(
        stats.linregress(d.t[a:b], d.signals["SKT"][a:b]).slope
    )
    assert values["SKT_Slope"] == pytest.approx(0.01, rel=0.02)
    assert values["SKT_Mean"] == pytest.approx(32.25, abs=0.01)


def test_degenerate_windows_give_nan_with_a_reason(ecg_real):
    d = ecg_real
    values, notes = table3_features(d, 110.0, 110.8)  # one beat at most
    assert np.isnan(values["HRV_SDNN"]) and "R peak" in notes["HRV_SDNN"]
    values, notes = table3_features(d, 0.0, 5.0)  # before the recording
    assert all(np.isnan(v) for v in values.values())
    assert notes["ECG_Mean"] == "window outside the recording"
    flat = from_arrays({"ECG": np.zeros(20000), "EDA": np.full(20000, 3.0)}, 1000.0)
    assert "ECG" in flat.problems  # no R peaks in a flat line: said, not raised
    values, notes = table3_features(flat, 2.0, 8.0)
    assert np.isnan(values["Heart_Rate_Mean"]) and notes["Heart_Rate_Mean"]
    assert values["EDA_Mean"] == pytest.approx(3.0) and values["EDA_Num_peaks"] == 0
    assert "no SCR peak" in notes["EDA_Mean_amplitude"]
    d.gaps.append((130.0, 130.5))
    try:
        values, notes = table6_features(d, 125.0, 135.0)
        assert "gap" in notes["ECG_HR"]
    finally:
        d.gaps.pop()
