"""``mmme bench recognition``: the recognisers on a simulated study.

A study of ``participants`` (10 by default) simulated with emotion-specific
responses (``StudyPlan.emotion_scale``: each emotion moves the heart rate, the EDA,
breathing, skin temperature, the pulse amplitude and the EEG's alpha and beta by its
own known amount, see ``hardware_mocks/synth.EMOTION_PHYSIO`` and ``EMOTION_EEG``;
the face makes each emotion's action units) - by default the physiology at 3.0 and
the EEG at 0.8, so that, as in MMME's Tables 7 and 8, the face is the strongest
single modality and the EEG and the peripheral signals are weaker and comparable
(at equal scales the EEG matches the face and the vote cannot beat them; README) -
each participant seeing the clips in
their own seeded order, the camera at 320x176; every session aligned, its truth
written as the consensus; ``dataset build`` (EEG without ICA, for time) and
``recognize`` over LOSO, 7 and 3 classes: each modality's and the fused accuracy,
weighted F1, UF1 and UAR, pooled and per fold - the paper's weighted vote with its
recall weights (the target's "fused"), and beside it the vote with precision weights
and probability averaging. Then the training throughput on this CPU of HTNet,
TSFmicro and EEGNet (``samples_per_s``, two epochs over the whole dataset at the
``cpu`` sizes); ``deep=True`` also runs LOSO with HTNet as the face's classifier.
Targets: every modality's UAR above chance, the fused UAR at least the best single
modality's, the whole bench within 15 minutes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = {"minutes_total": 15.0}


def bench_recognition(participants: int = 10, minutes: float = 5.0, scale: float = 3.0,
                      eeg_scale: float = 0.8, keep: Path | None = None, deep: bool = False,
                      say: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.analysis.recognition.dataset import build_dataset
    from mmmelab.analysis.recognition.run import recognize
    from mmmelab.study import write_truth_annotations

    t_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="mmme-bench-recognition-", dir=keep))
    try:
        proto = short_trials(12.0, 2.0)
        plan = StudyPlan(participants=participants, minutes=minutes, camera_width=320,
                         camera_height=176, responders=participants, me_per_clip=2.0,
                         mae_per_clip=1.0, min_gap_s=3.0, emotion_scale=scale,
                         emotion_scale_eeg=eeg_scale, seed=31,
                         order_per_participant=True)  # fmt: skip
        say(f"simulating {participants} participants x {minutes:g} min ...")
        t0 = time.perf_counter()
        folders = simulate_study(root / "sessions", plan, protocol=proto)
        for f in folders:
            align_session(f)
            write_truth_annotations(f)
        simulate_s = time.perf_counter() - t0
        say(f"  done ({simulate_s:.0f} s); building the dataset ...")
        t0 = time.perf_counter()
        summary = build_dataset(folders, root / "ds", eeg_ica=False)
        build_s = time.perf_counter() - t0
        say(f"  {summary['samples']} samples ({build_s:.0f} s); LOSO, 7 and 3 classes ...")
        results = {}
        t0 = time.perf_counter()
        for classes in (7, 3):
            rep = recognize(root / "ds", root / f"rec{classes}", "loso", classes=classes)
            results[f"{classes}_class"] = {
                "chance_uar": rep["chance_uar"],
                "table": {r["modality"]: {k: r[k] for k in r if k != "modality"}
                          for r in rep["table"]},
            }  # fmt: skip
        recognize_s = time.perf_counter() - t0
        say(f"  done ({recognize_s:.0f} s); deep models' training throughput ...")
        deep_models = _deep(root / "ds", deep, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total_min = (time.perf_counter() - t_start) / 60.0
    met: dict[str, Any] = {"minutes_total": total_min <= TARGETS["minutes_total"]}
    for key, res in results.items():
        table, chance = res["table"], res["chance_uar"]
        singles = {m: v["uar_pooled"] for m, v in table.items()
                   if not m.startswith("fusion") and m != "prob_average"}  # fmt: skip
        met[f"{key}_every_modality_above_chance"] = all(
            (u or 0.0) > chance for u in singles.values()
        )
        met[f"{key}_fused_at_least_best_single"] = (table["fusion"]["uar_pooled"] or 0.0) >= max(
            (u or 0.0) for u in singles.values())  # fmt: skip
        res["uar_pooled"] = {m: round(v["uar_pooled"] or 0.0, 4) for m, v in table.items()}
    return {
        "participants": participants, "minutes_each": minutes, "emotion_scale": scale,
        "emotion_scale_eeg": eeg_scale,
        "samples": summary["samples"], "simulate_s": round(simulate_s, 1),
        "build_s": round(build_s, 1), "recognize_s": round(recognize_s, 1),
        "minutes_total": round(total_min, 2), "results": results,
        "deep_models": deep_models,
        "targets": TARGETS | {"uar": "every modality above chance; fused >= best single"},
        "met": met,
    }  # fmt: skip


def _deep(ds: Path, loso: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Training samples per second of each deep model; with ``loso``, HTNet's LOSO."""
    from mmmelab.analysis.recognition.dataset import load_features
    from mmmelab.analysis.recognition.metrics import EMOTIONS_7
    from mmmelab.analysis.recognition.run import recognize
    from mmmelab.analysis.recognition.training import TrainSettings, throughput

    try:
        import torch  # noqa: F401
    except ImportError:
        return {"note": "PyTorch is not installed (the [models] extra): no deep figures"}
    _, index, _ = load_features(ds)
    y = [r["emotion"] for r in index]
    out: dict[str, Any] = {}
    for kind in ("htnet", "tsfmicro", "eegnet"):
        got = throughput(ds, index, kind, EMOTIONS_7, y, TrainSettings())
        out[f"{kind}_samples_per_s"] = got["samples_per_s"]
        out[f"{kind}_layers"] = got["layers"]
        say(f"  {kind}: {got['samples_per_s']} samples/s")
    if loso:
        for classes in (7, 3):
            t0 = time.perf_counter()
            rep = recognize(ds, ds.parent / f"htnet{classes}", "loso", classes=classes,
                            face_model="htnet")  # fmt: skip
            out[f"htnet_loso_{classes}_class"] = {
                "uar_pooled": {r["modality"]: round(r["uar_pooled"] or 0.0, 4)
                               for r in rep["table"]},
                "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            say(f"  HTNet LOSO, {classes} classes: {out[f'htnet_loso_{classes}_class']}")
    return out
