"""Recognition metrics that cannot be subtly wrong (MEGC 2019; DFME eqs. 8-11).

Per class c of the label space, one-vs-rest: TP, FP, FN, N_c (its ground-truth
count). Then

* accuracy = sum TP / sum N;
* F1_c = 2 TP / (2 TP + FP + FN) (TSFmicro's eq. 14 misprints the denominator);
* recall_c = TP / N_c;
* UF1 = mean F1_c and UAR = mean recall_c over the classes **present in the ground
  truth** (the MEGC convention: a recall of a class with no sample is undefined);
  ``average_over="all"`` takes every class of the label space instead, an absent
  class counting 0 (scikit-learn's ``zero_division=0`` over all labels);
* weighted F1: the F1_c weighted by N_c (MMME's "F1", which is neither accuracy nor
  micro-F1; paper_spec.md).

Nothing is dropped: the code copied across ME repositories wraps each class's
2x2 confusion matrix in a ``try`` and silently leaves a degenerate class out of
the mean. Here every class comes back with its counts and a status - ``present``,
``absent from the ground truth (predicted k times)`` or ``absent`` - and the classes
the means used are listed.

Folds: ``pooled`` computes the metrics once over every fold's predictions (the
MEGC way), ``per_fold`` computes them per fold and gives mean and SD (ddof 1) over
the folds that have samples; both are labelled in ``evaluate``'s output, since
published tables mix them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EMOTIONS_7 = ("happiness", "surprise", "sadness", "fear", "anger", "disgust", "contempt")
CLASSES_3 = ("negative", "positive", "surprise")
#: MMME's 3-class map (paper_spec.md: Table 4's "neutral" footnote is surprise)
TO_3 = {"anger": "negative", "disgust": "negative", "fear": "negative", "sadness": "negative",
        "contempt": "negative", "happiness": "positive", "surprise": "surprise"}  # fmt: skip


@dataclass(frozen=True)
class ClassScore:
    label: str
    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    f1: float | None
    recall: float | None
    status: str


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float | None
    uf1: float | None
    uar: float | None
    weighted_f1: float | None
    averaged_over: list[str]
    classes: list[ClassScore]
    confusion: list[list[int]]  # rows: true class, columns: predicted, in ``labels`` order
    labels: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels against {len(y_pred)} predictions")
    pos = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t not in pos or p not in pos:
            raise ValueError(f"label {t if t not in pos else p!r} is not in the label space "
                             f"{list(labels)}")  # fmt: skip
        m[pos[t], pos[p]] += 1
    return m


def scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
           average_over: str = "present") -> Scores:  # fmt: skip
    """The metrics of one set of predictions (see the module docstring)."""
    if average_over not in ("present", "all"):
        raise ValueError(f"average_over must be 'present' or 'all', not {average_over!r}")
    labels = [str(c) for c in labels]
    m = confusion([str(t) for t in y_true], [str(p) for p in y_pred], labels)
    n = int(m.sum())
    tp = np.diag(m)
    n_true, n_pred = m.sum(axis=1), m.sum(axis=0)
    fp, fn = n_pred - tp, n_true - tp
    classes = []
    for i, c in enumerate(labels):
        denom = 2 * tp[i] + fp[i] + fn[i]
        f1 = float(2 * tp[i] / denom) if denom else None
        recall = float(tp[i] / n_true[i]) if n_true[i] else None
        if n_true[i]:
            status = "present"
        elif n_pred[i]:
            status = f"absent from the ground truth (predicted {int(n_pred[i])} times)"
        else:
            status = "absent"
        classes.append(ClassScore(c, int(n_true[i]), int(n_pred[i]), int(tp[i]), int(fp[i]),
                                  int(fn[i]), f1, recall, status))  # fmt: skip
    used = [k for k in classes if k.n_true > 0] if average_over == "present" else classes
    if not n or not used:
        return Scores(n, None, None, None, None, [k.label for k in used], classes,
                      m.tolist(), labels)  # fmt: skip
    f1s = [k.f1 or 0.0 for k in used]
    recalls = [k.recall or 0.0 for k in used]
    weights = np.array([k.n_true for k in classes], dtype=np.float64)
    weighted = float(np.dot([k.f1 or 0.0 for k in classes], weights) / weights.sum())
    return Scores(n, float(tp.sum() / n), float(np.mean(f1s)), float(np.mean(recalls)),
                  weighted, [k.label for k in used], classes, m.tolist(), labels)  # fmt: skip


METRICS = ("accuracy", "weighted_f1", "uf1", "uar")


def evaluate(folds: Sequence[tuple[Sequence[str], Sequence[str]]], labels: Sequence[str],
             average_over: str = "present") -> dict[str, Any]:  # fmt: skip
    """``folds`` = [(y_true, y_pred), ...]: the metrics pooled over every fold, and per
    fold with their mean and SD - each labelled."""
    all_true = [t for y, _ in folds for t in y]
    all_pred = [p for _, q in folds for p in q]
    pooled = scores(all_true, all_pred, labels, average_over)
    per = [scores(y, q, labels, average_over) for y, q in folds]
    summary: dict[str, Any] = {}
    for key in METRICS:
        vals = [getattr(s, key) for s in per if getattr(s, key) is not None]
        summary[key] = {
            "mean": float(np.mean(vals)) if vals else None,
            "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
            "folds": len(vals),
        }
    return {
        "pooled": pooled.to_dict() | {"how": "metrics over every fold's predictions together "
                                             "(MEGC)"},
        "per_fold_mean_sd": summary | {"how": "metrics per fold, then mean and SD (ddof 1) "
                                              "over the folds with samples"},
        "folds": [s.to_dict() for s in per],
        "average_over": average_over,
        "labels": list(labels),
    }  # fmt: skip


def confusion_png(m: np.ndarray | list[list[int]], labels: Sequence[str], path: Any,
                  title: str = "") -> Any:  # fmt: skip
    """The confusion matrix as a PNG: counts, and row-normalised shading (recall)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(m)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
