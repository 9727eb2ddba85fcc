"""The heart-rate filter (MMME eq. 12) on heart-rate curves with known slopes."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.analysis.spotting.ccf import Candidate, ccf_filter, hr_slope


def ramp_hr(fs=1000.0, seconds=60.0):
    """70 bpm, rising 2 bpm/s between 20 and 25 s, flat at 80 after, falling 1 bpm/s
    from 40 to 50 s."""
    t = np.arange(0, seconds, 1 / fs)
    hr = 70 + 2 * np.clip(t - 20, 0, 5) - 1 * np.clip(t - 40, 0, 10)
    return t, hr


def test_the_slope_is_the_smoothed_gradient():
    t, hr = ramp_hr()
    grid, slope = hr_slope(t, hr, 0, 60)
    assert slope[np.searchsorted(grid, 22.5)] == pytest.approx(2.0, abs=1e-6)
    assert slope[np.searchsorted(grid, 45.0)] == pytest.approx(1.0, abs=1e-6)  # absolute
    assert slope[np.searchsorted(grid, 10.0)] == pytest.approx(0.0, abs=1e-9)
    _, signed = hr_slope(t, hr, 0, 60, signed=True)
    assert signed[np.searchsorted(grid, 45.0)] == pytest.approx(-1.0, abs=1e-6)


def test_candidates_are_kept_where_the_heart_rate_changes():
    t, hr = ramp_hr()
    cands = [Candidate("rise", 22.5), Candidate("flat", 10.0), Candidate("fall", 45.0),
             Candidate("late", 70.0)]  # fmt: skip
    decisions, summary = ccf_filter(cands, t, hr, (0, 60))
    kept = {d.id: d.kept for d in decisions}
    # the trial's mean |slope| is (5 s x 2 + 10 s x 1) / 60 s = 0.33 bpm/s
    assert summary["trial_mean_slope_bpm_s"] == pytest.approx(20 / 60, rel=0.02)
    assert kept == {"rise": True, "flat": False, "fall": True, "late": True}
    assert "outside the trial" in decisions[3].reason
    assert summary["removed"] == 1 and summary["kept"] == 3
    strict, _ = ccf_filter(cands[:3], t, hr, (0, 60), k=4.0)  # 4 x 0.33 = 1.33 bpm/s
    assert [d.kept for d in strict] == [True, False, False]
    literal, _ = ccf_filter(cands[:3], t, hr, (0, 60), signed=True)  # a falling rate is < mean
    assert [d.kept for d in literal] == [True, False, False]


def test_no_heart_rate_keeps_everything_and_says_so():
    t = np.arange(0, 10, 0.001)
    decisions, summary = ccf_filter([Candidate("a", 5.0)], t, None, (0, 10))
    assert (
        decisions[0].kept
        and not summary["filtered"]
        and "no usable heart rate" in summary["reason"]
    )
    nan = np.full_like(t, np.nan)
    decisions, summary = ccf_filter([Candidate("a", 5.0)], t, nan, (0, 10))
    assert decisions[0].kept and not summary["filtered"]
