"""``mmme recognize DS``: one classifier per modality and their fusion over a
subject-independent protocol, with the metrics pooled and per fold.

Per modality: the classical classifier (an RBF SVM on the modality's features,
``classical``) or, for the face and the EEG, a deep model (``--face-model htnet|
tsfmicro``, ``--eeg-model eegnet``: ``training``). Fused: the paper's weighted vote
(eqs. 7-10) with ``--weight`` (recall, paper_spec's reading, by default); the vote
with the other reading and plain probability averaging are computed from the same
fold models and reported beside it as ``fusion_precision``/``fusion_recall`` and
``prob_average``, so the choice can be judged.

Writes to ``--out``: ``recognition.json`` (every figure, per fold, the chosen
hyper-parameters or epochs and the vote weights, the provenance: dataset hash,
seeds, versions), ``recognition.tsv`` (a Table 7/8-like table: one row per modality
and fusion, pooled and per-fold mean +- SD, labelled) and a confusion matrix PNG
per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.provenance import jsonable, sha256, versions
from mmmelab.analysis.recognition.classical import SVMLearner
from mmmelab.analysis.recognition.dataset import FILE, load_features
from mmmelab.analysis.recognition.fusion import probability_average, weighted_vote, weights
from mmmelab.analysis.recognition.metrics import (
    CLASSES_3,
    EMOTIONS_7,
    METRICS,
    confusion_png,
    evaluate,
)
from mmmelab.analysis.recognition.protocols import Fold, Learner, check_split, loso, subject_kfold
from mmmelab.errors import LabError

#: CLI names -> the dataset's feature groups
MODALITIES = {"face": "FACE", "eeg": "EEG", "ecg": "ECG", "ppg": "PPG", "rsp": "RSP",
              "skt": "SKT", "eda": "EDA"}  # fmt: skip
PRIORITY = ("face", "eeg", "ecg", "ppg", "rsp", "skt", "eda")  # the vote's tie order
FACE_MODELS = ("mdmo", "htnet", "tsfmicro")
EEG_MODELS = ("bandpower", "eegnet")


@dataclass
class ModalityFold:
    predictions: list[str]
    params: dict[str, Any]
    weights: list[float]
    inner_uar: float | None


@dataclass
class FoldResult:
    fold: str
    test: list[int]
    truth: list[str]
    modalities: dict[str, ModalityFold] = field(default_factory=dict)
    fused: list[str] = field(default_factory=list)
    fusion_details: list[dict[str, Any]] = field(default_factory=list)
    fused_other: list[str] = field(default_factory=list)  # the other weight reading
    averaged: list[str] = field(default_factory=list)  # probability averaging


def run_protocol(
    learners: Mapping[str, Learner | np.ndarray], labels_of: Sequence[str],
    subjects: Sequence[str], folds: list[Fold], labels: Sequence[str], inner_k: int = 3,
    seed: int = 0, weight: str = "recall", priority: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[FoldResult]:  # fmt: skip
    """Every modality's classifier (a feature matrix means an SVM on it) and the
    fusions over ``folds``; the weights come from each classifier's inner CV."""
    if weight not in ("recall", "precision"):
        raise LabError(f"--weight {weight}: recall or precision")
    other = "precision" if weight == "recall" else "recall"
    models = {k: SVMLearner(v) if isinstance(v, np.ndarray) else v for k, v in learners.items()}
    y = np.asarray([str(v) for v in labels_of], dtype=object)
    subj = np.asarray([str(s) for s in subjects])
    out = []
    for n, fold in enumerate(folds):
        check_split(subj, fold)
        res = FoldResult(fold.name, fold.test.tolist(), [str(v) for v in y[fold.test]])
        votes: dict[str, list[str]] = {}
        w_main: dict[str, np.ndarray] = {}
        w_other: dict[str, np.ndarray] = {}
        probas: dict[str, np.ndarray] = {}
        for name, ln in models.items():
            got = ln.fit_predict(y, subj, fold.train, fold.test, labels, inner_k, seed)
            inner_truth = [str(v) for v in y[got.inner_index]]
            w_main[name] = weights(inner_truth, got.inner_predictions, labels, weight)
            w_other[name] = weights(inner_truth, got.inner_predictions, labels, other)
            res.modalities[name] = ModalityFold(got.predictions, got.params,
                                                w_main[name].tolist(), got.inner_uar)  # fmt: skip
            votes[name], probas[name] = got.predictions, got.probabilities
        res.fused, res.fusion_details = weighted_vote(votes, w_main, labels, priority)
        res.fused_other = weighted_vote(votes, w_other, labels, priority)[0]
        res.averaged = probability_average(probas, labels)
        out.append(res)
        if progress:
            progress(n + 1, len(folds))
    return out


def recognize(ds: Path, out: Path, protocol: str = "loso", k: int = 10,
              modalities: Sequence[str] = tuple(MODALITIES), classes: int = 7,
              weight: str = "recall", seed: int = 0, inner_k: int = 3,
              progress: Callable[[int, int], None] | None = None, face_model: str = "mdmo",
              eeg_model: str = "bandpower", train: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run the protocol and write the outputs (see the module's docstring). ``train``:
    a ``training.TrainSettings`` for the deep models (their defaults when None)."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise LabError(f"--modalities: {', '.join(unknown)} not among {', '.join(MODALITIES)}")
    if face_model not in FACE_MODELS:
        raise LabError(f"--face-model {face_model}: one of {', '.join(FACE_MODELS)}")
    if eeg_model not in EEG_MODELS:
        raise LabError(f"--eeg-model {eeg_model}: one of {', '.join(EEG_MODELS)}")
    feats, index, names = load_features(ds)
    if classes not in (3, 7):
        raise LabError(f"--classes {classes}: 7 (the emotions) or 3 (negative/positive/surprise)")
    chosen = {"face": face_model, "eeg": eeg_model}
    deep = {m: chosen[m] for m in modalities if chosen.get(m) in ("htnet", "tsfmicro", "eegnet")}
    missing = [m for m in modalities if m not in deep and MODALITIES[m] not in feats]
    if missing:
        raise LabError(f"{ds}: the dataset has no {', '.join(missing)} features")
    labels = list(EMOTIONS_7) if classes == 7 else list(CLASSES_3)
    y = [r["emotion"] if classes == 7 else r["label3"] for r in index]
    subjects = [r["subject"] for r in index]
    folds = loso(subjects) if protocol == "loso" else subject_kfold(subjects, k, seed)
    learners: dict[str, Learner | np.ndarray] = {}
    settings = None
    if deep:
        from mmmelab.analysis.recognition.training import DeepLearner, TrainSettings, load_inputs

        settings = train or TrainSettings()
        for m, kind in deep.items():
            inputs, have = load_inputs(ds, kind, index, settings.size)
            learners[m] = DeepLearner(kind, inputs, have, settings, len(labels))
    for m in modalities:
        if m not in deep:
            learners[m] = feats[MODALITIES[m]]
    learners = {m: learners[m] for m in modalities}  # in the order asked
    results = run_protocol(learners, y, subjects, folds, labels, inner_k, seed, weight,
                           [m for m in PRIORITY if m in learners], progress)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    other = "precision" if weight == "recall" else "recall"
    rows_of = [*learners, "fusion", f"fusion_{other}", "prob_average"]
    table: dict[str, Any] = {}
    rows = []
    for name in rows_of:
        ev = evaluate([(r.truth, _predictions(r, name)) for r in results], labels)
        table[name] = ev
        confusion_png(ev["pooled"]["confusion"], labels, out / f"confusion_{name}.png",
                      f"{name}, {protocol}, pooled")  # fmt: skip
        rows.append(_row(name, ev))
    _tsv(out / "recognition.tsv", rows)
    speed = {m: round(ln.samples_per_s() or 0.0, 1) for m, ln in learners.items()
             if hasattr(ln, "samples_per_s")}  # fmt: skip
    report = {
        "protocol": protocol, "folds": [f.name for f in folds], "classes": labels,
        "modalities": list(learners), "models": {m: deep.get(m, "svm") for m in learners}
        | ({"face_features": face_model} if "face" in learners and "face" not in deep else {}),
        "weight": weight, "table": rows, "metrics": table,
        "folds_detail": [{"fold": r.fold, "test": r.test, "truth": r.truth, "fused": r.fused,
                          f"fused_{other}": r.fused_other, "prob_average": r.averaged,
                          "modalities": {m: vars(mf) for m, mf in r.modalities.items()}}
                         for r in results],  # fmt: skip
        "chance_uar": 1.0 / len(labels),
        "feature_names": {m: names[MODALITIES[m]] for m in learners if m not in deep},
        "training_samples_per_s": speed,
        "provenance": _provenance(ds, seed, inner_k, k if protocol == "kfold" else None, weight,
                                  list(learners), deep, settings),
    }  # fmt: skip
    (out / "recognition.json").write_text(json.dumps(report, indent=1, default=jsonable))
    return report


def _predictions(r: FoldResult, row: str) -> list[str]:
    """A fold's predictions of one table row (a modality or a fusion)."""
    if row in r.modalities:
        return r.modalities[row].predictions
    return {"fusion": r.fused, "prob_average": r.averaged}.get(row, r.fused_other)


def _row(name: str, ev: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"modality": name}
    for key in METRICS:
        row[f"{key}_pooled"] = ev["pooled"][key]
        row[f"{key}_mean"] = ev["per_fold_mean_sd"][key]["mean"]
        row[f"{key}_sd"] = ev["per_fold_mean_sd"][key]["sd"]
    row["recall_per_class"] = {c["label"]: c["recall"] for c in ev["pooled"]["classes"]}
    return row


def _provenance(ds: Path, seed: int, inner_k: int, k: int | None, weight: str,
                voters: list[str], deep: dict[str, str],
                settings: Any) -> dict[str, Any]:  # fmt: skip
    ds_file = Path(ds) / FILE if Path(ds).is_dir() else Path(ds)
    pkgs = ["numpy", "scipy", "scikit-learn", "h5py"] + (["torch", "braindecode"] if deep else [])
    return {
        "dataset_sha256": sha256(ds_file), "seed": seed, "inner_k": inner_k, "k": k,
        "classifier": "RBF SVC per modality (median imputation, standardisation, "
                      "class-balanced), C and gamma by inner subject CV (mean UAR)",
        "deep": {"models": deep, "epoch_selection": "best mean inner-CV UAR on the training "
                 "subjects", "settings": {k_: v for k_, v in vars(settings).items()
                                          if k_ != "epoch_progress"}} if deep else None,
        "fusion": f"MMME eqs. 7-10, weights = per-class {weight} from the inner CV; ties: "
                  "highest single weight, then " + " > ".join(m for m in PRIORITY if m in voters),
        "versions": versions(tuple(pkgs)),
    }  # fmt: skip


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _tsv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["modality", *[f"{m}_{w}" for m in METRICS for w in ("pooled", "mean", "sd")]]
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append("\t".join([r["modality"], *[_fmt(r[c]) for c in cols[1:]]]))
    path.write_text("\n".join(lines) + "\n")
