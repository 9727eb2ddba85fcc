"""The heart-rate filter for spotting candidates (MMME eq. 12, "CCF").

A candidate is kept when the heart rate is changing at its apex: the slope of the
heart-rate curve there exceeds ``k`` times the trial's mean slope. The paper gives
neither the heart-rate derivation nor whether the slope is signed; paper_spec.md
section 7 settles it, and so does this module by default:

1. heart rate from the R-peaks (``PhysioData.heart_rate``: NeuroKit2's peaks,
   interpolated at every sample, see "Analysis I"), resampled at 200 Hz over the
   trial;
2. smoothed by a 1 s moving average;
3. its gradient, in bpm/s, taken as an absolute value (the signed trial mean is
   about 0, and "1.5 x mean" implies a positive quantity); ``signed=True`` is the
   literal alternative;
4. keep when ``|dHR/dt|`` at the apex (the candidate's apex, else its middle) is
   above ``k`` x the mean ``|dHR/dt|`` over the trial (``k`` = 1; 1.5 offered).

Nothing is dropped silently: every decision comes back with its figures, and a
trial without a usable heart rate keeps its candidates, saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

GRID_HZ = 200.0
SMOOTH_S = 1.0


@dataclass(frozen=True)
class Candidate:
    id: str
    apex_t: float  # master clock, s (the apex, or the interval's middle)


@dataclass(frozen=True)
class Decision:
    id: str
    kept: bool
    slope: float  # bpm/s at the apex (absolute unless signed)
    threshold: float  # k x the trial's mean slope
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kept": self.kept, "slope_bpm_s": self.slope,
                "threshold_bpm_s": self.threshold, "reason": self.reason}  # fmt: skip


def hr_slope(
    t: np.ndarray, heart_rate: np.ndarray, t0: float, t1: float, signed: bool = False,
    grid_hz: float = GRID_HZ, smooth_s: float = SMOOTH_S,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(grid times, slope in bpm/s) over [t0, t1]: the heart rate resampled at
    ``grid_hz``, a ``smooth_s`` moving average, its gradient (absolute unless signed)."""
    grid = np.arange(t0, t1, 1.0 / grid_hz)
    hr = np.interp(grid, t, heart_rate)
    width = max(1, int(round(smooth_s * grid_hz)))
    smooth = ndimage.uniform_filter1d(hr, width, mode="nearest")
    slope = np.gradient(smooth, 1.0 / grid_hz) if len(grid) > 1 else np.zeros(len(grid))
    return grid, (slope if signed else np.abs(slope))


def ccf_filter(
    candidates: Sequence[Candidate], t: np.ndarray, heart_rate: np.ndarray | None,
    trial: tuple[float, float], k: float = 1.0, signed: bool = False,
) -> tuple[list[Decision], dict[str, Any]]:  # fmt: skip
    """A decision per candidate of one trial, and the summary for the provenance."""
    t0, t1 = trial
    params = {"k": k, "signed": signed, "grid_hz": GRID_HZ, "smooth_s": SMOOTH_S,
              "trial": [t0, t1]}  # fmt: skip
    usable = (heart_rate is not None and len(t) > 1
              and np.isfinite(heart_rate[(t >= t0) & (t <= t1)]).sum() > 2 * SMOOTH_S)  # fmt: skip
    if not usable or heart_rate is None:
        why = "no usable heart rate in the trial: kept unfiltered"
        out = [Decision(c.id, True, float("nan"), float("nan"), why) for c in candidates]
        return out, {**params, "filtered": False, "reason": why, "removed": 0,
                     "kept": len(out)}  # fmt: skip
    ok = np.isfinite(heart_rate)
    grid, slope = hr_slope(t[ok], heart_rate[ok], t0, t1, signed)
    mean = float(slope.mean())
    threshold = k * mean
    out = []
    for c in candidates:
        if not t0 <= c.apex_t <= t1:
            out.append(Decision(c.id, True, float("nan"), threshold,
                                "apex outside the trial: kept unfiltered"))  # fmt: skip
            continue
        s = float(np.interp(c.apex_t, grid, slope))
        kept = s > threshold
        word = "above" if kept else "not above"
        out.append(Decision(c.id, kept, s, threshold,
                            f"|dHR/dt| {s:.3f} bpm/s at the apex, {word} {k:g} x the trial "
                            f"mean {mean:.3f}"))  # fmt: skip
    removed = sum(not d.kept for d in out)
    return out, {**params, "filtered": True, "trial_mean_slope_bpm_s": mean,
                 "removed": removed, "kept": len(out) - removed}  # fmt: skip
