"""The paper's weighted vote (MMME eqs. 7-10) and plain probability averaging.

Each sub-classifier i votes one class (one-hot C_i); its vote for class j counts
with the weight p_ij; the fused class is ``argmax_j sum_i c_ij p_ij``. The paper
calls p_ij both a "predicted probability" and a "per-class accuracy"; paper_spec.md
settles it as the per-class accuracy, i.e. **recall** - TP_j / N_j of classifier i,
estimated by inner cross-validation on the training subjects only (``weights``).
The other reading - how often classifier i is right when it says j, its
**precision** - is ``weight="precision"``. A class the inner folds never held
(recall) or classifier i never predicted there (precision) weighs 0 for it.

Ties (equal summed weight) are broken, in order, by the highest single weight among
the tied classes' voters, then by the voter earliest in ``priority`` (by default the
order given; the CLI puts the face first, as paper_spec.md says), then by the label
order. Note that with MMME's seven voters the five peripheral SVMs outnumber the
face and the EEG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmmelab.analysis.recognition.metrics import confusion


def weights(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
            weight: str = "recall") -> np.ndarray:  # fmt: skip
    """p_i. for one classifier from its inner-CV predictions: per-class recall (TP_j /
    N_j, default) or precision (TP_j / predicted_j); 0 where undefined."""
    if weight not in ("recall", "precision"):
        raise ValueError(f"weight must be 'recall' or 'precision', not {weight!r}")
    m = confusion(list(y_true), list(y_pred), labels).astype(np.float64)
    tp = np.diag(m)
    base = m.sum(axis=1) if weight == "recall" else m.sum(axis=0)
    return np.divide(tp, base, out=np.zeros(len(labels)), where=base > 0)


def weighted_vote(votes: Mapping[str, Sequence[str]], voter_weights: Mapping[str, np.ndarray],
                  labels: Sequence[str], priority: Sequence[str] | None = None,
                  ) -> tuple[list[str], list[dict[str, Any]]]:  # fmt: skip
    """Fused labels for every sample, and per sample the summed weights and how a tie
    (if any) was broken."""
    names = list(votes)
    if not names:
        raise ValueError("no sub-classifier to fuse")
    n = {len(v) for v in votes.values()}
    if len(n) != 1:
        raise ValueError(f"the sub-classifiers voted on different numbers of samples {sorted(n)}")
    order = list(priority) if priority is not None else names
    rank = {v: order.index(v) if v in order else len(order) + names.index(v) for v in names}
    pos = {c: j for j, c in enumerate(labels)}
    fused, details = [], []
    for s in range(n.pop()):
        total = np.zeros(len(labels))
        best_single = np.zeros(len(labels))
        first_voter = np.full(len(labels), 10**9)
        for v in names:
            j = pos[str(votes[v][s])]
            w = float(voter_weights[v][j])
            total[j] += w
            best_single[j] = max(best_single[j], w)
            first_voter[j] = min(first_voter[j], rank[v])
        top = np.flatnonzero(np.isclose(total, total.max(), rtol=0, atol=1e-12))
        how = "weights"
        if len(top) > 1:
            how = "tie: highest single weight"
            top = top[np.isclose(best_single[top], best_single[top].max(), rtol=0, atol=1e-12)]
            if len(top) > 1:
                how = "tie: earliest voter in the priority"
                top = top[first_voter[top] == first_voter[top].min()]
            if len(top) > 1:
                how = "tie: label order"
        k = int(top[0])
        fused.append(str(labels[k]))
        details.append({"scores": dict(zip(labels, total.round(6).tolist(), strict=True)),
                        "chosen": str(labels[k]), "how": how})  # fmt: skip
    return fused, details


def probability_average(probas: Mapping[str, np.ndarray], labels: Sequence[str]) -> list[str]:
    """The baseline: the mean of the sub-classifiers' class probabilities, arg-max."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probas.values()])
    if stack.shape[-1] != len(labels):
        raise ValueError(f"probabilities over {stack.shape[-1]} classes, labels {len(labels)}")
    return [str(labels[int(k)]) for k in stack.mean(axis=0).argmax(axis=1)]
