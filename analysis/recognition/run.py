"""``mmme recognize DS``: the classical per-modality classifiers and their weighted vote
over a subject-independent protocol, with the metrics pooled and per fold.

Writes to ``--out``: ``recognition.json`` (every figure, per fold, the chosen
hyper-parameters and vote weights, the provenance: dataset hash, seeds, versions),
``recognition.tsv`` (a Table 7/8-like table: one row per modality and the fusion,
pooled and per-fold mean +- SD, labelled) and a confusion matrix PNG per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mmmelab.analysis.provenance import jsonable, sha256, versions
from mmmelab.analysis.recognition.classical import run_protocol
from mmmelab.analysis.recognition.dataset import FILE, load_features
from mmmelab.analysis.recognition.metrics import (
    CLASSES_3,
    EMOTIONS_7,
    METRICS,
    confusion_png,
    evaluate,
)
from mmmelab.analysis.recognition.protocols import loso, subject_kfold
from mmmelab.errors import LabError

#: CLI names -> the dataset's feature groups
MODALITIES = {"face": "FACE", "eeg": "EEG", "ecg": "ECG", "ppg": "PPG", "rsp": "RSP",
              "skt": "SKT", "eda": "EDA"}  # fmt: skip
PRIORITY = ("face", "eeg", "ecg", "ppg", "rsp", "skt", "eda")  # the vote's tie order


def recognize(ds: Path, out: Path, protocol: str = "loso", k: int = 10,
              modalities: Sequence[str] = tuple(MODALITIES), classes: int = 7,
              weight: str = "recall", seed: int = 0, inner_k: int = 3,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise LabError(f"--modalities: {', '.join(unknown)} not among {', '.join(MODALITIES)}")
    feats, index, names = load_features(ds)
    missing = [m for m in modalities if MODALITIES[m] not in feats]
    if missing:
        raise LabError(f"{ds}: the dataset has no {', '.join(missing)} features")
    if classes not in (3, 7):
        raise LabError(f"--classes {classes}: 7 (the emotions) or 3 (negative/positive/surprise)")
    labels = list(EMOTIONS_7) if classes == 7 else list(CLASSES_3)
    y = [r["emotion"] if classes == 7 else r["label3"] for r in index]
    subjects = [r["subject"] for r in index]
    folds = loso(subjects) if protocol == "loso" else subject_kfold(subjects, k, seed)
    x = {m: feats[MODALITIES[m]] for m in modalities}
    results = run_protocol(x, y, subjects, folds, labels, inner_k, seed, weight,
                           [m for m in PRIORITY if m in x], progress)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    table: dict[str, Any] = {}
    rows = []
    for name in [*x, "fusion"]:
        per = [(r.truth, r.modalities[name].predictions if name != "fusion" else r.fused)
               for r in results]  # fmt: skip
        ev = evaluate(per, labels)
        table[name] = ev
        confusion_png(ev["pooled"]["confusion"], labels, out / f"confusion_{name}.png",
                      f"{name}, {protocol}, pooled")  # fmt: skip
        row: dict[str, Any] = {"modality": name}
        for key in METRICS:
            row[f"{key}_pooled"] = ev["pooled"][key]
            row[f"{key}_mean"] = ev["per_fold_mean_sd"][key]["mean"]
            row[f"{key}_sd"] = ev["per_fold_mean_sd"][key]["sd"]
        row["recall_per_class"] = {c["label"]: c["recall"] for c in ev["pooled"]["classes"]}
        rows.append(row)
    _tsv(out / "recognition.tsv", rows)
    ds_file = Path(ds) / FILE if Path(ds).is_dir() else Path(ds)
    report = {
        "protocol": protocol, "folds": [f.name for f in folds], "classes": labels,
        "modalities": list(x), "weight": weight, "table": rows, "metrics": table,
        "folds_detail": [{"fold": r.fold, "test": r.test, "truth": r.truth, "fused": r.fused,
                          "modalities": {m: vars(mf) for m, mf in r.modalities.items()}}
                         for r in results],  # fmt: skip
        "chance_uar": 1.0 / len(labels),
        "feature_names": {m: names[MODALITIES[m]] for m in x},
        "provenance": {"dataset_sha256": sha256(ds_file), "seed": seed, "inner_k": inner_k,
                       "k": k if protocol == "kfold" else None,
                       "classifier": "RBF SVC per modality (median imputation, "
                                     "standardisation, class-balanced), C and gamma by inner "
                                     "subject CV (mean UAR)",
                       "fusion": f"MMME eqs. 7-10, weights = per-class {weight} from the "
                                 "inner CV; ties: highest single weight, then "
                                 + " > ".join(m for m in PRIORITY if m in x),
                       "versions": versions(("numpy", "scipy", "scikit-learn", "h5py"))},
    }  # fmt: skip
    (out / "recognition.json").write_text(json.dumps(report, indent=1, default=jsonable))
    return report


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _tsv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = ["modality", *[f"{m}_{w}" for m in METRICS for w in ("pooled", "mean", "sd")]]
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append("\t".join([r["modality"], *[_fmt(r[c]) for c in cols[1:]]]))
    path.write_text("\n".join(lines) + "\n")
