"""Paired t-tests, BH q-values and confidence intervals against scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mmmelab.analysis.stats import bh_qvalues, mean_ci, paired_t


def test_paired_t_equals_scipy_and_drops_incomplete_pairs():
    rng = np.random.default_rng(1)
    pre, post = rng.normal(70, 5, 30), rng.normal(72, 5, 30)
    res = paired_t(pre, post)
    ref = stats.ttest_rel(pre, post)
    assert (res.t, res.p, res.n) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 30)
    assert res.mean_pre == pytest.approx(pre.mean()) and res.sd_post == pytest.approx(
        post.std(ddof=1)
    )
    pre[3], post[7] = np.nan, np.inf
    res = paired_t(pre, post)
    ok = np.isfinite(pre) & np.isfinite(post)
    assert res.n == 28 and res.t == pytest.approx(stats.ttest_rel(pre[ok], post[ok]).statistic)
    assert paired_t(np.array([834.6, 835.0]), np.array([822.0, 824.0])).t > 0  # pre > post


def test_paired_t_degenerate_cases():
    one = paired_t(np.array([1.0, np.nan]), np.array([2.0, 3.0]))
    assert one.n == 1 and np.isnan(one.p) and "needs 2" in one.note
    same = paired_t(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    assert np.isnan(same.t) and "equal" in same.note
    empty = paired_t(np.zeros(0), np.zeros(0))
    assert empty.n == 0 and np.isnan(empty.mean_pre)


def test_bh_equals_statsmodels_with_nan_and_ties():
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=40) ** 3, [0.01, 0.01, 1.0]]
    assert np.allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1])
    with_nan = np.r_[p[:10], np.nan, p[10:20]]
    q = bh_qvalues(with_nan)
    assert np.isnan(q[10])
    ok = np.isfinite(with_nan)
    assert np.allclose(q[ok], multipletests(with_nan[ok], method="fdr_bh")[1])
    assert np.isnan(bh_qvalues(np.array([np.nan]))).all()


def test_mean_ci_equals_scipy_t_interval():
    x = np.random.default_rng(3).normal(size=(25, 4))
    m, lo, hi = mean_ci(x, axis=0)
    for j in range(4):
        ref = stats.t.interval(0.95, 24, loc=x[:, j].mean(), scale=stats.sem(x[:, j]))
        assert (lo[j], hi[j]) == (pytest.approx(ref[0]), pytest.approx(ref[1]))
