"""From a motion curve to candidate intervals: the peak step of the classical
optical-flow spotters (the MEGC baselines and MEAN/SoftNet's proposals).

1. smooth the curve (a centred moving average of ``smooth`` frames);
2. threshold it the Moilanen way: ``T = mean + p * (max - mean)`` over the video;
3. peaks above ``T`` at least ``k`` frames apart (``scipy.signal.find_peaks``);
4. each peak gives the interval ``[peak - k, peak + k]`` (clipped to the video),
   its apex the peak;
5. overlapping intervals are suppressed: the higher peak keeps its interval, any
   other whose IoU with a kept one reaches ``max_overlap`` is dropped
   (``max_overlap`` = 0 drops every overlap);
6. ME or MaE by the interval at the video's fps (the annotation rule). With a
   fixed ``+- k`` the scale decides the kind, so spotters run once per scale: a
   ``k`` of about 0.1-0.2 s for MEs, a larger one (and a slower curve) for MaEs.

Frame indices here are positions in the curve; the caller maps them to camera
frame numbers (which keep the gaps of dropped frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage, signal

from mmmelab.analysis.annotations.table import MeRule
from mmmelab.analysis.spotting.evaluate import iou


@dataclass(frozen=True)
class PeakParams:
    p: float = 0.5  # threshold between the mean (0) and the maximum (1)
    k: int = 18  # half interval and minimum peak distance, frames
    smooth: int = 5  # moving-average width, frames (1: none)
    max_overlap: float = 0.0  # suppression: drop a candidate at this IoU with a kept one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Peak:
    onset: int
    apex: int
    offset: int
    height: float  # the smoothed curve at the apex
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def moilanen_threshold(curve: np.ndarray, p: float) -> float:
    x = np.asarray(curve, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("inf")
    mean = float(x.mean())
    return mean + p * (float(x.max()) - mean)


def find_candidates(
    curve: np.ndarray, fps: float, params: PeakParams | None = None, rule: MeRule | None = None
) -> tuple[list[Peak], dict[str, Any]]:
    """Candidate intervals in one video's motion curve, and what to record."""
    params = params or PeakParams()
    rule = rule or MeRule()
    if not 0 <= params.p <= 1 or params.k < 1 or params.smooth < 1:
        raise ValueError(f"peak parameters out of range: {params}")
    x = np.nan_to_num(np.asarray(curve, dtype=np.float64), nan=0.0)
    if params.smooth > 1 and len(x):
        x = ndimage.uniform_filter1d(x, params.smooth, mode="nearest")
    threshold = moilanen_threshold(x, params.p)
    info = {**params.to_dict(), "threshold": threshold, "frames": len(x), "fps": fps}
    if not len(x) or not np.isfinite(threshold) or x.max() <= x.mean():
        return [], {**info, "peaks": 0, "suppressed": 0}  # a flat curve has no peak
    peaks, props = signal.find_peaks(x, height=threshold, distance=params.k)
    order = np.argsort(-props["peak_heights"], kind="stable")
    kept: list[Peak] = []
    suppressed = 0
    for i in order:
        apex = int(peaks[i])
        onset, offset = max(0, apex - params.k), min(len(x) - 1, apex + params.k)
        if any(iou((onset, offset), (q.onset, q.offset)) > params.max_overlap for q in kept):
            suppressed += 1
            continue
        kind = rule.kind(onset, apex, offset, fps).value
        kept.append(Peak(onset, apex, offset, float(x[apex]), kind))
    kept.sort(key=lambda q: q.onset)
    return kept, {**info, "peaks": len(peaks), "suppressed": suppressed}


def spot_regions(
    curves: dict[str, np.ndarray], frame_numbers: np.ndarray, fps: float,
    params: PeakParams | None = None, rule: MeRule | None = None, method: str = "flow",
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Candidates from every region's curve, pooled: each peak ranked by its height
    over its region's threshold, overlaps across regions suppressed as within one.
    Returns the annotation table (coder ``auto:<method>``, camera frame numbers) and
    the provenance (parameters, per-region thresholds and counts)."""
    from mmmelab.analysis.annotations.table import Annotation, AnnotationTable, Kind

    params = params or PeakParams()
    rule = rule or MeRule()
    pooled: list[tuple[float, str, Peak]] = []
    per_region: dict[str, Any] = {}
    for name, curve in curves.items():
        peaks, info = find_candidates(curve, fps, params, rule)
        per_region[name] = {"threshold": info["threshold"], "peaks": len(peaks)}
        for q in peaks:
            pooled.append((q.height / info["threshold"] if info["threshold"] > 0 else 0.0, name, q))
    pooled.sort(key=lambda r: -r[0])
    kept: list[tuple[float, str, Peak]] = []
    for row in pooled:
        q = row[2]
        if all(iou((q.onset, q.offset), (o[2].onset, o[2].offset)) <= params.max_overlap
               for o in kept):  # fmt: skip
            kept.append(row)
    kept.sort(key=lambda r: r[2].onset)
    numbers = np.asarray(frame_numbers, dtype=np.int64)
    coder = f"auto:{method}"
    anns = [
        Annotation(
            f"auto-{i + 1:04d}",
            int(numbers[q.onset]),
            int(numbers[q.apex]),
            int(numbers[q.offset]),
            Kind(q.kind),
            coder=coder,
            notes=f"region {name}, {score:.2f} x its threshold",
        )  # fmt: skip
        for i, (score, name, q) in enumerate(kept)
    ]
    table = AnnotationTable(anns, fps, coder, rule)
    info = {"method": method, "params": params.to_dict(), "regions": per_region,
            "pooled_peaks": len(pooled), "candidates": len(anns)}  # fmt: skip
    return table, info
