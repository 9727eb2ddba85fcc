"""Classical classifiers per modality and the fused result over a protocol.

One RBF SVM per modality (scikit-learn: median imputation of missing features,
standardisation, ``SVC``), its C and gamma chosen by inner cross-validation on the
outer fold's training subjects only (subject folds, mean UAR). For the weighted
vote (``fusion``) each modality's weights p_ij come from its inner-CV predictions
with the chosen hyper-parameters - again the training subjects only - so no test
subject ever shapes a weight. ``run_protocol`` returns, per fold and modality, the
predictions, the chosen parameters and the weights, and the fused predictions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmmelab.analysis.recognition.fusion import weighted_vote, weights
from mmmelab.analysis.recognition.metrics import scores
from mmmelab.analysis.recognition.protocols import Fold, check_split, inner_folds

C_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
GAMMA_GRID: tuple[float | str, ...] = ("scale", 0.01, 0.1, 1.0)


def _model(c: float, gamma: float | str, seed: int) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        SVC(C=c, gamma=gamma, kernel="rbf", class_weight="balanced", random_state=seed),
    )


def _fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                 c: float, gamma: float | str, seed: int) -> np.ndarray:  # fmt: skip
    if len(set(y[train].tolist())) < 2:  # one class to learn from: it is the answer
        return np.full(len(test), y[train][0], dtype=object)
    model = _model(c, gamma, seed)
    model.fit(x[train], y[train])
    return np.asarray(model.predict(x[test]), dtype=object)


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


def _inner(
    x: np.ndarray,
    y: np.ndarray,
    subjects: np.ndarray,
    train: np.ndarray,
    labels: Sequence[str],
    k: int,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, float | None]:
    """The (C, gamma) of best mean inner UAR, and that choice's inner predictions."""
    folds = inner_folds(subjects, train, k, seed)
    best: tuple[float, dict[str, Any], np.ndarray, np.ndarray] | None = None
    for c, g in itertools.product(C_GRID, GAMMA_GRID):
        idx, pred, uars = [], [], []
        for f in folds:
            p = _fit_predict(x, y, f.train, f.test, c, g, seed)
            idx.append(f.test)
            pred.append(p)
            uars.append(scores(list(y[f.test]), list(p), labels).uar or 0.0)
        mean = float(np.mean(uars))
        if best is None or mean > best[0] + 1e-12:
            best = (mean, {"C": c, "gamma": g}, np.concatenate(idx), np.concatenate(pred))
    assert best is not None
    return best[1], best[2], best[3], best[0]


def run_protocol(
    features: Mapping[str, np.ndarray], labels_of: Sequence[str], subjects: Sequence[str],
    folds: list[Fold], labels: Sequence[str], inner_k: int = 3, seed: int = 0,
    weight: str = "recall", priority: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[FoldResult]:  # fmt: skip
    """Every modality's SVM and the weighted vote over ``folds``."""
    y = np.asarray([str(v) for v in labels_of], dtype=object)
    subj = np.asarray([str(s) for s in subjects])
    out = []
    for n, fold in enumerate(folds):
        check_split(subj, fold)
        res = FoldResult(fold.name, fold.test.tolist(), [str(v) for v in y[fold.test]])
        votes: dict[str, list[str]] = {}
        voter_w: dict[str, np.ndarray] = {}
        for name, x in features.items():
            x = np.asarray(x, dtype=np.float64)
            params, idx, inner_pred, inner_uar = _inner(x, y, subj, fold.train, labels,
                                                        inner_k, seed)  # fmt: skip
            w = weights(list(y[idx]), list(inner_pred), labels, weight)
            pred = _fit_predict(x, y, fold.train, fold.test, params["C"], params["gamma"], seed)
            res.modalities[name] = ModalityFold([str(p) for p in pred], params, w.tolist(),
                                                inner_uar)  # fmt: skip
            votes[name], voter_w[name] = [str(p) for p in pred], w
        res.fused, res.fusion_details = weighted_vote(votes, voter_w, labels, priority)
        out.append(res)
        if progress:
            progress(n + 1, len(folds))
    return out
