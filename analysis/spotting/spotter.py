"""The classical spotter, end to end: frames -> face crop -> motion curves -> candidates.

Per segment (a session's clip periods; fixed windows of a plain video):

1. **Crop.** The face is found on the segment's first frames (``face.detect``), one
   fixed box; each frame's box is reduced from the Bayer mosaic (2x2 cells, only
   the box is read) and resized to ``size`` x ``size`` grey.
2. **Flow k apart.** For every frame ``i`` the dense flow from frame ``i - k`` (DIS,
   medium preset, by default: the faster presets let head moves through) is
   averaged over a ``grid`` x ``grid`` of cells; the head's own motion
   is removed by a robust similarity fit (translation, rotation, scale) to the
   cells inside the face ellipse, so a head move or slow drift does not read as an
   expression (``global_motion="translation"``: the nose region's median, as the
   MDMD family does).
3. **Feature difference.** ``F_i = |g_i - g_{i+k}| / 2`` per cell, ``g_i`` the flow
   into frame ``i``: it is the displacement of frame ``i`` from the mean of frames
   ``i - k`` and ``i + k`` - high at an expression's apex, near zero for motion that
   goes on steadily (the idea of Moilanen's feature difference and MDMD's
   head/current/tail frames). Each facial region's curve is the mean over its
   cells. Two scales: ``k`` of ``me_k_s`` (every frame) and of ``mae_k_s`` (every
   ``mae_step``-th frame).
4. **Peaks.** Per region and scale, the MEGC threshold ``mean + p (max - mean)``
   over the segment, never below a noise floor (median + ``floor_z`` robust SDs of
   the curve; ``floor_z = 0`` gives the plain MEGC rule), peaks at least ``k``
   apart (``peaks.find_candidates``). The eye regions do not propose candidates:
   they are the blink detector - a candidate near a peak of the eye curve (above
   its own threshold) in a region next to the eyes, whose eye motion at the apex is
   at least ``blink_share`` of its own region's, is a blink and is rejected. A
   candidate while the head moves (the similarity removed near its apex is at least
   ``head_ratio`` x its own motion) is what the fit left of a head move, and one
   where the other regions' median motion is at least ``global_share`` of its own
   is shared by the whole face: both rejected. Every rejection is counted.
5. **Interval.** ``interval="extent"`` (default): from the flow between a frame
   before the candidate and each frame around it, the span where the candidate
   region's displacement stays above ``extent_fraction`` of its peak, widened to
   where the displacement stops falling towards the baseline (the coders' onset and
   offset: first frame moved, back to neutral); ``"fixed"``: apex +- k
   (the MEGC baseline). Candidates found at both scales are one event (the one
   of larger displacement stays); the kind follows from the measured duration at
   the session's fps (``MeRule``).

Output: the annotation table (coder ``auto:<method>``, camera frame numbers), the
regional curves (for the coding tool), and the provenance of every choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from mmmelab.analysis.annotations.table import MeRule
from mmmelab.analysis.face.cv import opencv
from mmmelab.analysis.face.regions import REGIONS
from mmmelab.analysis.spotting.evaluate import iou
from mmmelab.analysis.spotting.peaks import PeakParams, find_candidates, moilanen_threshold

EYES = ("eye_left", "eye_right")
#: regions next to the eyes, where a blink's motion spills over (the mouth is too far)
BLINK_PRONE = ("brow_left", "brow_right", "nose", "cheek_left", "cheek_right")
ME_WINDOW_S, MAE_WINDOW_S = 0.6, 4.5  # how far the extent looks either side of the apex


@dataclass(frozen=True)
class SpotParams:
    size: int = 128  # crop side, pixels
    flow: str = "dis"  # dis (medium preset), dis-fast, dis-ultrafast or farneback
    grid: int = 16  # cells per side
    me_k_s: float = 0.12  # frames compared for MEs, s
    mae_k_s: float = 0.6  # ... for MaEs, s
    mae_step: int = 5  # the MaE curve on every n-th frame
    p_me: float = 0.25  # MEGC threshold position between mean and max
    p_mae: float = 0.25
    floor_z: float = 6.0  # threshold >= median + floor_z * 1.4826 MAD
    smooth_s: float = 0.03  # moving average of the curves
    global_motion: str = "similarity"  # similarity | translation | none
    interval: str = "extent"  # extent | fixed
    extent_fraction: float = 0.1
    blink_share: float = 1.0
    global_share: float = 0.6
    head_ratio: float = 3.0  # a candidate while the head moves this much more is rejected
    detect_frames: int = 5
    stabilise: bool = False  # warp every crop onto the segment's first (face.stabilise)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Candidate:
    onset: int  # positions in the segment
    apex: int
    offset: int
    region: str
    scale: str  # me | mae
    score: float  # curve / threshold at the apex
    displacement: float  # peak displacement in crop pixels (extent), else the curve


@dataclass
class SegmentResult:
    numbers: np.ndarray  # camera frame numbers of the segment's frames
    times: np.ndarray
    curves: dict[str, np.ndarray]  # "me:<region>", "mae:<region>" (every frame)
    candidates: list[Candidate]
    rejected: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class _Flow:
    PRESETS = {"dis": "DISOPTICAL_FLOW_PRESET_MEDIUM", "dis-fast": "DISOPTICAL_FLOW_PRESET_FAST",
               "dis-ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST"}  # fmt: skip

    def __init__(self, method: str) -> None:
        cv2 = opencv()
        self.method = method
        if method in self.PRESETS:
            self._dis = cv2.DISOpticalFlow_create(getattr(cv2, self.PRESETS[method]))
        elif method != "farneback":
            raise ValueError(f"spotting flow {method!r}: {', '.join(self.PRESETS)} or farneback")

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.method != "farneback":
            return np.asarray(self._dis.calc(a, b, None))
        return np.asarray(opencv().calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0))


def _cell_layout(size: int, grid: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Region -> cell indices; the cells inside the face ellipse; cell centres (x, y)."""
    c = (np.arange(grid) + 0.5) / grid
    cx, cy = np.meshgrid(c, c)
    cells = {}
    for name, (x0, y0, x1, y1) in REGIONS.items():
        inside = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
        cells[name] = np.flatnonzero(inside.ravel())
    # the cells the head's motion is fitted on: inside the face, clear of the crop's
    # margin (background, hair outline) which does not move with the skin
    face = np.flatnonzero(((((cx - 0.5) / 0.30) ** 2 + ((cy - 0.55) / 0.38) ** 2) <= 1).ravel())
    centres = np.stack([cx.ravel(), cy.ravel()], axis=1) * size
    return cells, face, centres


def _remove_global(g: np.ndarray, face: np.ndarray, centres: np.ndarray, how: str,
                   nose: np.ndarray) -> np.ndarray:  # fmt: skip
    """Cell flows (n, 2) minus the head's motion (one frame of ``remove_global``)."""
    return remove_global(g[None], face, centres, how, nose)[0]


def remove_global(g: np.ndarray, face: np.ndarray, centres: np.ndarray, how: str,
                  nose: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Cell flows (frames, cells, 2) minus each frame's head motion: ``similarity`` - a
    least-squares similarity (shift, rotation, scale) fitted to the face cells, refitted
    twice without the cells it explains worst (residual > 3 x median: the expression);
    ``translation`` - the nose cells' median; ``none``. ``head`` (frames,), when given,
    receives the removed motion's mean magnitude over the face cells."""
    if how == "none":
        if head is not None:
            head[:] = 0.0
        return g
    if how == "translation":
        shift = np.median(g[:, nose], axis=1, keepdims=True)
        if head is not None:
            head[:] = np.hypot(shift[:, 0, 0], shift[:, 0, 1])
        return g - shift
    x, y = centres[face, 0], centres[face, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # u = a x - b y + tx, v = b x + a y + ty (a = s cos - 1, b = s sin: a small similarity)
    a_mat = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    rhs = np.concatenate([g[:, face, 0], g[:, face, 1]], axis=1)  # (m, 2F)
    w = np.ones(rhs.shape)
    for _ in range(3):
        ata = np.einsum("ri,mr,rj->mij", a_mat, w, a_mat)
        atb = np.einsum("ri,mr,mr->mi", a_mat, w, rhs)
        sol = np.linalg.solve(ata + 1e-9 * np.eye(4), atb[..., None])[..., 0]  # (m, 4)
        res = np.abs(sol @ a_mat.T - rhs)
        w = (res <= np.maximum(3.0 * np.median(res, axis=1, keepdims=True), 1e-3)).astype(float)
    xa, ya = centres[:, 0], centres[:, 1]
    a, b, tx, ty = (sol[:, i : i + 1] for i in range(4))
    model = np.stack([a * xa - b * ya + tx, b * xa + a * ya + ty], axis=2)
    if head is not None:
        head[:] = np.hypot(model[:, face, 0], model[:, face, 1]).mean(axis=1)
    return g - model


def _cell_means(flow: np.ndarray, grid: int) -> np.ndarray:
    """(grid * grid, 2): the flow's mean over each cell (an exact area resize)."""
    cv2 = opencv()
    c = min(flow.shape[0], flow.shape[1]) // grid
    f = np.ascontiguousarray(flow[: c * grid, : c * grid])
    return np.asarray(cv2.resize(f, (grid, grid), interpolation=cv2.INTER_AREA)).reshape(-1, 2)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.uniform_filter1d(x, n, mode="nearest") if n > 1 and len(x) else x


def _difference(g: np.ndarray, k: int, cells: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Region curves from cell flows ``g`` (n, cells, 2): |g_i - g_{i+k}| / 2."""
    n = len(g)
    d = np.zeros((n, g.shape[1]))
    if n > k:
        d[: n - k] = 0.5 * np.hypot(*(g[: n - k] - g[k:]).transpose(2, 0, 1))
    return {
        name: d[:, idx].mean(axis=1) if len(idx) else np.zeros(n) for name, idx in cells.items()
    }


def cell_flows(
    crops: np.ndarray, k: int, step: int, params: SpotParams,
    ready: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(n_out, cells, 2): cell-mean flow into every ``step``-th crop from the crop ``k``
    before it (zeros for the first ``k``), head motion removed; and (n_out,) the head
    motion removed (mean magnitude over the face cells). ``ready(i)`` blocks
    until crops ``0..i`` exist (crops still being read): blocks are computed as they
    arrive, two threads."""
    from concurrent.futures import ThreadPoolExecutor

    cells, face, centres = _cell_layout(params.size, params.grid)
    nose = cells["nose"]
    grid, size = params.grid, params.size
    idx = np.arange(0, len(crops), step)
    out = np.zeros((len(idx), grid * grid, 2), np.float64)
    head = np.zeros(len(idx))
    flows = [_Flow(params.flow), _Flow(params.flow)]
    c = size // grid
    scaled = centres * (c * grid / size)

    def run(js: range, which: int) -> None:
        for j in js:
            i = int(idx[j])
            if i >= k:
                f = flows[which](crops[i - k], crops[i])
                out[j] = _cell_means(f, grid)

    block = 128
    with ThreadPoolExecutor(2) as pool:
        for a in range(0, len(idx), block):
            b = min(len(idx), a + block)
            if ready is not None:
                ready(int(idx[b - 1]))
            mid = (a + b) // 2
            for fut in [pool.submit(run, range(a, mid), 0), pool.submit(run, range(mid, b), 1)]:
                fut.result()
            out[a:b] = remove_global(out[a:b], face, scaled, params.global_motion, nose,
                                     head[a:b])  # fmt: skip
            out[a:b][idx[a:b] < k] = 0.0
            head[a:b][idx[a:b] < k] = 0.0
    return out, head


def _extent(crops: np.ndarray, cand: Candidate, k: int, params: SpotParams, fps: float,
            flow: _Flow, window_s: float,
            edge_ok: bool = False) -> tuple[int, int, int, float] | None:  # fmt: skip
    """(onset, apex, offset, peak displacement): the span around the candidate where
    its region is displaced by more than ``extent_fraction`` of the peak from a frame
    before; the apex is the frame of the peak. None when the span reaches the end of
    the ``window_s`` searched (unless ``edge_ok``)."""
    cells, face, centres = _cell_layout(params.size, params.grid)
    longest = int(round(window_s * fps))
    step = max(1, longest // 60)
    ref = max(0, cand.apex - longest)
    hi = min(len(crops) - 1, cand.apex + longest)
    pos = np.arange(ref, hi + 1, step)
    if cand.apex not in pos:
        pos = np.sort(np.append(pos, cand.apex))
    c = params.size // params.grid
    idx = cells[cand.region]
    n = params.grid
    g = np.stack([_cell_means(flow(crops[ref], crops[i]), n) for i in pos])
    g = remove_global(g, face, centres * (c * n / params.size), params.global_motion,
                      cells["nose"])  # fmt: skip
    per_cell = np.hypot(g[:, idx, 0], g[:, idx, 1])
    a = int(np.searchsorted(pos, cand.apex))
    w = 2 * k // step + 1
    lo_w, hi_w = max(0, a - w), min(len(pos), a + w + 1)
    peak_at = lo_w + int(np.argmax(per_cell[lo_w:hi_w].mean(axis=1)))
    moved = per_cell[peak_at] >= 0.5 * per_cell[peak_at].max()  # the cells that move
    disp = _smooth(per_cell[:, moved].mean(axis=1), 3)
    peak_at = lo_w + int(np.argmax(disp[lo_w:hi_w]))
    # slow changes (drift, light) grow the displacement from the reference with time:
    # the baseline is the line through the window's first and last tenths
    tenth = max(1, len(disp) // 10)
    b0, b1 = float(np.median(disp[:tenth])), float(np.median(disp[-tenth:]))
    disp = disp - (b0 + (b1 - b0) * np.linspace(0.0, 1.0, len(disp)))
    level = params.extent_fraction * disp[peak_at]
    lo = peak_at
    while lo > 0 and disp[lo - 1] > level:
        lo -= 1
    hi_j = peak_at
    while hi_j < len(pos) - 1 and disp[hi_j + 1] > level:
        hi_j += 1
    if not edge_ok and (lo == 0 or hi_j == len(pos) - 1):
        return None
    # the level cuts into the rise and the fall; the motion starts (and ends) where the
    # displacement stops falling towards the baseline, as a coder marks it
    while lo > 0 and 0.0 < disp[lo - 1] < disp[lo]:
        lo -= 1
    while hi_j < len(pos) - 1 and 0.0 < disp[hi_j + 1] < disp[hi_j]:
        hi_j += 1
    return int(pos[lo]), int(pos[peak_at]), int(pos[hi_j]), float(disp[peak_at])


def spot_segment(
    crops: np.ndarray, numbers: np.ndarray, times: np.ndarray, fps: float,
    params: SpotParams | None = None, rule: MeRule | None = None,
    ready: Callable[[int], None] | None = None,
) -> SegmentResult:  # fmt: skip
    """Candidates in one segment's crops (n, size, size) uint8 (``ready``: see
    ``cell_flows``; every crop exists once the first scale is done)."""
    params = params or SpotParams()
    rule = rule or MeRule()
    cells, _, _ = _cell_layout(params.size, params.grid)
    n = len(crops)
    curves: dict[str, np.ndarray] = {}
    found: list[Candidate] = []
    rejected = {"blink": 0, "head_move": 0, "global_motion": 0, "inside_larger": 0, "duplicate": 0}
    blinks: set[int] = set()
    info: dict[str, Any] = {"frames": n, "scales": {}}
    smooth = max(1, int(round(params.smooth_s * fps)))
    for scale, k_s, step, p in (
        ("me", params.me_k_s, 1, params.p_me),
        ("mae", params.mae_k_s, params.mae_step, params.p_mae),
    ):
        k = max(1, int(round(k_s * fps / step)))
        g, head = cell_flows(crops, k * step, step, params, ready)
        at = np.arange(0, n, step)  # the frames this scale's curve was computed on

        def every_frame(x: np.ndarray, at: np.ndarray = at, step: int = step) -> np.ndarray:
            return np.interp(np.arange(n), at[: len(x)], x) if step > 1 else x

        head_full = every_frame(head)
        head_near = ndimage.maximum_filter1d(head_full, 2 * k * step + 1)
        curves[f"{scale}:head"] = head_full
        reg = _difference(g, k, cells)
        full = {}
        for name, cur in reg.items():
            full[name] = every_frame(_smooth(cur, max(1, smooth // step)))
            curves[f"{scale}:{name}"] = full[name]
        eye = np.maximum(full[EYES[0]], full[EYES[1]])
        eye_event = _above_threshold(eye, p, params.floor_z, k * step)
        scale_info: dict[str, Any] = {"k_frames": k * step, "regions": {}}
        local = [r for r in full if r not in EYES]
        for name in local:
            cur = full[name]
            thr, megc, floor = _threshold(cur, p, params.floor_z)
            peaks, _ = find_candidates(
                np.maximum(cur, 0), fps, PeakParams(p=p, k=k * step, smooth=1), rule
            )
            kept = [q for q in peaks if q.height >= thr]
            scale_info["regions"][name] = {"threshold": thr, "megc_threshold": megc,
                                           "noise_floor": floor, "peaks": len(kept)}  # fmt: skip
            others = [full[o] for o in local if o != name]
            for q in kept:
                here = full[name][q.apex]
                if (name in BLINK_PRONE and eye_event[q.apex]
                        and eye[q.apex] >= params.blink_share * here):  # fmt: skip
                    blinks.add(q.apex // max(1, k * step))
                    continue
                if head_near[q.apex] >= params.head_ratio * here:
                    rejected["head_move"] += 1  # the head moved: what is left is its residual
                    continue
                if np.median([o[q.apex] for o in others]) >= params.global_share * here:
                    rejected["global_motion"] += 1  # every region moves: not an expression
                    continue
                found.append(Candidate(q.onset, q.apex, q.offset, name, scale,
                                       q.height / thr, q.height))  # fmt: skip
        info["scales"][scale] = scale_info
    # one event per place: the strongest proposal, over regions and scales
    found.sort(key=lambda c: -c.score)
    events: list[Candidate] = []
    for c in found:
        if any(abs(c.apex - e.apex) <= max(_k(e, params, fps), _k(c, params, fps))
               or iou((c.onset, c.offset), (e.onset, e.offset)) > 0 for e in events):  # fmt: skip
            rejected["duplicate"] += 1
            continue
        events.append(c)
    if params.interval == "extent":
        flow = _Flow(params.flow)
        for c in events:
            span = _extent(  # the short window first: it sees short events sharply
                crops, c, _k(c, params, fps), params, fps, flow, ME_WINDOW_S
            )
            if span is None:  # not back to neutral within it: a long event
                span = _extent(crops, c, _k(c, params, fps), params, fps, flow, MAE_WINDOW_S,
                               edge_ok=True)  # fmt: skip
            assert span is not None
            c.onset, c.apex, c.offset, c.displacement = span
    events.sort(key=lambda c: c.onset)
    out: list[Candidate] = []
    for c in events:  # an ME proposal inside a longer event is part of it
        if any(
            o is not c and o.onset <= c.apex <= o.offset and o.offset - o.onset > c.offset - c.onset
            for o in events
        ):
            rejected["inside_larger"] += 1
            continue
        out.append(c)
    rejected["blink"] = len(blinks)
    info["rejected"] = rejected
    return SegmentResult(numbers, times, curves, out, rejected, info)


def _threshold(x: np.ndarray, p: float, floor_z: float) -> tuple[float, float, float]:
    """(threshold, MEGC threshold, noise floor) of a curve: the MEGC ``mean + p (max -
    mean)``, never below median + ``floor_z`` robust SDs (1.4826 MAD)."""
    med = float(np.median(x))
    floor = med + floor_z * 1.4826 * float(np.median(np.abs(x - med)))
    megc = moilanen_threshold(x, p)
    return max(megc, floor), megc, floor


def _above_threshold(x: np.ndarray, p: float, floor_z: float, k: int) -> np.ndarray:
    """True within ``k`` frames of where ``x`` is above its spotting threshold."""
    above = x >= _threshold(x, p, floor_z)[0]
    return ndimage.binary_dilation(above, iterations=k) if above.any() else above


def _k(c: Candidate, params: SpotParams, fps: float) -> int:
    return max(1, int(round((params.me_k_s if c.scale == "me" else params.mae_k_s) * fps)))
