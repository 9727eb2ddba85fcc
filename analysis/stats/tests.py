"""Paired t-tests and Benjamini-Hochberg q-values, with their degenerate cases stated.

``paired_t`` is ``scipy.stats.ttest_rel(pre, post)`` on the complete pairs (t > 0
when pre > post, as in the MMME paper's Table 3), returning n, the means and SDs,
t, p and a note when the test is undefined (fewer than 2 pairs, or every
difference equal). ``bh_qvalues`` is the Benjamini-Hochberg step-up adjustment
(equal to ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``), NaN
p-values passed through and left out of the count.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedT:
    n: int
    mean_pre: float
    sd_pre: float
    mean_post: float
    sd_post: float
    t: float
    p: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_t(pre: np.ndarray, post: np.ndarray) -> PairedT:
    pre, post = np.asarray(pre, float), np.asarray(post, float)
    ok = np.isfinite(pre) & np.isfinite(post)
    a, b = pre[ok], post[ok]
    n = int(ok.sum())
    nan = float("nan")

    def sd(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1)) if len(x) > 1 else nan

    means = (float(a.mean()) if n else nan, sd(a), float(b.mean()) if n else nan, sd(b))
    if n < 2:
        return PairedT(n, *means, nan, nan, f"{n} complete pair(s); the test needs 2")
    d = a - b
    if np.all(d == d[0]):
        return PairedT(n, *means, nan, nan, "every difference is equal; t is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        res = stats.ttest_rel(a, b)
    return PairedT(n, *means, float(res.statistic), float(res.pvalue))


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q), NaN where p is NaN."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if not m:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q


def mean_ci(x: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, ...]:
    """Mean and the t-based confidence interval over ``axis`` (NaNs left out)."""
    x = np.asarray(x, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        n = np.sum(np.isfinite(x), axis=axis)
        m = np.nanmean(x, axis=axis)
        se = np.nanstd(x, axis=axis, ddof=1) / np.sqrt(n)
        h = se * stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1))
    return m, m - h, m + h
