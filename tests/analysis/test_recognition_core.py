"""Recognition metrics equal scikit-learn (degenerate cases included, nothing dropped),
the protocols never leak a subject, and the weighted vote on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mmmelab.analysis.recognition.fusion import probability_average, weighted_vote, weights
from mmmelab.analysis.recognition.metrics import (
    CLASSES_3,
    EMOTIONS_7,
    TO_3,
    confusion_png,
    evaluate,
    scores,
)
from mmmelab.analysis.recognition.protocols import (
    Fold,
    LeakError,
    check_split,
    inner_folds,
    loso,
    subject_kfold,
)

RNG = np.random.default_rng(11)
L7 = list(EMOTIONS_7)


def _ref(y, p, labels):
    present = [c for c in labels if c in set(y)]
    return {
        "accuracy": accuracy_score(y, p),
        "uf1": f1_score(y, p, labels=present, average="macro", zero_division=0),
        "uar": recall_score(y, p, labels=present, average="macro", zero_division=0),
        "weighted_f1": f1_score(y, p, labels=labels, average="weighted", zero_division=0),
    }


CASES = {
    "random": (list(RNG.choice(L7, 60)), list(RNG.choice(L7, 60))),
    "a class never predicted": (["anger"] * 5 + ["fear"] * 5, ["anger"] * 10),
    "a class absent from the truth but predicted": (["anger"] * 6, ["anger"] * 4 + ["fear"] * 2),
    "perfect": (["happiness", "surprise"] * 4, ["happiness", "surprise"] * 4),
    "all wrong": (["happiness"] * 3 + ["surprise"] * 3, ["surprise"] * 3 + ["happiness"] * 3),
    "one sample": (["disgust"], ["contempt"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_equal_scikit_learn(case):
    y, p = CASES[case]
    ours = scores(y, p, L7)
    for key, ref in _ref(y, p, L7).items():
        assert getattr(ours, key) == pytest.approx(ref, abs=1e-12), (case, key)
    # every class is reported, whatever its fate
    assert [c.label for c in ours.classes] == L7
    assert sum(c.n_true for c in ours.classes) == len(y)


def test_absent_classes_are_reported_and_averaging_over_all_is_an_option():
    y, p = CASES["a class absent from the truth but predicted"]
    s = scores(y, p, L7)
    by = {c.label: c for c in s.classes}
    assert by["fear"].status == "absent from the ground truth (predicted 2 times)"
    assert by["fear"].recall is None and by["fear"].f1 == 0.0
    assert by["happiness"].status == "absent" and by["happiness"].f1 is None
    assert s.averaged_over == ["anger"]
    every = scores(y, p, L7, average_over="all")
    ref = recall_score(y, p, labels=L7, average="macro", zero_division=0)
    assert every.uar == pytest.approx(ref) and len(every.averaged_over) == 7
    assert scores([], [], L7).accuracy is None
    with pytest.raises(ValueError, match="not in the label space"):
        scores(["joy"], ["anger"], L7)


def test_pooled_and_per_fold_are_both_given_and_differ():
    folds = [(["anger", "anger", "fear"], ["anger", "fear", "fear"]),
             (["happiness"] * 4, ["happiness"] * 2 + ["anger"] * 2)]  # fmt: skip
    out = evaluate(folds, L7)
    pooled_y = [t for y, _ in folds for t in y]
    pooled_p = [q for _, p in folds for q in p]
    assert out["pooled"]["uar"] == pytest.approx(_ref(pooled_y, pooled_p, L7)["uar"])
    per = [_ref(y, p, L7)["uar"] for y, p in folds]
    assert out["per_fold_mean_sd"]["uar"]["mean"] == pytest.approx(np.mean(per))
    assert out["per_fold_mean_sd"]["uar"]["sd"] == pytest.approx(np.std(per, ddof=1))
    assert out["pooled"]["uar"] != pytest.approx(out["per_fold_mean_sd"]["uar"]["mean"])
    assert "MEGC" in out["pooled"]["how"] and "per fold" in out["per_fold_mean_sd"]["how"]
    assert {TO_3[e] for e in L7} == set(CLASSES_3)


def test_confusion_png(tmp_path):
    s = scores(*CASES["random"], L7)
    path = confusion_png(s.confusion, L7, tmp_path / "cm.png", "random")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SUBJECTS = [f"S{k:02d}" for k in range(1, 8) for _ in range(k)]  # 1..7 samples each


def test_loso_and_kfold_keep_subjects_apart_and_are_seeded():
    folds = loso(SUBJECTS)
    assert len(folds) == 7 and all(len(f.train) + len(f.test) == len(SUBJECTS) for f in folds)
    k3 = subject_kfold(SUBJECTS, 3, seed=2)
    assert [f.name for f in k3] == [f.name for f in subject_kfold(SUBJECTS, 3, seed=2)]
    assert sorted(np.concatenate([f.test for f in k3]).tolist()) == list(range(len(SUBJECTS)))
    sizes = sorted(len(f.test) for f in k3)
    assert sizes[-1] - sizes[0] <= 2  # balanced by samples (28 in 3 folds)
    inner = inner_folds(SUBJECTS, folds[0].train, 3, seed=1)
    subj = np.asarray(SUBJECTS)
    for f in inner:
        assert set(f.train) | set(f.test) <= set(folds[0].train)  # training subjects only
        assert not set(subj[f.test]) & set(subj[f.train])
    with pytest.raises(Exception, match="two or more subjects"):
        loso(["S1", "S1"])


def test_the_guard_refuses_a_split_that_leaks():
    idx = np.arange(len(SUBJECTS))
    leaky = Fold("leaky", idx[:10], idx[9:15])  # sample 9's subject on both sides
    with pytest.raises(LeakError, match="S04"):
        check_split(SUBJECTS, leaky)


LABELS = ["negative", "positive", "surprise"]


def test_weighted_vote_by_hand():
    w = {"face": np.array([0.6, 0.9, 0.5]), "eeg": np.array([0.7, 0.2, 0.4]),
         "ecg": np.array([0.3, 0.3, 0.8])}  # fmt: skip
    votes = {
        "face": ["positive", "negative", "surprise", "negative"],
        "eeg": ["negative", "negative", "positive", "surprise"],
        "ecg": ["negative", "surprise", "positive", "positive"],
    }
    fused, details = weighted_vote(votes, w, LABELS, priority=["face", "eeg", "ecg"])
    # sample 0: negative 0.7 + 0.3 = 1.0 against positive 0.9 -> negative
    # sample 1: negative 0.6 + 0.7 = 1.3 against surprise 0.8 -> negative
    # sample 2: surprise 0.5; positive 0.2 + 0.3 = 0.5: a tie; the highest single weight
    #           (0.5 for surprise, 0.3 for positive) -> surprise
    # sample 3: negative 0.6, surprise 0.4, positive 0.3 -> negative
    assert fused == ["negative", "negative", "surprise", "negative"]
    assert details[0]["scores"] == {"negative": 1.0, "positive": 0.9, "surprise": 0.0}
    assert details[2]["how"] == "tie: highest single weight"
    tie = {"face": ["positive"], "eeg": ["negative"]}
    same = {"face": np.array([0.5, 0.5, 0.5]), "eeg": np.array([0.5, 0.5, 0.5])}
    out, d = weighted_vote(tie, same, LABELS, priority=["face", "eeg"])
    assert out == ["positive"] and d[0]["how"] == "tie: earliest voter in the priority"


def test_weights_are_per_class_recall_or_precision():
    y = ["negative", "negative", "positive", "surprise", "surprise"]
    p = ["negative", "positive", "positive", "positive", "surprise"]
    assert weights(y, p, LABELS).tolist() == [0.5, 1.0, 0.5]
    assert weights(y, p, LABELS, "precision").tolist() == pytest.approx([1.0, 1 / 3, 1.0])
    assert weights(["negative"], ["negative"], LABELS).tolist() == [1.0, 0.0, 0.0]
    probs = {"a": np.array([[0.2, 0.5, 0.3]]), "b": np.array([[0.6, 0.1, 0.3]])}
    assert probability_average(probs, LABELS) == ["negative"]


def _simulated_features(n_subjects=10, per_class=4, seed=3):
    rng = np.random.default_rng(seed)
    labels, subjects, feats = [], [], {"clear": [], "weak": [], "noise": []}
    for s in range(n_subjects):
        offset = rng.normal(0, 0.3, 4)  # each subject's own baseline
        for j, c in enumerate(LABELS):
            for _ in range(per_class):
                labels.append(c)
                subjects.append(f"S{s:02d}")
                centre = np.eye(4)[j] * 3.0
                feats["clear"].append(centre + offset + rng.normal(0, 1.0, 4))
                feats["weak"].append(0.6 * centre + rng.normal(0, 1.5, 4))
                feats["noise"].append(rng.normal(0, 1.0, 4))
    return {k: np.array(v) for k, v in feats.items()}, labels, subjects


@pytest.mark.timeout(300)
def test_per_modality_svms_and_their_vote_over_loso():
    from mmmelab.analysis.recognition.run import run_protocol

    feats, y, subj = _simulated_features()
    feats["clear"][3, 1] = np.nan  # a missing feature is imputed, not fatal
    folds = loso(subj)
    seen = []
    results = run_protocol(feats, y, subj, folds, LABELS, progress=lambda i, n: seen.append(i))
    assert seen == list(range(1, len(folds) + 1))
    uar = {}
    for name in feats:
        per = [(r.truth, r.modalities[name].predictions) for r in results]
        uar[name] = evaluate(per, LABELS)["pooled"]["uar"]
    fused = evaluate([(r.truth, r.fused) for r in results], LABELS)["pooled"]["uar"]
    assert uar["clear"] > 0.8 and 0.15 < uar["noise"] < 0.55 and uar["weak"] > 0.45
    # a noise voter and a weak one can outvote the clear one now and then (as MMME's
    # five peripheral voters can outvote the face): above the others, near the best
    assert fused > uar["weak"] and fused >= uar["clear"] - 0.1
    r0 = results[0]
    assert set(r0.modalities["clear"].params) == {"C", "gamma", "probabilities"}
    assert r0.modalities["clear"].params["probabilities"] == "Platt, 3-fold"
    averaged = evaluate([(r.truth, r.averaged) for r in results], LABELS)["pooled"]["uar"]
    assert averaged > uar["weak"]  # the averaging baseline: probabilities that mean something
    assert all(len(r.fused_other) == len(r.truth) for r in results)
    assert len(r0.modalities["clear"].weights) == 3 and r0.modalities["clear"].inner_uar > 0.7
    assert r0.test == folds[0].test.tolist()


def test_the_simulated_emotions_move_the_physiology_as_their_table_says():
    from mmmelab.hardware_mocks import synth

    onsets = (10.0, 40.0)
    base = synth.make_physio(200.0, 60.0, 70.0, 4, onsets, hrv_seed=5, emotions=("fear", "sadness"),
                             emotion_scale=0.0)  # fmt: skip
    moved = synth.make_physio(200.0, 60.0, 70.0, 4, onsets, hrv_seed=5,
                              emotions=("fear", "sadness"), emotion_scale=2.0)  # fmt: skip
    t = np.arange(len(base["EDA"])) / 200.0

    def window(x, onset):
        return x[(t >= onset + 2) & (t < onset + 8)]

    d_eda = [float((window(moved["EDA"], o) - window(base["EDA"], o)).mean()) for o in onsets]
    table = synth.EMOTION_PHYSIO
    lag = np.arange(2.0, 8.0, 1 / 200.0) - 1.5  # the SCR's shape over that window
    shape = float(np.mean((1 - np.exp(-lag / 0.7)) * np.exp(-lag / 3.0)))
    assert d_eda[0] == pytest.approx(2.0 * table["fear"]["eda"] * shape, rel=0.02)
    assert d_eda[0] > 3 * d_eda[1] > 0  # fear's SCR is ten times sadness's
    d_skt = float((window(moved["SKT"], 10.0) - window(base["SKT"], 10.0)).mean())
    assert d_skt < -0.02  # fear cools the skin
    before = (t > 2) & (t < 8)
    assert np.allclose(moved["EDA"][before], base["EDA"][before])  # nothing before an event
