"""The classical classifier of a modality: one RBF SVM on its feature row.

scikit-learn: median imputation of missing features, standardisation, ``SVC`` with
balanced class weights; C and gamma chosen by inner cross-validation on the outer
fold's training subjects only (subject folds, mean UAR). The chosen setting's inner
predictions - again the training subjects only - are what the vote's weights are
estimated from (``run.run_protocol``), so no test subject ever shapes a weight.
Class probabilities for the averaging baseline: Platt scaling fitted on 3-fold
predictions of the training samples (scikit-learn's ``CalibratedClassifierCV``,
seeded), or a softmax of the decision function when a class has one training sample.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmmelab.analysis.recognition.metrics import scores
from mmmelab.analysis.recognition.protocols import Learned, inner_folds

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
        SVC(
            C=c,
            gamma=gamma,
            kernel="rbf",
            class_weight="balanced",
            random_state=seed,
        ),
    )


def _fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                 c: float, gamma: float | str, seed: int) -> np.ndarray:  # fmt: skip
    if len(set(y[train].tolist())) < 2:  # one class to learn from: it is the answer
        return np.full(len(test), y[train][0], dtype=object)
    model = _model(c, gamma, seed)
    model.fit(x[train], y[train])
    return np.asarray(model.predict(x[test]), dtype=object)


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


def _final(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
           labels: Sequence[str], c: float, gamma: float | str,
           seed: int) -> tuple[list[str], np.ndarray, str]:  # fmt: skip
    """Test predictions, class probabilities (columns in ``labels`` order) and how the
    probabilities were made."""
    classes, counts = np.unique(y[train].astype(str), return_counts=True)
    proba = np.zeros((len(test), len(labels)))
    if len(classes) < 2:  # one class to learn from: it is the answer, with certainty
        proba[:, list(labels).index(str(classes[0]))] = 1.0
        return [str(classes[0])] * len(test), proba, "one class in training"
    model = _model(c, gamma, seed)
    model.fit(x[train], y[train])
    pred = [str(p) for p in model.predict(x[test])]
    k = int(min(3, counts.min()))
    if k >= 2:  # Platt scaling on 3-fold predictions of the training samples
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(k, shuffle=True, random_state=seed)
        cal = CalibratedClassifierCV(_model(c, gamma, seed), method="sigmoid", ensemble=False,
                                     cv=folds)  # fmt: skip
        cal.fit(x[train], y[train])
        got, order, how = cal.predict_proba(x[test]), cal.classes_, f"Platt, {k}-fold"
    else:  # a class with one training sample: softmax of the one-vs-rest decision
        d = np.asarray(model.decision_function(x[test]), dtype=np.float64)
        e = np.exp(d - d.max(axis=1, keepdims=True))
        got, order, how = e / e.sum(axis=1, keepdims=True), model.classes_, "decision softmax"
    for col, cls in enumerate(order):
        proba[:, list(labels).index(str(cls))] = got[:, col]
    return pred, proba, how


class SVMLearner:
    """One modality's RBF SVM on its feature matrix ``x`` (samples x features)."""

    name = "svm"

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=np.float64)

    def fit_predict(self, y: np.ndarray, subjects: np.ndarray, train: np.ndarray,
                    test: np.ndarray, labels: Sequence[str], inner_k: int,
                    seed: int) -> Learned:  # fmt: skip
        params, idx, inner_pred, inner_uar = _inner(self.x, y, subjects, train, labels,
                                                    inner_k, seed)  # fmt: skip
        pred, proba, how = _final(self.x, y, train, test, labels, params["C"], params["gamma"],
                                  seed)  # fmt: skip
        return Learned(pred, proba, params | {"probabilities": how}, idx,
                       [str(p) for p in inner_pred], inner_uar)  # fmt: skip
