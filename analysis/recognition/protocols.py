"""Subject-independent protocols: leave-one-subject-out, subject k-fold, inner folds
on the training subjects, and a guard that refuses a split leaking a subject.

Every split is a list of ``Fold(train, test)`` index arrays into the samples; the
subjects of a fold's test set never appear in its training set (``check_split``
raises otherwise, naming the subject), and inner folds for choosing
hyper-parameters are drawn from the training subjects only. Seeded: the same
seed gives the same folds; k-fold balances the folds' sample counts by assigning
subjects, largest first, to the fold with the fewest samples so far (ties broken by
the seeded order), as scikit-learn's GroupKFold does, after a seeded shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mmmelab.errors import LabError


class LeakError(LabError):
    """A subject is on both sides of a split."""


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray
    test: np.ndarray


def check_split(subjects: Sequence[str] | np.ndarray, fold: Fold) -> None:
    """Refuse a fold whose test subjects also train it (or that overlaps in samples)."""
    subj = np.asarray(subjects)
    both = sorted(set(subj[fold.train].tolist()) & set(subj[fold.test].tolist()))
    if both:
        raise LeakError(f"fold {fold.name}: subject(s) {', '.join(map(str, both))} are in both "
                        f"the training and the test set")  # fmt: skip
    shared = np.intersect1d(fold.train, fold.test)
    if len(shared):
        raise LeakError(f"fold {fold.name}: {len(shared)} sample(s) in both sets")


def loso(subjects: Sequence[str] | np.ndarray) -> list[Fold]:
    """One fold per subject, in sorted order of the subjects."""
    subj = np.asarray([str(s) for s in subjects])
    idx = np.arange(len(subj))
    folds = [Fold(f"test {s}", idx[subj != s], idx[subj == s]) for s in sorted(set(subj))]
    if len(folds) < 2:
        raise LabError(f"leave-one-subject-out needs two or more subjects; found {len(folds)}")
    for f in folds:
        check_split(subj, f)
    return folds


def subject_kfold(subjects: Sequence[str] | np.ndarray, k: int = 10, seed: int = 0) -> list[Fold]:
    """``k`` folds of whole subjects with balanced sample counts (DFME uses 10)."""
    subj = np.asarray([str(s) for s in subjects])
    names = sorted(set(subj))
    if not 2 <= k <= len(names):
        raise LabError(f"subject {k}-fold needs 2 <= k <= the {len(names)} subjects")
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    counts = {s: int((subj == s).sum()) for s in names}
    order.sort(key=lambda s: -counts[s])  # stable: the seeded order breaks ties
    load = np.zeros(k, np.int64)
    members: list[list[str]] = [[] for _ in range(k)]
    for s in order:
        j = int(np.argmin(load))
        members[j].append(s)
        load[j] += counts[s]
    idx = np.arange(len(subj))
    folds = []
    for j, group in enumerate(members):
        test = np.isin(subj, group)
        folds.append(Fold(f"fold {j + 1} ({', '.join(sorted(group))})", idx[~test], idx[test]))
    for f in folds:
        check_split(subj, f)
    return folds


def inner_folds(subjects: Sequence[str] | np.ndarray, train: np.ndarray, k: int = 3,
                seed: int = 0) -> list[Fold]:  # fmt: skip
    """Folds for choosing hyper-parameters, from the training samples' subjects only;
    indices are into the whole sample list (a subset of ``train``)."""
    subj = np.asarray([str(s) for s in subjects])
    within = subj[train]
    n_subj = len(set(within.tolist()))
    k = min(k, n_subj)
    if k < 2:
        raise LabError("inner cross-validation needs two or more training subjects")
    folds = subject_kfold(within, k, seed)
    out = [Fold(f"inner {f.name}", train[f.train], train[f.test]) for f in folds]
    for f in out:
        check_split(subj, f)
    return out


@dataclass
class Learned:
    """What one modality's classifier gives for one outer fold: its test predictions
    (and class probabilities, for the averaging baseline), the settings its inner
    cross-validation chose, and that inner CV's predictions on the training subjects -
    the only source of the vote's weights."""

    predictions: list[str]
    probabilities: np.ndarray  # (test samples, labels), rows sum to 1
    params: dict[str, Any]
    inner_index: np.ndarray
    inner_predictions: list[str]
    inner_uar: float | None


class Learner(Protocol):
    """One modality's classifier over a protocol (an SVM on features, a deep model)."""

    name: str

    def fit_predict(self, y: np.ndarray, subjects: np.ndarray, train: np.ndarray,
                    test: np.ndarray, labels: Sequence[str], inner_k: int,
                    seed: int) -> Learned: ...  # fmt: skip
