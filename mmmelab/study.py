"""The offline commands: ``mmme simulate``, ``mmme features``, ``mmme concordance`` and
``mmme bench analysis``.

``simulate`` writes each session (``acquisition.study``), aligns it like a recorded one
(``mmme align``) and writes its ground truth as the consensus annotation file, so
the analyses run on it exactly as on a coded recording.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import LabError


def simulate(out: Path, plan: Any, show: bool = True) -> list[Path]:
    """Write, align and annotate a simulated study; returns the session folders."""
    from tqdm import tqdm

    from mmmelab.acquisition.study import simulate_study
    from mmmelab.analysis.alignment import align_session

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    bar = tqdm(total=plan.participants, desc="simulate", unit="session", disable=not show)
    done = [0.0] * plan.participants

    def progress(k: int, frac: float) -> None:
        done[k] = frac
        bar.n = round(sum(done), 2)
        bar.refresh()

    try:
        folders = simulate_study(out, plan, progress)
    except OSError as exc:
        raise LabError(f"--out {out}: writing failed ({exc.strerror or exc})") from None
    finally:
        bar.close()
    for folder in folders:
        align_session(folder)
        write_truth_annotations(folder)
    return folders


def write_truth_annotations(folder: Path) -> Path:
    """The simulation's expressions as the session's consensus annotation file."""
    from mmmelab.analysis.annotations import MeRule, annotation_path, table_from_rows, write_table
    from mmmelab.storage import CameraStream, open_session

    with open_session(folder) as s:
        truth = s.manifest.get("simulation_truth") or {}
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        rows = [
            {
                "id": f"{e['kind'].lower()}-{i + 1:03d}",
                "onset": e["onset_frame"],
                "apex": e["apex_frame"],
                "offset": e["offset_frame"],
                "aus": e.get("aus") or ("12" if e["emotion"] == "happiness" else "4+7"),
                "emotion": e["emotion"],
                "notes": "simulation ground truth",
            }
            for i, e in enumerate(truth.get("expressions", []))
        ]
        table = table_from_rows(rows, cam.rate_hz, "consensus", MeRule())
        table.source = "simulation_truth in session.json"
        return write_table(
            table,
            annotation_path(folder),
            camera=(cam.journal["acq_nframe"], cam.master_time),
            session_id=folder.name,
        )


def bench_analysis(minutes: float, keep: Path | None = None) -> dict[str, Any]:
    """One simulated session of ``minutes``: physiology, EEG and concordance timings."""
    from mmmelab.acquisition.study import StudyPlan
    from mmmelab.analysis.eeg import from_stream as eeg_from_stream
    from mmmelab.analysis.eeg import window_band_features
    from mmmelab.analysis.pipeline import run_concordance
    from mmmelab.analysis.stats import concordance as conc
    from mmmelab.storage import SignalStream, open_session

    root = Path(tempfile.mkdtemp(prefix="mmme-bench-analysis-", dir=keep))
    try:
        say = _stderr
        say(f"simulating one {minutes:g}-minute session ...")
        t0 = time.perf_counter()
        folder = simulate(root / "sessions", StudyPlan(participants=1, minutes=minutes), False)[0]
        simulate_s = time.perf_counter() - t0
        say("physiology: preprocessing and both feature sets ...")
        t0 = time.perf_counter()
        se = conc.load_session(folder)
        t3 = conc.window_rows(se, conc.WINDOWS_S, surrogates=False)
        t6 = conc.table6_rows(se)
        physio_s = time.perf_counter() - t0
        say("EEG: resample, filter, bad channels, ICA + ICLabel, band power ...")
        t0 = time.perf_counter()
        with open_session(folder) as s:
            eeg = s.streams["eeg"]
            assert isinstance(eeg, SignalStream)
            result = eeg_from_stream(eeg)
            for row in t6:
                window_band_features(result, row["start_s"], row["end_s"])
            length_s = float(eeg.count / eeg.rate_hz)
        eeg_s = time.perf_counter() - t0
        summary_eeg = result.summary()
        del result
        say("concordance (with surrogates, the HTML page) ...")
        t0 = time.perf_counter()
        conc_summary = run_concordance([folder], root / "concordance")
        concordance_s = time.perf_counter() - t0
        n_me = int((se.events["kind"] == "ME").sum())
        return {
            "minutes": minutes,
            "session_s": round(length_s, 1),
            "eeg_channels": 64,
            "micro_expressions": n_me,
            "simulate_s": round(simulate_s, 2),
            "physio_s": round(physio_s, 2),
            "eeg_s": round(eeg_s, 2),
            "concordance_s": round(concordance_s, 2),
            "realtime_factor_physio": round(length_s / physio_s, 1),
            "realtime_factor_eeg": round(length_s / eeg_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "table3_rows": len(t3),
            "table6_rows": len(t6),
            "eeg_bad_channels": summary_eeg["bad_channels"],
            "eeg_ica_rejected": [c["label"] for c in summary_eeg["ica_rejected"]],
            "hr_mean_5s_p": next(
                (
                    r["p"]
                    for r in conc_summary["significant_p05"]
                    if r["feature"] == "Heart_Rate_Mean" and r["D_s"] == 5.0
                ),
                None,
            ),  # fmt: skip
            "targets": {
                "realtime_factor_physio": ">= 100",
                "realtime_factor_eeg": ">= 30",
                "peak_rss_mb": "<= 3000",
            },
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def print_concordance(summary: dict[str, Any], out: Path) -> None:
    print(f"concordance over {len(summary['sessions'])} session(s) -> {out}")
    for ex in summary["exclusions"]:
        print(
            f"  D = {ex['D_s']:>4g} s: {ex['included']} MEs tested, "
            f"{ex['excluded_overlap']} left out (another ME in the epoch)"
        )
    for c in summary["control"]:
        print(
            f"  D = {c['D_s']:>4g} s: ME tests p<0.05 {c['me_share_p05']:.0%}; "
            f"surrogates p<0.05 {c['share_p05']:.1%} of {c['tests']}"
        )
    hits = [r for r in summary["significant_p05"] if r["D_s"] == 5.0][:8]
    for r in hits:
        print(f"  5 s: {r['feature']:<20} t = {r['t']:+.3f}  p = {r['p']:.2g}  q = {r['q_bh']:.2g}")
    print(f"  page: {out / 'concordance.html'}")


def as_json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        return str(o)

    return json.dumps(obj, default=default)
