"""``mmme export me-dataset``: coded sessions in the layout ME researchers use
(CASME II / SAMM style).

::

    OUT/
      README.md                 the layout, the image format, consent
      coding.csv, coding.xlsx   one row per sample: subject, trial, clip, onset, apex,
                                offset (frame numbers), AUs, emotion, 3-class label, kind,
                                frame rate, consent level, where its frames are
      splits/loso/<subject>-test.txt, <subject>-train.txt   sample ids per LOSO fold
      <subject>/<sample>/img<frame>.png|jpg    the face crop of every frame onset..offset
      <subject>/<sample>/signals.npz           10 s of physiology and EEG centred on
                                               the apex (see README.md)

Crops: the trial's fixed face box (``face.detect.trial_box``), in colour from the
Bayer cells (one pixel per 2x2 cell, the recording's white balance), at the box's
own size unless ``size`` is given; PNG (lossless) or JPEG at a stated quality.
Consent: a level-2 participant's crops never enter ``OUT``; they go to
``--restricted DIR`` (same relative paths, marked restricted) or the export stops in
one line. Their labels and signals stay in ``OUT`` - they are not face images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.errors import LabError
from mmmelab.storage.consent import LEVELS, check_public, face_public

WINDOW_S = 10.0
SHEET_COLUMNS = ("sample", "subject", "session", "trial", "clip", "onset_frame", "apex_frame",
                 "offset_frame", "aus", "emotion", "label3", "kind", "fps", "duration_ms",
                 "apex_s", "consent_level", "frames", "n_frames")  # fmt: skip


def export_me_dataset(sessions: Sequence[Path], out: Path, restricted: Path | None = None,
                      fmt: str = "png", quality: int = 95, size: int | None = None,
                      faces: bool = True,
                      progress: Callable[[int, int, str], None] | None = None,
                      ) -> dict[str, Any]:  # fmt: skip
    """Write the layout at ``out``; returns a summary."""
    from mmmelab.storage import open_session

    if fmt not in ("png", "jpg"):
        raise LabError(f"--format {fmt}: png or jpg")
    if not 1 <= quality <= 100:
        raise LabError(f"--quality {quality}: 1 to 100 (JPEG)")
    levels = {}
    for folder in sessions:
        with open_session(folder) as s:
            levels[Path(folder)] = (str(s.manifest["participant"].get("id", "")),
                                    s.consent_level)  # fmt: skip
    if faces and restricted is None:
        for sub, level in levels.values():
            check_public(sub, level, "face crops")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for n, folder in enumerate(sessions):
        if progress:
            progress(n, len(sessions), Path(folder).name)
        sub, level = levels[Path(folder)]
        tree = out if face_public(level) else restricted
        rows += _session(Path(folder), out, tree if faces else None, fmt, quality, size, notes)
    if progress:
        progress(len(sessions), len(sessions), "")
    _sheet(out, rows)
    _splits(out, rows)
    (out / "README.md").write_text(_readme(fmt, quality, size, rows))
    if restricted is not None and any(r["frames"] == "restricted" for r in rows):
        Path(restricted).mkdir(parents=True, exist_ok=True)
        who = sorted({r["subject"] for r in rows if r["frames"] == "restricted"})
        (Path(restricted) / "RESTRICTED.txt").write_text(
            "RESTRICTED - NOT FOR PUBLICATION.\n\nFace crops of participants whose consent "
            f"(level 2: {LEVELS[2]}) forbids publishing their face: "
            f"{', '.join(who)}.\n")  # fmt: skip
    summary = {"out": str(out), "samples": len(rows), "notes": notes,
               "subjects": sorted({r["subject"] for r in rows}),
               "restricted": str(restricted) if restricted else None}  # fmt: skip
    (out / "export.json").write_text(json.dumps(summary | {
        "software": {"name": "mmme-lab", "version": __version__},
        "params": {"format": fmt, "quality": quality if fmt == "jpg" else None, "size": size,
                   "window_s": WINDOW_S}}, indent=1))  # fmt: skip
    return summary


def _events(folder: Path) -> tuple[Any, list[tuple[int, float, float]], float, int, str, str,
                                   Any]:  # fmt: skip
    from mmmelab.analysis.annotations import annotation_path, read_table, times_table
    from mmmelab.analysis.stats.concordance import clip_periods, trial_of
    from mmmelab.storage import CameraStream, open_session

    path = annotation_path(folder)
    if not path.exists():
        raise LabError(f"{folder}: no consensus annotations ({path}); code it first")
    table = read_table(path)
    with open_session(folder) as s:
        cam = s.streams.get("camera")
        if not isinstance(cam, CameraStream):
            raise LabError(f"{folder}: no camera stream")
        events = times_table(table, cam.journal["acq_nframe"], cam.master_time)
        clips = clip_periods(s.markers)
        labels = {k: tr["clip_id"].decode() for k, tr in enumerate(s.trials)}
        part = s.manifest["participant"]
        level = s.consent_level
    events["trial"] = trial_of(events["apex_s"].to_numpy(), clips)
    events["clip"] = [labels.get(int(t), "") for t in events["trial"]]
    ses = f"{int(part.get('session', 1)):02d}"
    return events, clips, table.fps, level, str(part.get("id", "")), ses, table.rule


def _session(folder: Path, out: Path, tree: Path | None, fmt: str, quality: int,
             size: int | None, notes: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    import cv2

    from mmmelab.analysis.face.frames import SessionFrames
    from mmmelab.analysis.recognition.dataset import apex_frame, trial_boxes
    from mmmelab.analysis.recognition.metrics import TO_3
    from mmmelab.storage import CameraStream, open_session

    events, clips, fps, level, sub, ses, rule = _events(folder)
    extra = 1 if rule.counting == "inclusive" else 0  # frames counted as the ME rule counts
    rows = []
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    )
    with open_session(folder) as s:
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        frames = SessionFrames(cam)
        boxes = trial_boxes(frames, events, clips, notes) if tree is not None else {}
        for _, ev in events.iterrows():
            sample = f"{sub}_ses{ses}_t{int(ev['trial']):02d}_{ev['id']}"
            on, off = int(ev["onset_frame"]), int(ev["offset_frame"])
            where, count = "not exported", 0
            box = boxes.get(int(ev["trial"])) if tree is not None else None
            if tree is not None and box is not None:
                folder_out = Path(tree) / sub / sample
                folder_out.mkdir(parents=True, exist_ok=True)
                for f in frames.read(on, off, colour=True):
                    img = np.clip(f.image, 0, 255).astype(np.uint8)
                    img = img[box.y : box.y + box.h, box.x : box.x + box.w]
                    if size:
                        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
                    cv2.imwrite(str(folder_out / f"img{f.number}.{fmt}"),
                                cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)  # fmt: skip
                    count += 1
                where = "public" if tree == out else "restricted"
            elif tree is not None:
                notes.append(f"{sample}: no face box (trial {int(ev['trial'])}): no crops")
            _windows(s, out / sub / sample / "signals.npz", float(ev["apex_s"]))
            rows.append({
                "sample": sample, "subject": sub, "session": ses, "trial": int(ev["trial"]),
                "clip": ev["clip"], "onset_frame": on, "apex_frame": apex_frame(ev)
                if ev["apex_frame"] is not None else "", "offset_frame": off,
                "aus": ev["aus"], "emotion": ev["emotion"], "label3": TO_3.get(ev["emotion"], ""),
                "kind": ev["kind"], "fps": fps,
                "duration_ms": round((off - on + extra) / fps * 1000.0, 3),
                "apex_s": float(ev["apex_s"]), "consent_level": level, "frames": where,
                "n_frames": count})  # fmt: skip
    return rows


def _windows(s: Any, path: Path, apex_s: float) -> None:
    """10 s of every signal stream centred on the apex, with times relative to it."""
    from mmmelab.storage import SignalStream

    arrays: dict[str, Any] = {"apex_master_s": apex_s, "window_s": WINDOW_S}
    for name, st in s.streams.items():
        if not isinstance(st, SignalStream):
            continue
        t = np.asarray(st.master_time)
        a, b = np.searchsorted(t, [apex_s - WINDOW_S / 2, apex_s + WINDOW_S / 2])
        arrays[f"{name}"] = np.asarray(st.data[a:b], dtype=np.float32)
        arrays[f"{name}_t"] = (t[a:b] - apex_s).astype(np.float64)
        arrays[f"{name}_channels"] = np.array(list(st.channels))
        arrays[f"{name}_units"] = np.array(st.units)
        arrays[f"{name}_rate_hz"] = np.float64(st.rate_hz)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def _sheet(out: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(SHEET_COLUMNS))
    df.to_csv(out / "coding.csv", index=False)
    df.to_excel(out / "coding.xlsx", index=False, sheet_name="coding")


def _splits(out: Path, rows: list[dict[str, Any]]) -> None:
    folder = out / "splits" / "loso"
    folder.mkdir(parents=True, exist_ok=True)
    subjects = sorted({r["subject"] for r in rows})
    for s in subjects:
        test = [r["sample"] for r in rows if r["subject"] == s]
        train = [r["sample"] for r in rows if r["subject"] != s]
        assert not set(test) & set(train)
        (folder / f"{s}-test.txt").write_text("".join(x + "\n" for x in test))
        (folder / f"{s}-train.txt").write_text("".join(x + "\n" for x in train))


def _readme(fmt: str, quality: int, size: int | None, rows: list[dict[str, Any]]) -> str:
    image = ("PNG (lossless)" if fmt == "png" else f"JPEG at quality {quality}") + (
        f", resized to {size} x {size}" if size else ", at the face box's own size"
    )
    return "\n".join([
        "# Micro-expression samples (mmme-lab export)", "",
        f"{len(rows)} samples of {len({r['subject'] for r in rows})} subjects. One folder per "
        "sample under its subject: `img<frame>.<ext>` for every frame onset..offset (the "
        "number is the camera's own frame counter, so a dropped frame is a missing number, "
        f"never a renumbering), {image}; colour from the sensor's 2x2 Bayer cells.", "",
        "`coding.csv` / `coding.xlsx`: one row per sample (subject, trial, clip, onset, apex, "
        "offset frames, AUs in FACS notation, emotion, 3-class label - negative = anger, "
        "disgust, fear, sadness, contempt; positive = happiness; surprise -, ME or MaE, fps, "
        "consent level, and where its frames are: public, restricted or not exported).", "",
        "`splits/loso/<subject>-test.txt` and `-train.txt`: the leave-one-subject-out folds.",
        "",
        "`signals.npz` per sample: 10 s centred on the apex of every signal stream "
        "(`eeg`, `physio`: samples x channels, float32, with `<stream>_t` seconds from the "
        "apex on the master clock, `_channels`, `_units`, `_rate_hz`).", "",
        "Consent: level 1 = " + LEVELS[1] + "; level 2 = " + LEVELS[2] + ". Level-2 "
        "participants' crops are not in this folder.", ""])  # fmt: skip
