"""Reliability statistics: Cronbach's alpha, the Shrout-Fleiss ICC forms, Cohen's and
Fleiss' kappa.

Each is written out from its formula (so the provenance can say exactly what was
computed) and tested equal to the reference library on fixed inputs: pingouin for
alpha and the ICCs, scikit-learn for Cohen's kappa, statsmodels for Fleiss' kappa.

Conventions, as paper_spec.md settles them:

* **Alpha** (MMME eq. 1): ``alpha = k/(k-1) (1 - sum s_i^2 / s_T^2)`` over a matrix
  with one row per target (a clip) and one column per item (a rater); the 95 % CI is
  Feldt's F-based interval, as pingouin gives it.
* **ICC** (MMME eq. 2): the paper writes ``(MS_r - MS_e) / (MS_r + (n - 1) MS_e)``
  and calls ``n`` the number of subjects; in Shrout and Fleiss's ICC(3,1) that
  multiplier is the number of *raters* ``k``. We use the standard form and give all
  six forms (ICC1, ICC2, ICC3 and their k-rater means) with F tests and 95 % CIs
  (ICC2's by McGraw and Wong's approximation), as pingouin does.
* **Kappa**: Cohen's for two raters, Fleiss' (DFME eqs. 2-7) for any number, with
  DFME's Table 4 interpretation bands (Landis and Koch).

Degenerate inputs give ``nan`` with the reason, never a silent 0: all ratings
identical (no variance: alpha and ICC undefined), one category only (chance
agreement 1: kappa undefined), fewer than two targets or raters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

NAN = float("nan")

#: DFME Table 4 (Landis and Koch 1977): upper bound -> words
KAPPA_BANDS = ((0.0, "poor"), (0.20, "slight"), (0.40, "fair"), (0.60, "moderate"),
               (0.80, "substantial"), (1.0, "almost perfect"))  # fmt: skip


def kappa_band(kappa: float) -> str:
    """DFME's words for a kappa: ``<= 0`` poor, ``<= .20`` slight ... ``> .80`` almost
    perfect; ``undefined`` for nan."""
    if not np.isfinite(kappa):
        return "undefined"
    for top, words in KAPPA_BANDS:
        if kappa <= top:
            return words
    return KAPPA_BANDS[-1][1]


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95 % CI (nan when not defined) and, when nan, the reason."""

    value: float
    ci_low: float = NAN
    ci_high: float = NAN
    n: int = 0  # targets (clips, events)
    k: int = 0  # raters or items
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for key, v in asdict(self).items()}  # fmt: skip


def _matrix(ratings: Any) -> np.ndarray:
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a targets x raters matrix, not shape {x.shape}")
    return x


def cronbach_alpha(ratings: Any, ci: float = 0.95) -> Estimate:
    """Alpha over ``ratings`` (targets x items), complete rows only (listwise)."""
    x = _matrix(ratings)
    x = x[np.all(np.isfinite(x), axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return Estimate(NAN, n=n, k=k, note="alpha needs at least two targets and two items")
    items = x.var(axis=0, ddof=1).sum()
    total = x.sum(axis=1).var(ddof=1)
    if total == 0:
        return Estimate(NAN, n=n, k=k, note="every total score is the same: no variance")
    alpha = k / (k - 1) * (1.0 - items / total)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    lo = 1 - (1 - alpha) * stats.f.isf((1 - ci) / 2, df1, df2)
    hi = 1 - (1 - alpha) * stats.f.isf(1 - (1 - ci) / 2, df1, df2)
    return Estimate(float(alpha), float(lo), float(hi), n, k)


@dataclass(frozen=True)
class Icc:
    form: str  # ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k
    description: str
    value: float
    f: float
    df1: int
    df2: int
    p: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for key, v in asdict(self).items()}  # fmt: skip


ICC_FORMS = {
    "ICC1": "single rater, absolute agreement, one-way random (Shrout-Fleiss ICC(1,1))",
    "ICC2": "single rater, absolute agreement, two-way random (ICC(2,1); McGraw-Wong ICC(A,1))",
    "ICC3": "single rater, consistency, two-way mixed (ICC(3,1) = ICC(C,1); MMME eq. 2, k raters)",
    "ICC1k": "mean of k raters, one-way random (ICC(1,k))",
    "ICC2k": "mean of k raters, absolute agreement, two-way random (ICC(2,k))",
    "ICC3k": "mean of k raters, consistency, two-way mixed (ICC(3,k))",
}


def icc(ratings: Any, ci: float = 0.95) -> tuple[list[Icc], str]:
    """The six Shrout-Fleiss forms over ``ratings`` (targets x raters, complete rows
    only), and a note (empty, or why the values are nan)."""
    x = _matrix(ratings)
    x = x[np.all(np.isfinite(x), axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return _nan_iccs(), "ICC needs at least two targets and two raters"
    grand = x.mean()
    ss_r = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_c = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_e = ((x - grand) ** 2).sum() - ss_r - ss_c
    msr, msc = ss_r / (n - 1), ss_c / (k - 1)
    mse, msw = ss_e / ((n - 1) * (k - 1)), (ss_c + ss_e) / (n * (k - 1))
    if msr == 0 and mse == 0:
        return _nan_iccs(), "every rating is the same: no variance between or within targets"
    a = 1 - ci
    with np.errstate(divide="ignore", invalid="ignore"):
        icc1 = (msr - msw) / (msr + (k - 1) * msw)
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        icc3 = (msr - mse) / (msr + (k - 1) * mse)
        icc1k, icc2k, icc3k = (msr - msw) / msr, (msr - mse) / (msr + (msc - mse) / n), (
            msr - mse) / msr  # fmt: skip
        df1, df2_1, df2 = n - 1, n * (k - 1), (n - 1) * (k - 1)
        f1, f3 = msr / msw, msr / mse
        p1, p3 = stats.f.sf(f1, df1, df2_1), stats.f.sf(f3, df1, df2)
        f1l, f1u = f1 / stats.f.ppf(1 - a / 2, df1, df2_1), f1 * stats.f.ppf(1 - a / 2, df2_1, df1)
        f3l, f3u = f3 / stats.f.ppf(1 - a / 2, df1, df2), f3 * stats.f.ppf(1 - a / 2, df2, df1)
        lo1, hi1 = (f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)
        lo3, hi3 = (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)
        # ICC2: McGraw and Wong's approximate degrees of freedom
        fj = msc / mse
        vn = df2 * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u, f2l = stats.f.ppf(1 - a / 2, n - 1, v), stats.f.ppf(1 - a / 2, v, n - 1)
        lo2 = n * (msr - f2u * mse) / (f2u * (k * msc + (k * n - k - n) * mse) + n * msr)
        hi2 = n * (f2l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f2l * msr)
        lo2k, hi2k = lo2 * k / (1 + lo2 * (k - 1)), hi2 * k / (1 + hi2 * (k - 1))
        rows = [
            ("ICC1", icc1, f1, df1, df2_1, p1, lo1, hi1),
            ("ICC2", icc2, f3, df1, df2, p3, lo2, hi2),
            ("ICC3", icc3, f3, df1, df2, p3, lo3, hi3),
            ("ICC1k", icc1k, f1, df1, df2_1, p1, 1 - 1 / f1l, 1 - 1 / f1u),
            ("ICC2k", icc2k, f3, df1, df2, p3, lo2k, hi2k),
            ("ICC3k", icc3k, f3, df1, df2, p3, 1 - 1 / f3l, 1 - 1 / f3u),
        ]
    out = [Icc(form, ICC_FORMS[form], float(v), float(f), int(d1), int(d2), float(p),
               float(lo), float(hi))
           for form, v, f, d1, d2, p, lo, hi in rows]  # fmt: skip
    return out, ""


def _nan_iccs() -> list[Icc]:
    return [Icc(f, d, NAN, NAN, 0, 0, NAN, NAN, NAN) for f, d in ICC_FORMS.items()]


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> Estimate:
    """Cohen's kappa between two raters' labels of the same targets (unweighted)."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}: one label per target each")
    n = len(a)
    if n == 0:
        return Estimate(NAN, n=0, k=2, note="no target labelled by both")
    cats = sorted({*map(str, a), *map(str, b)})
    pos = {c: i for i, c in enumerate(cats)}
    m = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b, strict=True):
        m[pos[str(x)], pos[str(y)]] += 1
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) * m.sum(axis=0)).sum() / n**2)
    if pe == 1.0:
        return Estimate(
            NAN,
            n=n,
            k=2,
            note="both raters used one and the same label only: "
            "chance agreement is 1, kappa is undefined",
        )
    return Estimate(float((po - pe) / (1 - pe)), n=n, k=2)


def fleiss_counts(
    labels: Sequence[Sequence[Any]], categories: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[str]]:
    """(targets x categories counts n_ij, the categories) from each target's labels."""
    cats = [str(c) for c in categories] if categories is not None else sorted(
        {str(x) for row in labels for x in row})  # fmt: skip
    pos = {c: j for j, c in enumerate(cats)}
    table = np.zeros((len(labels), len(cats)), dtype=np.int64)
    for i, row in enumerate(labels):
        for x in row:
            if str(x) not in pos:
                raise ValueError(f"label {x!r} is not one of the categories {cats}")
            table[i, pos[str(x)]] += 1
    return table, cats


def fleiss_kappa(table: Any) -> Estimate:
    """Fleiss' kappa (DFME eqs. 2-7) over a targets x categories count table; every
    target must have the same number of ratings ``n``."""
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        return Estimate(NAN, note="no targets")
    raters = t.sum(axis=1)
    if not np.all(raters == raters[0]):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every target")
    big_n, n = t.shape[0], int(raters[0])
    if n < 2:
        return Estimate(NAN, n=big_n, k=n, note="Fleiss' kappa needs two or more raters")
    p_j = t.sum(axis=0) / (big_n * n)  # eq. 2
    p_i = ((t**2).sum(axis=1) - n) / (n * (n - 1))  # eq. 4
    p_bar, p_e = float(p_i.mean()), float((p_j**2).sum())  # eqs. 5, 6
    if p_e == 1.0:
        return Estimate(NAN, n=big_n, k=n, note="every rating is in one category: chance "
                                                 "agreement is 1, kappa is undefined")  # fmt: skip
    return Estimate((p_bar - p_e) / (1 - p_e), n=big_n, k=n)  # eq. 7
