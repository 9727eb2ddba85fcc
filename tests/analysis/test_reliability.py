"""Reliability statistics equal to pingouin, scikit-learn and statsmodels on fixed
inputs, including the degenerate ones."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mmmelab.analysis.stats.reliability import (
    cohen_kappa,
    cronbach_alpha,
    fleiss_counts,
    fleiss_kappa,
    icc,
    kappa_band,
)

RNG = np.random.default_rng(7)
TRUE = RNG.integers(1, 10, size=30).astype(float)
RATINGS = np.clip(np.round(TRUE[:, None] + RNG.normal(0, 1.3, (30, 5)) + [0, 0.5, -0.4, 1, 0]),
                  1, 9)  # fmt: skip


# pingouin 0.7 names the forms after McGraw and Wong
PINGOUIN_07 = {"ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)", "ICC1k": "ICC(1,k)",
               "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}  # fmt: skip


def _long(x: np.ndarray) -> pd.DataFrame:
    n, k = x.shape
    return pd.DataFrame({"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                         "rating": x.ravel()})  # fmt: skip


@pytest.mark.parametrize("x", [RATINGS, RATINGS[:6, :2], RATINGS[:, :3] * [1, 2, 0.5]])
def test_alpha_equals_pingouin(x):
    import pingouin as pg

    ours = cronbach_alpha(x)
    ref, ci = pg.cronbach_alpha(data=pd.DataFrame(x))
    assert ours.value == pytest.approx(ref, abs=1e-12)
    assert [ours.ci_low, ours.ci_high] == pytest.approx(list(ci), abs=1e-3)  # pingouin rounds


@pytest.mark.parametrize("x", [RATINGS, RATINGS[:8, :3], RATINGS[:, [0, 3]]])
def test_icc_forms_equal_pingouin(x):
    import pingouin as pg

    ours, note = icc(x)
    with warnings.catch_warnings():  # pingouin's own use of a deprecated pandas keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        ref = pg.intraclass_corr(_long(x), targets="target", raters="rater", ratings="rating")
    ref = ref.set_index("Type")
    ci_col = "CI95" if "CI95" in ref else "CI95%"
    assert note == ""
    for r in ours:
        row = ref.loc[r.form if r.form in ref.index else PINGOUIN_07[r.form]]
        assert r.value == pytest.approx(row["ICC"], abs=1e-12), r.form
        assert r.f == pytest.approx(row["F"], rel=1e-10) and r.df1 == row["df1"]
        assert r.df2 == row["df2"] and r.p == pytest.approx(row["pval"], rel=1e-8, abs=1e-300)
        assert [r.ci_low, r.ci_high] == pytest.approx(list(row[ci_col]), abs=5e-3), r.form


def test_the_paper_s_printed_icc_is_not_the_standard_form():
    """MMME eq. 2 puts the number of targets where ICC(3,1) has the raters."""
    x = RATINGS
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    icc3 = {r.form: r.value for r in icc(x)[0]}["ICC3"]
    assert icc3 == pytest.approx((msr - mse) / (msr + (k - 1) * mse))
    assert abs(icc3 - (msr - mse) / (msr + (n - 1) * mse)) > 0.1


def test_degenerate_ratings_are_nan_with_a_reason():
    same = np.full((5, 3), 4.0)
    a = cronbach_alpha(same)
    assert np.isnan(a.value) and "variance" in a.note
    forms, note = icc(same)
    assert all(np.isnan(f.value) for f in forms) and "same" in note
    assert "two" in cronbach_alpha(RATINGS[:1]).note and icc(RATINGS[:, :1])[1]
    assert a.to_dict()["value"] is None  # JSON null, not NaN


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (["hap", "sad", "sad", "ang", "hap", "sur"], ["hap", "sad", "ang", "ang", "sur", "sur"]),
        (["hap"] * 5 + ["sad"], ["hap"] * 6),  # one rater used one label only
        (["hap", "sad", "fea"], ["sad", "fea", "hap"]),  # worse than chance
    ],
)
def test_cohen_kappa_equals_scikit_learn(a, b):
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa(a, b).value == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_cohen_kappa_when_both_raters_used_one_label():
    from sklearn.metrics import cohen_kappa_score

    k = cohen_kappa(["hap"] * 4, ["hap"] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = cohen_kappa_score(["hap"] * 4, ["hap"] * 4)
    assert np.isnan(k.value) and np.isnan(ref) and "undefined" in k.note
    assert np.isnan(cohen_kappa([], []).value)
    with pytest.raises(ValueError, match="one label per target"):
        cohen_kappa(["a"], [])


def test_fleiss_kappa_equals_statsmodels_and_dfme_bands():
    from statsmodels.stats.inter_rater import fleiss_kappa as ref

    labels = [
        RNG.choice(["hap", "sad", "ang", "sur"], 7, p=[0.7, 0.1, 0.1, 0.1]) for _ in range(40)
    ]
    table, cats = fleiss_counts(labels)
    assert table.sum(axis=1).tolist() == [7] * 40 and cats == sorted(cats)
    assert fleiss_kappa(table).value == pytest.approx(ref(table, method="fleiss"), abs=1e-12)
    # Fleiss's own 1971 example: 10 subjects, 14 raters, 5 categories -> 0.210
    fleiss_1971 = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                   [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                   [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]  # fmt: skip
    k = fleiss_kappa(fleiss_1971).value
    assert k == pytest.approx(ref(np.array(fleiss_1971)), abs=1e-12)
    assert round(k, 3) == 0.210 and kappa_band(k) == "fair"
    assert [kappa_band(v) for v in (-0.1, 0.0, 0.15, 0.72, 0.81, 1.0, float("nan"))] == [
        "poor",
        "poor",
        "slight",
        "substantial",
        "almost perfect",
        "almost perfect",
        "undefined",
    ]
    one = fleiss_kappa([[3, 0], [3, 0]])
    assert np.isnan(one.value) and "one category" in one.note
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0], [1, 1]])
