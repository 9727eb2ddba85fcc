"""Concordance between micro-expressions and peripheral physiology (MMME section 4.1).

For each ME apex and each D (default 3, 5, 10, 15 s): pre = [apex - D, apex) and
post = [apex, apex + D) (``paper_spec.md`` section 4: D seconds on each side); an ME
whose epoch [apex - D, apex + D) overlaps another ME (onset..offset) is left out and
counted. Table 3's features are computed on both windows and compared by a paired
t-test per feature and D (t > 0 when pre > post), with the paper's uncorrected p
and Benjamini-Hochberg q over all features x windows.

Beyond the paper, as a control: the same test at surrogate apex times - as many per
trial as the trial has MEs, uniformly within the clip, with an epoch that overlaps
no expression - whose share of p < 0.05 should stay near 5 %; and event-locked
averages of heart rate, EDA, RSP and SKT around the apex (mean and 95 % CI).

Everything runs on the master clock: apex times come from the annotation frames
through the camera journal and sync.json (``open_session``).
"""

from __future__ import annotations

import json
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.annotations import (
    AnnotationTable,
    Kind,
    annotation_path,
    read_table,
    times_table,
)
from mmmelab.analysis.physio import (
    TABLE3,
    FeatureParams,
    PhysioData,
    PhysioParams,
    from_stream,
    table3_features,
    table6_features,
)
from mmmelab.analysis.stats.tests import bh_qvalues, mean_ci, paired_t
from mmmelab.errors import LabError
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.sync.codes import EventCode

WINDOWS_S = (3.0, 5.0, 10.0, 15.0)
TABLE6_HALF_S = 5.0  # Table 6: 10 s centred on the apex
LOCKED_SIGNALS = ("heart_rate", "EDA", "RSP", "SKT")
LOCKED_SPAN_S = 15.0
LOCKED_RATE_HZ = 10.0


@dataclass
class SessionEvents:
    """One session's physiology and its expressions on the master clock."""

    session: str
    subject: str
    physio: PhysioData
    events: Any  # DataFrame: id, kind, emotion, onset_s, apex_s, offset_s, trial
    clips: list[tuple[int, float, float]]  # (trial, clip onset, clip offset), master s
    annotations: dict[str, Any] = field(default_factory=dict)  # file, sha256, coder, warnings
    truth: dict[str, Any] = field(default_factory=dict)
    #: seeds the surrogate apexes: the participant and session number, not the
    #: folder name (which holds the recording's time), so a copied or renamed
    #: session gives the same surrogates
    seed_key: str = ""


def clip_periods(markers: np.ndarray) -> list[tuple[int, float, float]]:
    if not len(markers):
        return []
    codes, t = markers["code"], markers["t_on"]
    onsets = t[codes == EventCode.CLIP_ONSET]
    offsets = t[codes == EventCode.CLIP_OFFSET]
    out = []
    for k, on in enumerate(onsets):
        after = offsets[offsets > on]
        if len(after):
            out.append((k, float(on), float(after[0])))
    return out


def trial_of(apex_s: np.ndarray, clips: list[tuple[int, float, float]]) -> np.ndarray:
    """The trial whose clip was playing at each apex time (-1: none), from
    :func:`clip_periods`' ``(trial, on, off)``."""
    trial = np.full(len(apex_s), -1)
    for k, on, off in clips:
        trial[(apex_s >= on) & (apex_s < off)] = k
    return trial


def load_session(
    path: Path | str,
    annotations: Path | None = None,
    params: PhysioParams | None = None,
) -> SessionEvents:
    """Read a session, its annotation file (default: the consensus) and preprocess physiology."""
    folder = Path(path)
    ann_path = Path(annotations) if annotations else annotation_path(folder)
    if not ann_path.exists():
        raise LabError(
            f"{folder}: no annotation file {ann_path} (code the session with mmme annotate, "
            f"or pass --annotations FILE)"
        )
    table: AnnotationTable = read_table(ann_path)
    with open_session(folder) as s:
        cam = s.streams.get("camera")
        phys = s.streams.get("physio")
        if not isinstance(cam, CameraStream):
            raise LabError(f"{folder}: no camera stream; annotation frames cannot be timed")
        if not isinstance(phys, SignalStream):
            raise LabError(f"{folder}: no physiology stream")
        journal = cam.journal
        events = times_table(table, journal["acq_nframe"], cam.master_time)
        physio = from_stream(phys, params)
        clips = clip_periods(s.markers)
        subject = str(s.manifest["participant"].get("id", folder.name))
        seed_key = f"{subject}/ses-{s.manifest['participant'].get('session', '')}"
        truth = dict(s.manifest.get("simulation_truth") or {})
    events["trial"] = trial_of(events["apex_s"].to_numpy(), clips)
    bad = events["apex_s"].isna()
    if bad.any():
        table.warnings.append(
            f"{int(bad.sum())} annotation(s) lie outside the camera recording and are left out"
        )
        events = events[~bad].reset_index(drop=True)
    info = {
        "file": str(ann_path),
        "sha256": table.source_sha256,
        "coder": table.coder,
        "fps": table.fps,
        "me_rule": vars(table.rule),
        "warnings": table.warnings,
    }
    return SessionEvents(folder.name, subject, physio, events, clips, info, truth, seed_key)


def _overlaps(t0: float, t1: float, intervals: np.ndarray, skip: int = -1) -> bool:
    for j, (a, b) in enumerate(intervals):
        if j != skip and a < t1 and b >= t0:
            return True
    return False


def me_windows(se: SessionEvents, d_s: float) -> list[dict[str, Any]]:
    """One entry per ME: its apex, whether it is included at this D, and why not."""
    me = se.events[se.events["kind"] == Kind.ME.value].reset_index(drop=True)
    spans = me[["onset_s", "offset_s"]].to_numpy()
    out = []
    for i, row in me.iterrows():
        apex = float(row["apex_s"])
        reason = ""
        if _overlaps(apex - d_s, apex + d_s, spans, skip=int(str(i))):
            reason = "another ME lies in its epoch"
        out.append(
            {"id": row["id"], "apex_s": apex, "trial": int(row["trial"]), "excluded": reason}
        )
    return out


def surrogate_apexes(
    se: SessionEvents, d_s: float, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """As many surrogate apexes per trial as the trial has MEs, inside the clip, whose epoch
    overlaps no ME epoch [apex - D, apex + D) and no MaE. Up to 1000 draws each; a trial
    too crowded gives fewer (the count is in the output)."""
    me = se.events[se.events["kind"] == Kind.ME.value]
    mae = se.events[se.events["kind"] != Kind.ME.value]
    spans = np.vstack(
        [
            np.column_stack([me["apex_s"] - d_s, me["apex_s"] + d_s]),
            mae[["onset_s", "offset_s"]].to_numpy(),
        ]
    )
    out = []
    for k, on, off in se.clips:
        n = int((me["trial"] == k).sum())
        got = 0
        for _ in range(1000):
            if got >= n or off - on <= 2 * d_s:
                break
            t = float(rng.uniform(on + d_s, off - d_s))
            if not _overlaps(t - d_s, t + d_s, spans):
                out.append({"id": f"surrogate-{k}-{got}", "apex_s": t, "trial": k, "excluded": ""})
                got += 1
    return out


def window_rows(
    se: SessionEvents,
    windows: tuple[float, ...] = WINDOWS_S,
    surrogates: bool = True,
    seed: int = 0,
    fparams: FeatureParams | None = None,
) -> list[dict[str, Any]]:
    """Tidy rows (one per event x D x pre/post) of Table 3's features for one session."""
    rows = []
    rng = np.random.default_rng([seed, zlib.crc32((se.seed_key or se.session).encode())])
    for d_s in windows:
        sets = [("ME", me_windows(se, d_s))]
        if surrogates:
            sets.append(("surrogate", surrogate_apexes(se, d_s, rng)))
        for source, events in sets:
            for ev in events:
                for side, (t0, t1) in (("pre", (ev["apex_s"] - d_s, ev["apex_s"])),
                                       ("post", (ev["apex_s"], ev["apex_s"] + d_s))):  # fmt: skip
                    base = {
                        "session": se.session,
                        "subject": se.subject,
                        "event": ev["id"],
                        "source": source,
                        "trial": ev["trial"],
                        "D_s": d_s,
                        "window": side,
                        "start_s": t0,
                        "end_s": t1,
                        "apex_s": ev["apex_s"],
                        "excluded": ev["excluded"],
                    }
                    if ev["excluded"]:
                        values: dict[str, float] = dict.fromkeys(TABLE3, float("nan"))
                        notes: dict[str, str] = {}
                    else:
                        values, notes = table3_features(se.physio, t0, t1, fparams)
                    rows.append(base | values | {"notes": json.dumps(notes) if notes else ""})
    return rows


def table6_rows(se: SessionEvents, fparams: FeatureParams | None = None) -> list[dict[str, Any]]:
    """Table 6's features on the 10 s window centred on every annotated expression's apex."""
    rows = []
    spans = se.events[["onset_s", "offset_s"]].to_numpy()
    for i, ev in se.events.iterrows():
        apex = float(ev["apex_s"])
        t0, t1 = apex - TABLE6_HALF_S, apex + TABLE6_HALF_S
        values, notes = table6_features(se.physio, t0, t1, fparams)
        overlap = _overlaps(t0, t1, spans, skip=int(str(i)))
        rows.append(
            {
                "session": se.session,
                "subject": se.subject,
                "event": ev["id"],
                "kind": ev["kind"],
                "emotion": ev["emotion"],
                "trial": int(ev["trial"]),
                "apex_s": apex,
                "start_s": t0,
                "end_s": t1,
                "overlaps_other_expression": bool(overlap),
            }
            | values
            | {"notes": json.dumps(notes) if notes else ""}
        )
    return rows


def concordance_table(rows: Any, features: tuple[str, ...] = TABLE3) -> Any:
    """Paired t-test per source x D x feature over the events' pre and post windows."""
    import pandas as pd

    out = []
    for (source, d_s), grp in rows[rows["excluded"] == ""].groupby(["source", "D_s"]):
        wide = grp.pivot_table(index=["session", "event"], columns="window", values=list(features),
                               aggfunc="first", dropna=False)  # fmt: skip
        for feat in features:
            if (feat, "pre") not in wide or (feat, "post") not in wide:
                continue
            res = paired_t(wide[(feat, "pre")].to_numpy(), wide[(feat, "post")].to_numpy())
            out.append({"source": source, "D_s": d_s, "feature": feat} | res.to_dict())
    table = pd.DataFrame(out)
    if len(table):
        table["q_bh"] = np.nan
        for _source, idx in table.groupby("source").groups.items():
            table.loc[idx, "q_bh"] = bh_qvalues(table.loc[idx, "p"].to_numpy())
    return table


def exclusion_counts(rows: Any) -> list[dict[str, Any]]:
    me = rows[(rows["source"] == "ME") & (rows["window"] == "pre")]
    out = []
    for d_s, grp in me.groupby("D_s"):
        out.append(
            {
                "D_s": float(d_s),
                "events": int(len(grp)),
                "excluded_overlap": int((grp["excluded"] != "").sum()),
                "included": int((grp["excluded"] == "").sum()),
            }
        )
    return out


def locked_traces(se: SessionEvents, span_s: float = LOCKED_SPAN_S) -> dict[str, np.ndarray]:
    """Per signal, (events x time) traces around every ME apex at 10 Hz (NaN outside)."""
    d = se.physio
    grid = np.arange(-span_s, span_s + 1e-9, 1.0 / LOCKED_RATE_HZ)
    apexes = se.events.loc[se.events["kind"] == Kind.ME.value, "apex_s"].to_numpy(float)
    sources = {"heart_rate": d.heart_rate, **{k: d.signals.get(k) for k in ("EDA", "RSP", "SKT")}}
    out: dict[str, np.ndarray] = {}
    for name, x in sources.items():
        if x is None:
            continue
        tr = np.array([np.interp(a + grid, d.t, x, left=np.nan, right=np.nan) for a in apexes])
        out[name] = tr.reshape(len(apexes), len(grid))
    out["time_s"] = grid
    return out


def locked_summary(traces: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Mean and 95 % CI over events (pooled over sessions) for each locked signal."""
    if not traces:
        return {}
    grid = traces[0]["time_s"]
    out: dict[str, Any] = {"time_s": grid}
    for name in LOCKED_SIGNALS:
        parts = [t[name] for t in traces if name in t and len(t[name])]
        if not parts:
            continue
        all_ev = np.vstack(parts)
        m, lo, hi = mean_ci(all_ev, axis=0)
        out[name] = {"mean": m, "lo": lo, "hi": hi, "n": int(len(all_ev))}
    return out


def analyse_session(
    path: Path,
    annotations: Path | None,
    windows: tuple[float, ...],
    seed: int,
    pparams: PhysioParams | None = None,
    fparams: FeatureParams | None = None,
) -> dict[str, Any]:
    """Everything concordance needs from one session (runs in a joblib worker)."""
    se = load_session(path, annotations, pparams)
    return {
        "session": se.session,
        "subject": se.subject,
        "rows": window_rows(se, windows, True, seed, fparams),
        "traces": locked_traces(se),
        "annotations": se.annotations,
        "physio_problems": se.physio.problems,
        "truth_hr_response": se.truth.get("hr_response"),
        "n_events": {k: int((se.events["kind"] == k).sum()) for k in ("ME", "MaE")},
    }


def run_parallel(
    fn: Callable[..., Any], items: list[Any], jobs: int, scheduler: str | None, desc: str
) -> list[Any]:
    """``fn(item)`` for every item with joblib (loky processes, or Dask at ``scheduler``),
    with a progress bar on stderr."""
    import joblib
    from tqdm import tqdm

    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise LabError(
                "--scheduler needs dask.distributed (pip install 'dask[distributed]')"
            ) from None
        client = Client(scheduler)
        try:
            with joblib.parallel_config(backend="dask"):
                return joblib.Parallel(n_jobs=-1)(joblib.delayed(fn)(i) for i in items)
        finally:
            client.close()
    bar = tqdm(total=len(items), desc=desc, unit="session", disable=None)
    out = []
    try:
        if jobs == 1:
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        # the items are small (session paths): no memmapping, and joblib's temporary
        # folder is ours to remove rather than left in /dev/shm
        with tempfile.TemporaryDirectory(prefix="mmme-joblib-") as tmp:
            par = joblib.Parallel(
                n_jobs=jobs, return_as="generator", max_nbytes=None, temp_folder=tmp
            )
            try:
                for res in par(joblib.delayed(fn)(i) for i in items):
                    out.append(res)
                    bar.update()
            finally:  # no worker process outlives the job (loky keeps them for reuse)
                from joblib.externals.loky import get_reusable_executor

                get_reusable_executor().shutdown(wait=True)
        return out
    finally:
        bar.close()
