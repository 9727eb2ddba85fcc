"""A simulated study end to end: mmme simulate -> align -> annotations -> concordance.

The injected heart-rate response is found in the participants who have it, not in the
others, and surrogate times stay calibrated. The simulated sessions open and check like
recorded ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmmelab.acquisition.study import StudyPlan
from mmmelab.analysis.check import check_session
from mmmelab.analysis.eeg import band_power, epochs_at, from_stream
from mmmelab.analysis.pipeline import run_concordance, run_features
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.study import simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("study")
    plan = StudyPlan(participants=8, minutes=4.0, responders=4, dropped_frames=2, seed=3)
    return simulate(out, plan, show=False)


@pytest.mark.timeout(600)
def test_simulated_sessions_open_and_check_like_recorded_ones(study):
    report = check_session(study[0])
    assert report["streams"]["camera"]["dropped"] == 4  # the 2 x 2 injected drops, counted
    with open_session(study[0]) as s:
        assert s.manifest["simulated_by"] == "mmme simulate"
        cam, eeg = s.streams["camera"], s.streams["eeg"]
        assert isinstance(cam, CameraStream) and cam.aligned
        assert isinstance(eeg, SignalStream) and eeg.aligned and len(eeg.channels) == 64
        truth = s.manifest["simulation_truth"]
        me = [e for e in truth["expressions"] if e["kind"] == "ME"]
        # a frame number is the journal's counter: its master time is the truth's
        k = np.searchsorted(cam.journal["acq_nframe"], me[0]["onset_frame"])
        assert abs(cam.master_time[k] - me[0]["onset"]) < 1 / 150 + 0.001
    sync = json.loads((study[0] / "sync.json").read_text())
    assert sync["streams"]["eeg"]["segments"][0]["method"] == "triggers"


@pytest.mark.timeout(600)
def test_concordance_finds_the_heart_rate_response_only_where_it_was_injected(study, tmp_path):
    responders = run_concordance(study[:4], tmp_path / "yes", windows=(5.0,), jobs=2)
    others = run_concordance(study[4:], tmp_path / "no", windows=(5.0,), jobs=1)
    table = __import__("pandas").read_csv(tmp_path / "yes" / "concordance.tsv", sep="\t")
    me = table[(table["source"] == "ME") & (table["D_s"] == 5.0)].set_index("feature")
    assert me.loc["Heart_Rate_Mean", "p"] < 0.01 and me.loc["Heart_Rate_Mean", "t"] < 0
    assert me.loc["HRV_MeanNN", "p"] < 0.01 and me.loc["HRV_MeanNN", "t"] > 0
    hits = {r["feature"] for r in others["significant_p05"] if r["p"] < 0.01}
    assert "Heart_Rate_Mean" not in hits and "HRV_MeanNN" not in hits
    for summary in (responders, others):
        share = summary["control"][0]["share_p05"]
        assert share <= 0.15, f"surrogate share of p < 0.05: {share:.1%}"
        assert summary["provenance"]["inputs_sha256"]
        assert all(v is not None for v in summary["simulation_hr_response"].values())
    page = (tmp_path / "yes" / "concordance.html").read_text()
    assert "Heart_Rate_Mean" in page and "data:image/png;base64," in page


@pytest.mark.timeout(600)
def test_features_with_eeg_and_mne_objects(study, tmp_path):
    summary = run_features(study[:1], tmp_path / "f", windows=(3.0,), with_eeg=True)
    eeg = summary["eeg"][study[0].name]
    truth_bad = json.loads((study[0] / "session.json").read_text())["simulation_truth"][
        "bad_eeg_channels"
    ]
    assert eeg["bad_channels"] == truth_bad
    assert any(c["label"] == "eye blink" for c in eeg["ica_rejected"])
    t6 = __import__("pandas").read_csv(tmp_path / "f" / "table6_features.tsv", sep="\t")
    assert {"ECG_HR", "EEG_alpha_power", "RSP_Amp_Ratio_Mean"} <= set(t6.columns)
    with open_session(study[0]) as s:
        stream = s.streams["eeg"]
        assert isinstance(stream, SignalStream)
        from mmmelab.analysis.eeg import EegParams

        result = from_stream(stream, EegParams(ica=False))
        screened = from_stream(stream, EegParams(ica=False), clean=False)  # the report's way
        from mmmelab.analysis.eeg.preprocess import read_stream

        assert stream.rate_hz == 1000.0
        data, _ = read_stream(stream, 200.0)  # channels resampled in threads = one by one
        raw_uv = stream.data[()]
    assert screened.bad_reasons == result.bad_reasons and screened.bad_channels == truth_bad
    from scipy import signal as sps_

    for c in (0, 17, raw_uv.shape[1] - 1):
        one = sps_.resample_poly(raw_uv[:, c].astype(np.float64), 1, 5)[: len(data)]
        assert np.array_equal(data[:, c], one.astype(np.float32))
    x = result.raw.get_data(picks="eeg", start=0, stop=2000).T * 1e6
    from scipy import signal as sps

    f, p = sps.welch(x, fs=200.0, nperseg=400, axis=0)
    m = (f >= 8) & (f <= 14)
    assert np.allclose(band_power(x, 200.0)["alpha"], np.trapezoid(p[m], f[m], axis=0))
    epochs = epochs_at(result, result.t[[4000, 9000]], -1.0, 1.0)
    assert len(epochs) == 2


def _mmme(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmmelab", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_bad_input_gets_one_line_and_exit_2(tmp_path):
    for args in (("concordance", str(tmp_path / "nope"), "--out", str(tmp_path / "o")),
                 ("features", str(tmp_path), "--out", str(tmp_path / "o")),
                 ("simulate", str(tmp_path / "s"), "--participants", "0"),
                 ("simulate", str(tmp_path / "s"), "--camera-size", "big")):  # fmt: skip
        res = _mmme(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr
        assert "error" in res.stderr.strip().splitlines()[-1]  # argparse: usage, then one line
