"""``mmme spot``: the spotter over a recorded session or a plain video, and its outputs.

Segments: a session's clip periods (CLIP_ONSET to CLIP_OFFSET markers, as the paper
spots per trial video); a session without clip markers, or a video file, is cut
into ``segment_s`` windows. Per segment the face box is found once, the box is
read from every frame (only the box, reduced from the mosaic), and
``spotter.spot_segment`` finds the candidates. With ``ccf`` the heart-rate filter
(eq. 12, ``ccf``) then decides on each candidate from the session's ECG.

Outputs in ``--out``: ``<name>_spots.tsv`` (+ JSON sidecar: the annotation table of
"Analysis I", coder ``auto:<method>``, camera frame numbers, master times),
``<name>_curves.npz`` (every regional curve with the frame numbers and times, for
the coding tool's tracks) and ``<name>_spot.json`` (the provenance: parameters,
face boxes, thresholds, rejections, CCF decisions, package versions, input hash).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.annotations.table import Annotation, AnnotationTable, Kind, MeRule
from mmmelab.analysis.annotations.writing import write_table
from mmmelab.analysis.face.cv import opencv
from mmmelab.analysis.face.detect import trial_box
from mmmelab.analysis.face.frames import SessionFrames, VideoFrames
from mmmelab.analysis.face.stabilise import Stabiliser
from mmmelab.analysis.provenance import sha256, versions
from mmmelab.analysis.spotting import ccf
from mmmelab.analysis.spotting.spotter import SegmentResult, SpotParams, spot_segment
from mmmelab.errors import LabError

METHOD = "mdmd-flow"
SPOT_PACKAGES = ("numpy", "scipy", "opencv-contrib-python-headless", "h5py", "neurokit2")
READ_THREADS = 4


@contextlib.contextmanager
def _cv_threads(n: int) -> Iterator[None]:
    """OpenCV's own thread pool set to ``n`` (restored after): the spotter runs its
    calls from several threads already, and nested pools oversubscribe the cores."""
    cv2 = opencv()
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


@dataclass
class SpotResult:
    name: str
    fps: float
    table: AnnotationTable  # after CCF when it ran
    unfiltered: AnnotationTable
    segments: list[SegmentResult]
    info: dict[str, Any]
    camera: tuple[np.ndarray, np.ndarray] | None = None  # (acq_nframe, master time)
    decisions: list[ccf.Decision] = field(default_factory=list)


class _SegmentCrops:
    """The crops of stored frames [a, b), read in blocks by a shared thread pool: the
    box is found on the first ``detect`` frames, then only the box's rows are read
    (``pread``) and the box reduced (2x2 Bayer cells averaged, then area-resized).
    ``ready(i)`` waits for crops 0..i, so the flow starts on the first blocks while
    later ones are still being read."""

    BLOCK = 64

    def __init__(self, frames: SessionFrames, a: int, b: int, size: int, detect: int,
                 pool: ThreadPoolExecutor, stabilise: bool = False) -> None:  # fmt: skip
        cv2 = opencv()
        store, half = frames.store, (frames.width // 2, frames.height // 2)
        area = cv2.INTER_AREA
        first = [cv2.resize(store.read_rows(i, 0, frames.height), half, interpolation=area)
                 for i in range(a, min(b, a + detect))]  # fmt: skip
        box, self.info = trial_box(first, detect)
        self.frames, self.a, self.size, self.box = frames, a, size, box
        self.y0, self.y1 = 2 * box.y, 2 * (box.y + box.h)
        self.info["box_sensor_px"] = {"x": 2 * box.x, "y": self.y0, "w": 2 * box.w,
                                      "h": self.y1 - self.y0}  # fmt: skip
        self.crops = np.empty((b - a, size, size), np.uint8)
        self.stabiliser: Stabiliser | None = None
        if stabilise:  # the segment's first crop is the reference
            self._work(0, 1)
            self.stabiliser = Stabiliser(self.crops[0].copy())
        self._lock = threading.Lock()
        n = b - a
        self.futures = [pool.submit(self._work, lo, min(n, lo + self.BLOCK))
                        for lo in range(0, n, self.BLOCK)]  # fmt: skip

    def _work(self, lo: int, hi: int) -> None:
        cv2 = opencv()
        store, box = self.frames.store, self.box
        reader = store.row_reader(self.y0, self.y1)  # direct I/O: no page-cache copy
        x0, x1 = 2 * box.x, 2 * (box.x + box.w)
        for i in range(lo, hi):
            rows = reader.read(self.a + i)
            # each 2x2 Bayer cell's mean (R + 2G + B) / 4: the grey motion is measured on
            cells = cv2.resize(rows[:, x0:x1], (box.w, box.h), interpolation=cv2.INTER_AREA)
            crop = cv2.resize(cells, (self.size, self.size), interpolation=cv2.INTER_AREA)
            if self.stabiliser is not None:
                crop, fit = self.stabiliser.align(crop)
                if fit is None:
                    with self._lock:
                        self.info["unstable_frames"] = self.info.get("unstable_frames", 0) + 1
            self.crops[i] = crop

    def ready(self, i: int) -> None:
        for f in self.futures[: i // self.BLOCK + 1]:
            f.result()

    def all(self) -> np.ndarray:
        self.ready(len(self.crops) - 1)
        return self.crops


def _segments_session(
    s: Any, frames: SessionFrames, segment_s: float
) -> list[tuple[str, int, int]]:
    from mmmelab.analysis.stats.concordance import clip_periods

    times = frames.times
    out = []
    for k, on, off in clip_periods(s.markers):
        a, b = int(np.searchsorted(times, on)), int(np.searchsorted(times, off))
        if b - a > 1:
            out.append((f"clip {k + 1}", a, b))
    if out:
        return out
    step = max(2, int(round(segment_s * frames.fps)))
    return [
        (f"window {j + 1}", a, min(len(times), a + step))
        for j, a in enumerate(range(0, len(times), step))
        if min(len(times), a + step) - a > 1
    ]


def _to_table(results: list[SegmentResult], fps: float, rule: MeRule) -> AnnotationTable:
    anns: list[Annotation] = []
    for seg in results:
        for c in seg.candidates:
            on, ap, off = (int(seg.numbers[i]) for i in (c.onset, c.apex, c.offset))
            anns.append(Annotation(
                f"auto-{len(anns) + 1:04d}", on, ap, off, rule.kind(on, ap, off, fps),
                coder=f"auto:{METHOD}",
                notes=f"{c.scale} scale, region {c.region}, {c.score:.2f} x threshold, "
                      f"{c.displacement:.2f} px"))  # fmt: skip
    return AnnotationTable(anns, fps, f"auto:{METHOD}", rule)


def spot_session(
    folder: Path, params: SpotParams | None = None, use_ccf: bool = False, ccf_k: float = 1.0,
    segment_s: float = 60.0, progress: Callable[[int, int], None] | None = None,
) -> SpotResult:  # fmt: skip
    """Spot a recorded session (its clip periods)."""
    from mmmelab.storage import CameraStream, open_session

    params = params or SpotParams()
    rule = MeRule()
    folder = Path(folder)
    t_start = time.perf_counter()
    with _cv_threads(1), open_session(folder) as s:
        cam = s.streams.get("camera")
        if not isinstance(cam, CameraStream) or not cam.count:
            raise LabError(f"{folder}: no camera frames to spot in")
        frames = SessionFrames(cam)
        segs = _segments_session(s, frames, segment_s)
        total = sum(b - a for _, a, b in segs)
        if progress:
            progress(0, total)
        results, done = [], 0
        # more reading threads than cores: a read waiting on the disk leaves the CPU to
        # the flow; the next segment's blocks queue behind this one's
        with ThreadPoolExecutor(READ_THREADS) as pool:

            def crops_of(seg: int) -> _SegmentCrops:
                _, a, b = segs[seg]
                return _SegmentCrops(frames, a, b, params.size, params.detect_frames, pool,
                                     params.stabilise)  # fmt: skip

            source = None
            for j, (label, a, b) in enumerate(segs):
                here = source or crops_of(j)
                source = crops_of(j + 1) if j + 1 < len(segs) else None
                res = spot_segment(here.crops, frames.numbers[a:b], frames.times[a:b],
                                   frames.fps, params, rule, here.ready)  # fmt: skip
                missing = int(frames.numbers[b - 1] - frames.numbers[a] + 1 - (b - a))
                res.info.update(segment=label, box=here.info, missing_frames=missing)
                if here.stabiliser is not None:
                    res.info["stabilisation"] = here.stabiliser.provenance()
                results.append(res)
                done += b - a
                if progress:
                    progress(done, total)
        table = _to_table(results, frames.fps, rule)
        camera = (frames.numbers, frames.times)
        info: dict[str, Any] = {"source": frames.provenance(), "segments": len(segs),
                                "frames": total, "direct_reads": frames.store.direct_reads,
                                "direct_fallback": frames.store.direct_fallback}  # fmt: skip
    info["seconds"] = time.perf_counter() - t_start
    result = SpotResult(folder.name, frames.fps, table, table, results, info, camera)
    return apply_ccf(folder, result, ccf_k) if use_ccf else result


def apply_ccf(folder: Path, result: SpotResult, k: float = 1.0) -> SpotResult:
    """The heart-rate filter on a session's spotting result: ``result.table`` becomes
    the kept candidates, every decision and the trials' figures are recorded."""
    from mmmelab.storage import open_session

    t0 = time.perf_counter()
    assert result.camera is not None
    with open_session(folder) as s:
        table, result.decisions, info = _apply_ccf(
            s, result.unfiltered, result.segments, result.camera, k
        )
    info["seconds"] = time.perf_counter() - t0
    result.table, result.info["ccf"] = table, info
    return result


def _apply_ccf(
    s: Any,
    table: AnnotationTable,
    results: list[SegmentResult],
    camera: tuple[np.ndarray, np.ndarray],
    k: float,
) -> tuple[Any, Any, dict[str, Any]]:
    from mmmelab.analysis.physio.preprocess import PhysioParams, from_stream
    from mmmelab.storage import SignalStream

    phys = s.streams.get("physio")
    hr, t = None, np.zeros(0)
    why = ""
    if isinstance(phys, SignalStream):
        data = from_stream(phys, PhysioParams())
        hr, t = data.heart_rate, data.t
        why = data.problems.get("ECG", "")
    else:
        why = "the session has no physiology stream"
    numbers, times = camera
    decisions: list[ccf.Decision] = []
    summaries = []
    i = 0
    for seg in results:
        cands = []
        for _c in seg.candidates:
            ann = table.annotations[i]
            i += 1
            apex_t = float(np.interp(ann.apex_or_mid, numbers, times))
            cands.append(ccf.Candidate(ann.id, apex_t))
        trial = (float(seg.times[0]), float(seg.times[-1]))
        d, summary = ccf.ccf_filter(cands, t, hr, trial, k)
        decisions += d
        summaries.append(summary)
    keep = {d.id for d in decisions if d.kept}
    out = AnnotationTable([a for a in table.annotations if a.id in keep], table.fps, table.coder,
                          table.rule)  # fmt: skip
    info = {
        "k": k,
        "removed": len(table.annotations) - len(out.annotations),
        "kept": len(out.annotations),
        "heart_rate_problem": why,
        "trials": summaries,
    }
    return out, decisions, info


def spot_video(path: Path, params: SpotParams | None = None, segment_s: float = 60.0,
               progress: Callable[[int, int], None] | None = None) -> SpotResult:  # fmt: skip
    """Spot a plain video file (any fps): ``segment_s`` windows, frame numbers = decoded index."""
    cv2 = opencv()
    params = params or SpotParams()
    rule = MeRule()
    t_start = time.perf_counter()
    video = VideoFrames(Path(path))
    fps = video.fps
    step = max(2, int(round(segment_s * fps)))
    results: list[SegmentResult] = []
    numbers: list[int] = []
    times: list[float] = []
    grey: list[np.ndarray] = []
    box: Any = None

    def flush() -> None:
        nonlocal box
        if len(grey) < 2:
            return
        box, binfo = trial_box(grey[: params.detect_frames], params.detect_frames)
        crops = np.stack(
            [
                cv2.resize(
                    np.ascontiguousarray(g[box.y : box.y + box.h, box.x : box.x + box.w]),
                    (params.size, params.size),
                    interpolation=cv2.INTER_AREA,
                )
                for g in grey
            ]
        ).astype(np.uint8)
        if params.stabilise:
            st = Stabiliser(crops[0].copy())
            crops = np.stack([st.align(c)[0] for c in crops])
            binfo["stabilisation"] = st.provenance()
        res = spot_segment(crops, np.array(numbers[-len(grey):]), np.array(times[-len(grey):]),
                           fps, params, rule)  # fmt: skip
        res.info.update(segment=f"window {len(results) + 1}", box=binfo)
        results.append(res)
        if progress:
            progress(len(numbers), 0)

    for fr in video.read():
        img = fr.image
        g = img if img.ndim == 2 else img @ np.array([0.299, 0.587, 0.114], np.float32)
        grey.append(np.clip(g, 0, 255).astype(np.uint8))
        numbers.append(fr.number)
        times.append(fr.t)
        if len(grey) >= step:
            flush()
            grey = []
    flush()
    table = _to_table(results, fps, rule)
    info = {"source": video.provenance(), "segments": len(results), "frames": len(numbers),
            "seconds": time.perf_counter() - t_start}  # fmt: skip
    cam = (np.array(numbers), np.array(times))
    return SpotResult(Path(path).stem, fps, table, table, results, info, cam)


def write_outputs(result: SpotResult, out: Path, params: SpotParams, source: Path) -> list[Path]:
    """Write the table, the curves and the provenance; returns the paths."""
    import platform

    out.mkdir(parents=True, exist_ok=True)
    table_path = write_table(result.table, out / f"{result.name}_spots.tsv", result.camera,
                             result.name)  # fmt: skip
    paths = [table_path]
    if "ccf" in result.info:  # what the filter saw, for comparison
        paths.append(write_table(result.unfiltered, out / f"{result.name}_spots_unfiltered.tsv",
                                 result.camera, result.name))  # fmt: skip
    arrays: dict[str, np.ndarray] = {}
    for j, seg in enumerate(result.segments):
        arrays[f"seg{j}_frame"] = seg.numbers
        arrays[f"seg{j}_time"] = seg.times
        for name, cur in seg.curves.items():
            arrays[f"seg{j}_{name}"] = cur.astype(np.float32)
    curves_path = out / f"{result.name}_curves.npz"
    np.savez_compressed(curves_path, **arrays)  # type: ignore[arg-type]
    src = Path(source)
    hashed = src if src.is_file() else src / "session.json"
    prov = {
        "method": METHOD, "params": params.to_dict(), "source": str(src),
        "source_sha256": sha256(hashed) if hashed.exists() else "",
        "source_hashed": hashed.name, "fps": result.fps, **result.info,
        "segments_detail": [seg.info for seg in result.segments],
        "candidates": len(result.unfiltered.annotations), "kept": len(result.table.annotations),
        "ccf_decisions": [d.to_dict() for d in result.decisions],
        "versions": {**versions(SPOT_PACKAGES), "python": platform.python_version()},
        "outputs": {"tables": [p.name for p in paths], "curves": curves_path.name},
    }  # fmt: skip
    prov_path = out / f"{result.name}_spot.json"
    prov_path.write_text(json.dumps(prov, indent=1, default=_json_default) + "\n")
    return [*paths, curves_path, prov_path]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Kind):
        return o.value
    raise TypeError(type(o).__name__)
