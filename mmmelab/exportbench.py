"""``mmme bench export``: the exports and the report on simulated, annotated sessions.

1. **Video at full resolution**: one minute simulated at 2040x1080 RAW8, 150 fps
   (about 20 GB), aligned; its face video encoded losslessly with each codec
   (``video_encode_fps``, ``video_bytes_per_frame``; the first ``probe_s`` seconds
   with each codec not chosen, for the comparison), and decoded back to check that
   the first frames are the recorded ones bit for bit. Target: the chosen codec keeps
   up with the camera (>= 150 fps).
2. **A 60-minute session** (signals and journal at full length, the camera at
   64x48): ``mmme export bids`` (``bids_s``), ``mmme export me-dataset``
   (``me_dataset_s``) and ``mmme report`` (``report_s``, ``report_bytes``).
   Targets: the report within 30 s and 5 MB.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {"video_encode_fps": 150.0, "report_s": 30.0, "report_bytes": 5_000_000}


def bench_export(video_minutes: float = 1.0, long_minutes: float = 60.0,
                 keep: Path | None = None, codec: str = "magicyuv", probe_s: float = 10.0,
                 say: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    from mmmelab.storage.bidsvideo import CODECS

    others = [c for c in CODECS if c != codec]
    root = Path(tempfile.mkdtemp(prefix="mmme-bench-export-", dir=keep))
    out: dict[str, Any] = {"codec": codec, "codec_why": CODECS[codec].why}
    try:
        out |= _video(root, video_minutes, codec, others, probe_s, say)
        out |= _long(root, long_minutes, codec, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["targets"] = TARGETS
    out["met"] = {"video_encode_fps": out["video_encode_fps"] >= TARGETS["video_encode_fps"],
                  "report_s": out["report_s"] <= TARGETS["report_s"],
                  "report_bytes": out["report_bytes"] <= TARGETS["report_bytes"]}  # fmt: skip
    return out


def _simulate(root: Path, minutes: float, width: int, height: int, seed: int) -> Path:
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.study import write_truth_annotations

    plan = StudyPlan(participants=1, minutes=minutes, camera_width=width, camera_height=height,
                     responders=1, me_per_clip=1.5, mae_per_clip=0.6, seed=seed)  # fmt: skip
    proto = short_trials(40.0, 10.0) if minutes >= 10 else short_trials(12.0, 2.0)
    folder = simulate_study(root, plan, protocol=proto)[0]
    align_session(folder)
    write_truth_annotations(folder)
    return folder


def _video(root: Path, minutes: float, codec: str, others: list[str], probe_s: float,
           say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    import av

    from mmmelab.storage import CameraStream, SignalStream, open_session
    from mmmelab.storage.bids import Timebase
    from mmmelab.storage.bidsvideo import from_tiles, write_video

    say(f"simulating {minutes:g} min at 2040x1080 RAW8, 150 fps ...")
    t0 = time.perf_counter()
    folder = _simulate(root / "full", minutes, 2040, 1080, 41)
    say(f"  done ({time.perf_counter() - t0:.0f} s); encoding ...")
    os.sync()
    res: dict[str, Any] = {}
    with open_session(folder) as s:
        cam, eeg = s.streams["camera"], s.streams["eeg"]
        assert isinstance(cam, CameraStream) and isinstance(eeg, SignalStream)
        tb = Timebase.of(eeg)
        n = len(cam.frames)
        raw_bytes = cam.frames.width * cam.frames.height
        plan = [(codec, n)] + [(o, int(probe_s * cam.rate_hz)) for o in others]
        for name, frames in plan:
            t = time.perf_counter()
            dest = root / f"video-{name}"
            got = write_video(cam, dest, "sub-X_ses-01_task-mmme", tb, name, limit=frames)
            dt = time.perf_counter() - t
            res[f"{name}_encode_fps"] = round(got["frames"] / dt, 1)
            res[f"{name}_bytes_per_frame"] = int(got["bytes"] / got["frames"])
            res[f"{name}_frames"] = got["frames"]
            with av.open(str(dest / got["file"])) as c:
                for i, f in enumerate(c.decode(video=0)):
                    img = f.to_ndarray(format="gray")
                    img = from_tiles(img) if got["layout"] == "tiles" else img
                    assert np.array_equal(img, cam.frames[i]), (name, i)
                    if i == 2:
                        break
            say(f"  {name}: {res[f'{name}_encode_fps']} fps, "
                f"{res[f'{name}_bytes_per_frame'] / raw_bytes:.2f} of RAW8")  # fmt: skip
    shutil.rmtree(root / "full", ignore_errors=True)
    res["video_encode_fps"] = res[f"{codec}_encode_fps"]
    res["video_bytes_per_frame"] = res[f"{codec}_bytes_per_frame"]
    res["video_raw_bytes_per_frame"] = raw_bytes
    res["video_frames"] = n
    res["video_lossless_checked"] = True
    return res


def _long(root: Path, minutes: float, codec: str, say: Callable[[str], None]) -> dict[str, Any]:
    from mmmelab.analysis.report.session import write_report
    from mmmelab.export import export_bids
    from mmmelab.medataset import export_me_dataset
    from mmmelab.storage import open_session

    say(f"simulating a {minutes:g}-minute session (camera 64x48) ...")
    t0 = time.perf_counter()
    folder = _simulate(root / "long", minutes, 64, 48, 43)
    with open_session(folder) as s:
        level = s.consent_level
    say(f"  done ({time.perf_counter() - t0:.0f} s); BIDS ...")
    restricted = root / "restricted" if level != 1 else None
    t = time.perf_counter()
    b = export_bids([folder], root / "bids", restricted, codec=codec)
    bids_s = time.perf_counter() - t
    say(f"  BIDS {bids_s:.0f} s; ME dataset ...")
    t = time.perf_counter()
    me = export_me_dataset([folder], root / "me", restricted)
    me_s = time.perf_counter() - t
    say(f"  ME dataset {me_s:.0f} s; report ...")
    t = time.perf_counter()
    rep = write_report(folder, root / "report.html")
    report_s = time.perf_counter() - t
    say(f"  report {report_s:.1f} s, {rep['bytes'] / 1e3:.0f} kB")
    sess = b["sessions"][0]
    return {"long_minutes": minutes, "bids_s": round(bids_s, 1), "me_dataset_s": round(me_s, 1),
            "report_s": round(report_s, 2), "report_bytes": rep["bytes"],
            "bids_events": sess["events"], "bids_physio_residual_ms": sess["physio"]["residual_ms"],
            "me_samples": me["samples"], "me_notes": len(me["notes"])}  # fmt: skip
