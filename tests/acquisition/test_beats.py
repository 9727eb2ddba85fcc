"""The set-up checks' own beat and breath detectors against NeuroKit2 (the reference
the analyses use), on simulated signals and on real recordings from
../shared/testdata (skipped when it is absent outside CI; under CI=true a missing
folder fails)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest

from mmmelab.acquisition import beats

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
if not DATA.is_dir() and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI runs without the shared vendor test data at {DATA}")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"no vendor test data at {DATA}")


def nk_ecg_bpm(x: np.ndarray, fs: int) -> float:
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)
    return beats.median_bpm(np.asarray(info["ECG_R_Peaks"]), fs)


def nk_ppg_bpm(x: np.ndarray, fs: int) -> float:
    _, info = nk.ppg_peaks(nk.ppg_clean(x, sampling_rate=fs), sampling_rate=fs)
    return beats.median_bpm(np.asarray(info["PPG_Peaks"]), fs)


def windows(x: np.ndarray, fs: int, seconds: float = 10.0) -> list[np.ndarray]:
    w = int(seconds * fs)
    return [x[k : k + w] for k in range(0, len(x) - w + 1, w)]


@pytest.mark.parametrize("bpm", [45, 72, 110, 160])
def test_simulated_heart_rate_matches_neurokit(bpm):
    ecg = nk.ecg_simulate(duration=12, sampling_rate=500, heart_rate=bpm, noise=0.05,
                          random_state=2)  # fmt: skip
    ppg = nk.ppg_simulate(duration=12, sampling_rate=500, heart_rate=bpm, random_state=2)
    ours = beats.median_bpm(beats.ecg_r_peaks(ecg, 500), 500)
    assert ours == pytest.approx(nk_ecg_bpm(ecg, 500), abs=1.0)  # 1 sample: 0.85 bpm at 160
    assert ours == pytest.approx(bpm, rel=0.02)
    # a lead on the wrong way round gives the same rate
    assert beats.median_bpm(beats.ecg_r_peaks(-ecg, 500), 500) == pytest.approx(ours, abs=0.5)
    if bpm < 150:  # at 160 NeuroKit2's PPG peaks skip beats (two intervals of 0.75 s)
        assert beats.median_bpm(beats.ppg_beats(ppg, 500), 500) == pytest.approx(
            nk_ppg_bpm(ppg, 500), abs=1.0
        )
    else:
        assert np.diff(beats.ppg_beats(ppg, 500)).max() < 0.5 * 500


@needs_data
@pytest.mark.parametrize(
    ("name", "fs"),
    [("ecg_1000hz.csv", 1000), ("biosppy_ecg.txt", 1000), ("bio_eventrelated_100hz.csv", 100)],
)
def test_real_ecg_heart_rate_matches_neurokit(name, fs):
    path = DATA / "physio_csv" / name
    if name.endswith(".txt"):  # BioSPPy's text format: raw 12-bit counts
        x = np.loadtxt(path, comments="#")
    else:
        table = np.genfromtxt(path, delimiter=",", names=True)
        x = np.asarray(table["ECG"], dtype=np.float64)
    diffs = [
        beats.median_bpm(beats.ecg_r_peaks(seg, fs), fs) - nk_ecg_bpm(seg, fs)
        for seg in windows(x, fs)
    ]
    assert len(diffs) >= 1
    assert np.max(np.abs(diffs)) <= 2.0, diffs  # a 10 s window's median beat interval
    assert np.mean(np.abs(diffs)) <= 0.3, diffs


@needs_data
def test_real_pulse_oximeter_rate_matches_neurokit():
    path = DATA / "bids/ds210/sub-02/func/sub-02_task-rest_run-01_physio.tsv.gz"
    with gzip.open(path) as f:
        cardiac = np.loadtxt(f)[:, 0]  # 50 Hz, the BIDS sidecar's first column
    diffs = [
        beats.median_bpm(beats.ppg_beats(seg, 50), 50) - nk_ppg_bpm(seg, 50)
        for seg in windows(cardiac, 50)
    ]
    assert len(diffs) >= 60
    # 20 ms sample steps (1 bpm at 55 bpm); the windows differ only at their ends
    assert np.max(np.abs(diffs)) <= 2.5, diffs
    assert np.mean(np.abs(diffs)) <= 0.25, diffs


@needs_data
def test_rsp_clean_is_neurokits_default_cleaning():
    path = DATA / "bids/ds210/sub-02/func/sub-02_task-rest_run-01_physio.tsv.gz"
    with gzip.open(path) as f:
        belt = np.loadtxt(f)[:, 1]
    np.testing.assert_allclose(beats.rsp_clean(belt, 50), nk.rsp_clean(belt, sampling_rate=50))
    x = nk.rsp_simulate(duration=30, sampling_rate=1000, respiratory_rate=14, random_state=3)
    np.testing.assert_allclose(beats.rsp_clean(x, 1000), nk.rsp_clean(x, sampling_rate=1000))


def test_degenerate_signals_have_no_beats():
    for x in (np.zeros(5000), np.full(5000, np.nan), np.ones(100)):
        assert len(beats.ecg_r_peaks(x, 500)) == 0
        assert len(beats.ppg_beats(x, 500)) == 0
    assert np.isnan(beats.median_bpm(np.array([10, 500]), 500))
    # gaps (NaN) are bridged, not fatal
    ecg = nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=70, random_state=1)
    ecg[1000:1050] = np.nan
    assert beats.median_bpm(beats.ecg_r_peaks(ecg, 500), 500) == pytest.approx(70, rel=0.03)
