"""Offline alignment: every stream's device time onto the master clock.

The inputs are plain arrays: a stream's trigger edges in its own device time and
the marker log on the master clock (the time each code went to the trigger box).
The output is a linear map per clock segment, ``master = a + b * device``, with
the residuals that certify it.

* **Coded streams** (EEG event channel, MP160 digital inputs) see the code of
  every pulse: edges are matched to markers first by code order (longest common
  subsequence, robust to missing and spurious edges), then, once a first map
  exists, by predicted time and code.
* **The camera** sees only that its input was high at an exposure: a rising edge
  says a pulse began between two exposure starts, a falling edge that it ended
  between two. Each edge is placed at the midpoint of its interval (unbiased,
  pulses being asynchronous to frames) and matched to the nearest marker onset
  or offset by time, starting from the host receive times.
* **Latencies** on the trigger path are known quantities, not fit parameters:
  the box's USB latency is added to every marker, and each device's input
  latency and half a sample period are taken off its edge times.
* Fits are robust (iteratively trimmed least squares), and a stream's device
  time is split into segments at clock resets, each aligned on its own.
* **Fallback**: a stream without usable triggers is mapped by the lower envelope
  of its host receive times (the least-delayed arrivals), and says so.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mmmelab.sync.codes import code_onsets, common_subsequence_pairs

MIN_EDGES = 3
INTERVAL_TOLERANCE_S = 0.0001


class AlignMethod(enum.StrEnum):
    """How a stream's device time was taken to the master clock (``sync.json``'s
    ``method``, per segment and per stream)."""

    TRIGGERS = "triggers"  # its recorded trigger edges matched to the markers
    HOST_TIME = "host_time"  # the fallback: smoothed host receive times
    LSL = "lsl"  # an LSL stream without a trigger input: LSL's clock synchronisation
    MIXED = "mixed"  # segments of both kinds
    NONE = "none"  # no segment could be fitted


@dataclass
class Segment:
    """One stretch of device time with one clock map ``master = a + b * device``."""

    device_start: float
    device_end: float
    a: float
    b: float
    method: AlignMethod
    edges_found: int = 0
    edges_used: int = 0
    residual_rms_ms: float = float("nan")
    residual_max_ms: float = float("nan")
    # camera: margin of the interval fit (negative = worst constraint violation), ms
    interval_margin_ms: float | None = None
    fit: str = "least squares"  # or "interval" (camera, when its constraints agree)

    @property
    def drift_ppm(self) -> float:
        """How much faster the device clock runs than the master clock (ppm)."""
        return (1.0 / self.b - 1.0) * 1e6

    def offset_s(self, device_ref: float = 0.0) -> float:
        """Master time minus device time at ``device_ref``."""
        return self.a + (self.b - 1.0) * device_ref

    def to_master(self, device: np.ndarray) -> np.ndarray:
        return self.a + self.b * device

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drift_ppm"] = self.drift_ppm
        return d


@dataclass
class StreamAlignment:
    """One stream's alignment to the master clock: its segments (a clock map each) and what
    was noticed."""

    name: str
    segments: list[Segment] = field(default_factory=list)
    edges_expected: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def method(self) -> AlignMethod:
        methods = {s.method for s in self.segments}
        if len(methods) == 1:
            return methods.pop()
        return AlignMethod.MIXED if methods else AlignMethod.NONE

    def to_master(self, device: np.ndarray, segment_index: np.ndarray) -> np.ndarray:
        out = np.full(len(device), np.nan)
        for k, seg in enumerate(self.segments):
            sel = segment_index == k
            out[sel] = seg.to_master(device[sel])
        return out

    def to_dict(self) -> dict[str, Any]:
        used = sum(s.edges_used for s in self.segments)
        rms = [s.residual_rms_ms for s in self.segments if s.edges_used]
        mx = [s.residual_max_ms for s in self.segments if s.edges_used]
        return {
            "method": self.method,
            "edges_expected": self.edges_expected,
            "edges_used": used,
            "residual_rms_ms": max(rms) if rms else None,
            "residual_max_ms": max(mx) if mx else None,
            "warnings": self.warnings,
            "segments": [s.to_dict() for s in self.segments],
        }


# ------------------------------------------------------------------ fitting


def robust_line(
    x: np.ndarray, y: np.ndarray, floor_s: float = 0.0005, iterations: int = 6
) -> tuple[float, float, np.ndarray]:
    """Fit ``y = a + b x``, trimming outliers; returns (a, b, inlier mask)."""
    keep = np.ones(len(x), dtype=bool)
    x0 = float(np.mean(x)) if len(x) else 0.0
    a = b = 0.0
    for _ in range(iterations):
        if keep.sum() < 2:
            break
        xs, ys = x[keep] - x0, y[keep]
        b = float(np.polyfit(xs, ys, 1)[0]) if np.ptp(xs) > 0 else 1.0
        a_c = float(np.mean(ys - b * xs))
        a = a_c - b * x0
        r = y - (a + b * x)
        centre = float(np.median(r[keep]))
        mad = float(np.median(np.abs(r[keep] - centre))) * 1.4826
        new = np.abs(r - centre) <= max(4.0 * mad, floor_s)
        if np.array_equal(new, keep):
            break
        keep = new
    return a, b, keep


def lower_envelope(x: np.ndarray, y: np.ndarray, iterations: int = 8) -> tuple[float, float]:
    """Line under the cloud of (device time, host arrival time): the least-delayed arrivals."""
    keep = np.ones(len(x), dtype=bool)
    a, b = 0.0, 1.0
    x0 = float(np.mean(x))
    for _ in range(iterations):
        if keep.sum() < 2:
            break
        b = float(np.polyfit(x[keep] - x0, y[keep], 1)[0])
        a = float(np.mean(y[keep] - b * (x[keep] - x0))) - b * x0
        r = y - (a + b * x)
        keep = r <= np.quantile(r, 0.2)
    r = y - (a + b * x)
    return a + float(r.min()), b


def _nearest_pairs(
    predicted: np.ndarray, targets: np.ndarray, tol_s: float, same: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Each predicted time to the nearest target within ``tol_s`` (one target per edge)."""
    order = np.argsort(targets)
    sorted_t = targets[order]
    pairs, used = [], set()
    for i, p in enumerate(predicted):
        k = int(np.searchsorted(sorted_t, p))
        best, best_d = -1, tol_s
        for kk in (k - 2, k - 1, k, k + 1):
            if 0 <= kk < len(sorted_t):
                j = int(order[kk])
                d = abs(sorted_t[kk] - p)
                if d <= best_d and (same is None or bool(same[i, j])):
                    best, best_d = j, d
        if best >= 0 and best not in used:
            used.add(best)
            pairs.append((i, best))
    return pairs


def _finish(
    seg_times: np.ndarray,
    master: np.ndarray,
    pairs: list[tuple[int, int]],
    device_start: float,
    device_end: float,
    found: int,
) -> Segment | None:
    if len(pairs) < MIN_EDGES:
        return None
    x = np.array([seg_times[i] for i, _ in pairs])
    y = np.array([master[j] for _, j in pairs])
    a, b, keep = robust_line(x, y)
    r = (y - (a + b * x))[keep]
    return Segment(
        device_start,
        device_end,
        a,
        b,
        AlignMethod.TRIGGERS,
        found,
        int(keep.sum()),
        float(np.sqrt(np.mean(r**2)) * 1e3),
        float(np.abs(r).max() * 1e3),
    )


def align_coded(
    edge_t: np.ndarray,
    edge_code: np.ndarray,
    marker_t: np.ndarray,
    marker_code: np.ndarray,
    device_start: float,
    device_end: float,
    tol_s: float = 0.005,
    rough: tuple[float, float] | None = None,
) -> Segment | None:
    """Fit a segment from coded edges (device time, code) and markers (master time, code).

    ``rough`` is a first map from the stream's host receive times (good to a few ms):
    each edge then pairs with the nearest marker of its code, unambiguously, since
    markers of one code are far apart. Without it, the pairs come from the longest
    common subsequence of the codes, which repeated codes can make ambiguous.
    """
    if len(edge_t) < MIN_EDGES:
        return None
    if rough is not None:
        a, b = rough
    else:
        pairs = common_subsequence_pairs([(int(c),) for c in edge_code], marker_code.tolist())
        if len(pairs) < MIN_EDGES:
            return None
        x = np.array([edge_t[i] for i, _ in pairs])
        y = np.array([marker_t[j] for _, j in pairs])
        a, b, _ = robust_line(x, y, floor_s=0.05)
    for tol in (0.05, tol_s, tol_s):
        predicted = a + b * edge_t
        same = edge_code[:, None] == marker_code[None, :]
        pairs = _nearest_pairs(predicted, marker_t, tol, same)
        if len(pairs) < MIN_EDGES:
            return None
        x = np.array([edge_t[i] for i, _ in pairs])
        y = np.array([marker_t[j] for _, j in pairs])
        a, b, _ = robust_line(x, y)
    return _finish(edge_t, marker_t, pairs, device_start, device_end, len(edge_t))


def interval_fit(
    lo: np.ndarray, hi: np.ndarray, target: np.ndarray, a: float, b: float
) -> tuple[float, float, float]:
    """Refine ``master = a + b * device`` from interval constraints, by linear programming.

    Each camera edge says its master time ``target`` fell between the master times of
    two exposure starts: ``a + b * lo <= target <= a + b * hi``. The line that meets
    every constraint with the widest margin (a Chebyshev-style centre of the feasible
    set) converges as 1/N in the number of edges, where least squares on interval
    midpoints converges as 1/sqrt(N). Returns (a, b, margin in seconds; negative
    when jitter makes the constraints slightly inconsistent).
    """
    from scipy.optimize import linprog

    x0 = float(np.mean(np.concatenate([lo, hi])))
    ln, hn = lo - x0, hi - x0
    # variables: alpha (= a + b * x0), beta (= b), margin; maximise the margin:
    # alpha + beta*lo - target + m <= 0   and   target - alpha - beta*hi + m <= 0
    a_ub = np.vstack(
        [
            np.column_stack([np.ones_like(ln), ln, np.ones_like(ln)]),
            np.column_stack([-np.ones_like(hn), -hn, np.ones_like(hn)]),
        ]
    )
    b_ub = np.concatenate([target, -target])
    alpha0 = a + b * x0
    bounds = [(alpha0 - 0.05, alpha0 + 0.05), (b * (1 - 1e-3), b * (1 + 1e-3)), (None, None)]
    res = linprog(c=[0.0, 0.0, -1.0], A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if not res.success:
        return a, b, float("nan")
    alpha, beta, margin = res.x
    return float(alpha - beta * x0), float(beta), float(margin)


def align_timed(
    edge_t: np.ndarray,
    edge_host: np.ndarray,
    edge_rising: np.ndarray,
    marker_t: np.ndarray,
    marker_rising: np.ndarray,
    device_start: float,
    device_end: float,
    frame_period_s: float,
    edge_lo: np.ndarray | None = None,
    edge_hi: np.ndarray | None = None,
) -> Segment | None:
    """Fit a segment from uncoded edges (camera GPI) by timing alone.

    ``edge_host`` is each edge's host receive time: a first map comes from it,
    then rising edges are paired with the nearest pulse onset and falling edges
    with the nearest pulse end, ever more tightly.
    """
    same = edge_rising[:, None] == marker_rising[None, :]
    if len(edge_t) < MIN_EDGES:
        return None
    a, b = (
        lower_envelope(edge_t, edge_host)
        if len(edge_t) > 2
        else (float(np.mean(edge_host - edge_t)), 1.0)
    )
    tol = max(0.05, 2 * frame_period_s)
    pairs: list[tuple[int, int]] = []
    for _ in range(4):
        pairs = _nearest_pairs(a + b * edge_t, marker_t, tol, same)
        if len(pairs) < MIN_EDGES:
            return None
        x = np.array([edge_t[i] for i, _ in pairs])
        y = np.array([marker_t[j] for _, j in pairs])
        a, b, _ = robust_line(x, y, floor_s=frame_period_s)
        tol = max(frame_period_s, 0.002)
    seg = _finish(edge_t, marker_t, pairs, device_start, device_end, len(edge_t))
    if seg is None or edge_lo is None or edge_hi is None:
        return seg
    # keep the pairs that agree with the fit, then solve the interval constraints
    idx = np.array([i for i, _ in pairs])
    tgt = np.array([marker_t[j] for _, j in pairs])
    ok = np.abs(tgt - seg.to_master(edge_t[idx])) <= frame_period_s
    if ok.sum() < MIN_EDGES:
        return seg
    a, b, margin = interval_fit(edge_lo[idx][ok], edge_hi[idx][ok], tgt[ok], seg.a, seg.b)
    seg.interval_margin_ms = margin * 1e3
    # The interval solution is only valid when the constraints agree (no edge later
    # than its interval by more than a tenth of a millisecond): trigger-latency
    # jitter makes them disagree, and then the midpoint fit, robust to it, stands.
    if np.isfinite(margin) and margin >= -INTERVAL_TOLERANCE_S:
        r = tgt[ok] - (a + b * edge_t[idx][ok])
        seg.a, seg.b = a, b
        seg.edges_used = int(ok.sum())
        seg.residual_rms_ms = float(np.sqrt(np.mean(r**2)) * 1e3)
        seg.residual_max_ms = float(np.abs(r).max() * 1e3)
        seg.fit = "interval"
    return seg


def host_time_segment(
    device_t: np.ndarray, host_t: np.ndarray, device_start: float, device_end: float
) -> Segment:
    """The fallback map from host receive times (lower envelope)."""
    a, b = lower_envelope(device_t, host_t)
    r = host_t - (a + b * device_t)
    return Segment(
        device_start,
        device_end,
        a,
        b,
        AlignMethod.HOST_TIME,
        0,
        0,
        float(np.sqrt(np.mean(r**2)) * 1e3),
        float(np.abs(r).max() * 1e3),
    )


# ------------------------------------------------------------------ edges


def coded_edges(
    device_t: np.ndarray, codes: np.ndarray, sample_period_s: float, latency_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(times, codes) of every change to a non-zero code; the time is the middle of the
    sample interval in which it happened, minus the input latency."""
    if not len(codes):
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    idx = code_onsets(codes, prev_level=codes[0])  # the level at the start is no edge
    return device_t[idx] - 0.5 * sample_period_s - latency_s, codes[idx].astype(np.int64)


def camera_edges(
    exposure_t: np.ndarray, gpi: np.ndarray, host_t: np.ndarray, latency_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(midpoints, host times, rising?, lo, hi) of every GPI change: the change happened
    between the exposure starts ``lo`` (before) and ``hi`` (at the change), the input
    latency taken off; the midpoint is its first estimate."""
    empty = np.zeros(0)
    if len(gpi) < 2:
        return empty, empty, np.zeros(0, dtype=bool), empty, empty
    k = np.flatnonzero(gpi[1:] != gpi[:-1]) + 1
    lo, hi = exposure_t[k - 1] - latency_s, exposure_t[k] - latency_s
    return 0.5 * (lo + hi), host_t[k], gpi[k].astype(bool), lo, hi
