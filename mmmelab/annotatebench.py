"""``mmme bench annotate``: the coding window on this machine.

1. The frame figures on a simulated 1-minute session at 2040x1080 RAW8, 150 fps
   (about 20 GB; a full-resolution hour is 1.2 TB, more than this machine holds):
   the page cache evicted, then in a fresh child process ``seek_ms`` (random
   frames), ``step_ms`` (+-1 frame, the frame painted and the tracks redrawn) and
   ``play_fps`` at 1/5 speed (due: 30 frames a second, none skipped).
2. The opening figures on a 60-minute session (64-channel EEG at 1 kHz, the five
   physiology channels, the markers and the camera journal at full length; the
   camera's images at a small size): ``open_s`` (to the first frame and its tracks
   on screen) and ``peak_rss_mb`` of that child.
The sessions are deleted afterwards (``--dir`` chooses the disk). The window runs
on Qt's offscreen platform unless a display is set.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = {"open_s": 2.0, "seek_ms_p95": 30.0, "step_ms_p95": 15.0, "peak_rss_mb": 1500.0}


def _child(which: str, folder: str, queue: Any) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from mmmelab.gui.devtools import annotatebench

        fn = annotatebench.measure_open if which == "open" else annotatebench.measure_frames
        queue.put(fn(Path(folder)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which says it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _in_child(which: str, folder: Path) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(which, str(folder), queue))
    proc.start()
    out = queue.get(timeout=1800)
    proc.join(60)
    if "error" in out:
        raise RuntimeError(f"the {which} measurement failed: {out['error']}")
    return dict(out)


def _simulate(root: Path, minutes: float, width: int, height: int, seed: int) -> Path:
    from mmmelab.acquisition.study import StudyPlan, simulate_study
    from mmmelab.analysis.alignment import align_session

    plan = StudyPlan(participants=1, minutes=minutes, camera_width=width, camera_height=height,
                     dropped_frames=1, seed=seed)  # fmt: skip
    folder = simulate_study(root, plan)[0]
    align_session(folder)
    os.sync()
    return folder


def bench_annotate(keep: Path | None = None, say: Callable[[str], None] = print,
                   long_minutes: float = 60.0) -> dict[str, Any]:  # fmt: skip
    from mmmelab.spotbench import _evict

    root = Path(tempfile.mkdtemp(prefix="mmme-bench-annotate-", dir=keep))
    try:
        say("simulating 1 min at 2040x1080, 150 fps ...")
        t0 = time.perf_counter()
        full = _simulate(root / "full", 1.0, 2040, 1080, 11)
        say(f"  done ({time.perf_counter() - t0:.0f} s); seeking, stepping, playing ...")
        _evict(full)
        frames = _in_child("frames", full)
        shutil.rmtree(root / "full", ignore_errors=True)
        say(f"simulating {long_minutes:g} min (EEG, physiology, journal at full length) ...")
        t0 = time.perf_counter()
        long = _simulate(root / "long", long_minutes, 64, 48, 12)
        say(f"  done ({time.perf_counter() - t0:.0f} s); opening it ...")
        opened = _in_child("open", long)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result: dict[str, Any] = {
        "frames_session": {"minutes": 1.0, "width": 2040, "height": 1080, "fps": 150.0},
        "long_session": {"minutes": long_minutes, "eeg_channels": 64, "eeg_hz": 1000.0},
        "open_s": round(opened["open_s"], 3),
        "heart_rate_ready_s": round(opened["heart_rate_ready_s"], 2),
        "seek_ms_p95": round(frames["seek_ms_p95"], 2),
        "step_ms_p95": round(frames["step_ms_p95"], 2),
        "play_fps": round(frames["play_fps"], 2),
        "peak_rss_mb": round(opened["peak_rss_mb"], 1),
        "peak_rss_mb_frames_session": round(frames["peak_rss_mb"], 1),
        "frames": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in frames.items()},
        "open": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in opened.items()},
        "targets": TARGETS | {"play_fps": "1/5 of 150 = 30, no frame skipped"},
    }
    result["met"] = {
        "open_s": opened["open_s"] <= TARGETS["open_s"],
        "seek_ms_p95": frames["seek_ms_p95"] <= TARGETS["seek_ms_p95"],
        "step_ms_p95": frames["step_ms_p95"] <= TARGETS["step_ms_p95"],
        "peak_rss_mb": max(opened["peak_rss_mb"], frames["peak_rss_mb"])
        <= TARGETS["peak_rss_mb"],
        "play_fps": frames["play_skipped"] == 0 and frames["play_late_ticks"] == 0
        and frames["play_fps"] >= 0.98 * frames["play_fps_due"],
    }  # fmt: skip
    return result
