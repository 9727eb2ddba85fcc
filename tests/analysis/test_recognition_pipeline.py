"""Coded sessions -> ``mmme dataset build`` -> ``mmme recognize`` on a small simulated
study: samples with face crops, flow stacks, EEG windows and every modality's
features; the classical classifiers and the vote over LOSO; bad input in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.study import write_truth_annotations

    root = tmp_path_factory.mktemp("recognition")
    proto = short_trials(12.0, 2.0)
    plan = StudyPlan(participants=3, minutes=0.9, camera_width=320, camera_height=176,
                     me_per_clip=2.0, mae_per_clip=1.0, min_gap_s=3.0, seed=5)  # fmt: skip
    folders = simulate_study(root / "sessions", plan, protocol=proto)
    for f in folders:
        align_session(f)
        write_truth_annotations(f)
    yield root, folders
    shutil.rmtree(root, ignore_errors=True)


def mmme(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmmelab", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_dataset_then_recognize(study):
    root, folders = study
    ds = root / "ds"
    res = mmme("dataset", "build", *folders, "--out", ds, "--json")
    assert res.returncode == 0, res.stderr
    brief = json.loads(res.stdout)
    assert brief["subjects"] == ["S01", "S02", "S03"] and brief["samples"] >= 6
    with h5py.File(ds / "dataset.h5", "r") as h5:
        index = json.loads(h5.attrs["index"])
        assert {m for m in h5["features"]} == {"FACE", "EEG", "ECG", "PPG", "RSP", "SKT", "EDA"}
        first = h5["samples"][index[0]["sample"]]
        crops, flow = first["crops"], first["flow"]
        on, apex, off = first.attrs["keys_onset_apex_offset"]
        assert crops.shape[1:] == (128, 128) and crops.dtype == np.uint8
        assert off == len(crops) - 1 and on == 0 <= apex <= off
        assert flow.shape == (3, 128, 128) and first["eeg"].shape[1] == 2000  # 10 s at 200 Hz
        assert h5["features"]["FACE"].shape == (len(index), 21)
    row = index[0]
    assert row["label3"] in ("negative", "positive", "surprise") and row["consent_level"] in (1, 2)
    assert (ds / "index.tsv").read_text().count("\n") == len(index) + 1
    again = mmme("dataset", "build", *folders, "--out", ds, "--json")  # nothing changed
    assert again.returncode == 0 and json.loads(again.stdout)["samples"] == len(index)
    out = root / "rec"
    rec = mmme("recognize", ds, "--out", out, "--classes", "3", "--json")
    assert rec.returncode == 0, rec.stderr
    table = json.loads(rec.stdout)["table"]
    rows = ["face", "eeg", "ecg", "ppg", "rsp", "skt", "eda", "fusion", "fusion_precision",
            "prob_average"]  # fmt: skip
    assert [r["modality"] for r in table] == rows
    for r in table:
        assert 0.0 <= r["uar_pooled"] <= 1.0 and set(r["recall_per_class"]) == {
            "negative", "positive", "surprise"}  # fmt: skip
    report = json.loads((out / "recognition.json").read_text())
    assert len(report["folds"]) == 3 and len(report["provenance"]["dataset_sha256"]) == 64
    assert (out / "confusion_fusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "uar_pooled" in (out / "recognition.tsv").read_text()


def test_bad_input_is_one_line(study, tmp_path):
    root, folders = study
    for args, words in (
        (("dataset", "build", tmp_path, "--out", tmp_path / "d"), "not a session folder"),
        (("recognize", tmp_path, "--out", tmp_path / "r"), "no dataset.h5"),
        (("recognize", root / "ds", "--out", tmp_path / "r", "--modalities", "face,nose"), "nose"),
        (("recognize", root / "ds", "--out", tmp_path / "r", "--epochs", "0"), "at least 1"),
        (("recognize", root / "ds", "--out", tmp_path / "r", "--inner-k", "1"), "--inner-k"),
    ):
        res = mmme(*args, timeout=60)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
        assert words in res.stderr


def test_the_deep_models_over_loso(study):
    """TSFmicro on the face and EEGNet on the EEG, trained inside each fold, their epochs
    chosen on the training subjects, voting with an SVM."""
    import os

    if not os.environ.get("CI"):
        pytest.importorskip("torch")
    root, folders = study
    if not (root / "ds" / "dataset.h5").exists():  # this test alone
        assert mmme("dataset", "build", *folders, "--out", root / "ds").returncode == 0
    out = root / "deep"
    res = mmme("recognize", root / "ds", "--out", out, "--modalities", "face,eeg,ecg",
               "--face-model", "tsfmicro", "--eeg-model", "eegnet", "--epochs", "2",
               "--inner-k", "2", "--classes", "3", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "recognition.json").read_text())
    assert report["models"] == {"face": "tsfmicro", "eeg": "eegnet", "ecg": "svm"}
    for fold in report["folds_detail"]:
        for m in ("face", "eeg"):
            params = fold["modalities"][m]["params"]
            assert 1 <= params["epochs"] <= 2 and len(params["inner_uar_by_epoch"]) == 2
    assert set(report["training_samples_per_s"]) == {"face", "eeg"}
    assert report["provenance"]["deep"]["models"] == {"face": "tsfmicro", "eeg": "eegnet"}
    assert "torch" in report["provenance"]["versions"]
    rows = {r["modality"] for r in json.loads(res.stdout)["table"]}
    assert rows == {"face", "eeg", "ecg", "fusion", "fusion_precision", "prob_average"}
