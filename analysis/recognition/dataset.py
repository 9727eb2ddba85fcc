"""``mmme dataset build``: one sample per consensus annotation, in one HDF5 file.

For every annotation of a session's consensus file whose emotion is one of the seven
(``others`` is counted and left out), the sample holds

* its labels: the emotion (7 classes) and MMME's 3 classes (negative = anger,
  disgust, fear, sadness, contempt; positive = happiness; surprise), the kind, the
  AUs; the subject, session, trial and the participant's consent level;
* the face (``samples/<id>/crops``): the trial's fixed face box (from the trial's
  first frames, ``face.detect.trial_box``) cut from every frame onset..offset,
  128 x 128 grey uint8 from the Bayer cells; the onset, apex and offset frames'
  positions in it; the onset->apex ``(u, v, strain)`` stack (``flow``, float16,
  DIS flow, standard strain) - what HTNet and TSFmicro take;
* the EEG (``samples/<id>/eeg``): 10 s centred on the apex, every EEG channel at
  200 Hz after the preprocessing of "Analysis I" (float32, uV);
* feature rows per modality (``features/<modality>``, NaN where missing): Table 6's
  features (PPG, ECG, RSP, SKT, EDA; 10 s centred on the apex), EEG band power in
  the same window, and a classical face descriptor of the MDMO family - per facial
  region, the mean onset->apex flow with the head's motion (the nose region's
  median) removed, as magnitude and direction (cos, sin).

``index`` (a table in the file, and ``index.tsv`` beside it) lists the samples.
Rebuilding is incremental: a session whose consensus file, session manifest and
build parameters are unchanged is copied from the previous build, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.analysis.recognition.metrics import EMOTIONS_7, TO_3
from mmmelab.errors import LabError

FILE = "dataset.h5"
PERI = ("PPG", "ECG", "RSP", "SKT", "EDA")
EEG_WINDOW_S = 10.0
CROP = 128
INDEX_COLUMNS = ("sample", "session", "subject", "trial", "event", "kind", "emotion", "label3",
                 "aus", "consent_level", "onset_frame", "apex_frame", "offset_frame", "apex_s",
                 "face", "eeg")  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _session_key(folder: Path, params: dict[str, Any]) -> str:
    from mmmelab.analysis.annotations import annotation_path
    from mmmelab.storage.manifest import MANIFEST

    h = hashlib.sha256()
    for part in (_sha(annotation_path(folder)), _sha(folder / MANIFEST),
                 json.dumps(params, sort_keys=True)):  # fmt: skip
        h.update(part.encode())
    return h.hexdigest()


def _face(folder: Path, events: Any, clips: list[tuple[int, float, float]],
          notes: list[str]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per event id: crops, key-frame positions, flow stack and the face descriptor."""
    from mmmelab.analysis.face.detect import crop
    from mmmelab.analysis.face.frames import SessionFrames
    from mmmelab.storage import CameraStream, open_session

    out: dict[str, dict[str, Any]] = {}
    with open_session(folder) as s:
        cam = s.streams.get("camera")
        if not isinstance(cam, CameraStream):
            notes.append("no camera stream: no face samples")
            return out
        frames = SessionFrames(cam)
        boxes = trial_boxes(frames, events, clips, notes)
        for _, ev in events.iterrows():
            box = boxes[int(ev["trial"])]
            if box is None:
                continue
            on, off = int(ev["onset_frame"]), int(ev["offset_frame"])
            apex = apex_frame(ev)
            got = [(f.number, crop(np.clip(f.image, 0, 255).astype(np.uint8), box, CROP))
                   for f in frames.read(on, off)]  # fmt: skip
            if not got:
                notes.append(f"event {ev['id']}: no stored frame in {on}..{off}")
                continue
            out[str(ev["id"])] = face_sample(got, apex)
    return out


def trial_boxes(frames: Any, events: Any, clips: list[tuple[int, float, float]],
                notes: list[str]) -> dict[int, Any]:  # fmt: skip
    """Each trial's fixed face box (``face.detect.trial_box`` on the first frames of its
    clip), or None with a note when no face is found."""
    from mmmelab.analysis.face.detect import NoFaceError, trial_box

    boxes: dict[int, Any] = {}
    for _, ev in events.iterrows():
        trial = int(ev["trial"])
        if trial in boxes:
            continue
        start = next((on for k, on, _off in clips if k == trial), None)
        first = int(frames.numbers[np.searchsorted(frames.times, start)]) if (
            start is not None) else int(ev["onset_frame"])  # fmt: skip
        try:
            boxes[trial], _ = trial_box(f.image for f in frames.read(first, first + 40))
        except NoFaceError as exc:
            boxes[trial] = None
            notes.append(f"trial {trial}: {exc}; its samples have no face")
    return boxes


def apex_frame(ev: Any) -> int:
    """An event row's apex frame, or its middle when the apex was not annotated."""
    on, off = int(ev["onset_frame"]), int(ev["offset_frame"])
    apex = ev["apex_frame"]
    if apex is None or (isinstance(apex, float) and np.isnan(apex)):
        return (on + off) // 2
    return int(apex)


def face_sample(got: list[tuple[int, np.ndarray]], apex: int) -> dict[str, Any]:
    """From (frame number, 128x128 grey crop) onset..offset: the crops, their numbers,
    the onset->apex (u, v, strain) stack and the MDMO-like descriptor."""
    from mmmelab.analysis.face.motion import optical_flow, optical_strain
    from mmmelab.analysis.face.regions import ANCHOR, REGIONS, _slices

    numbers = np.array([n for n, _ in got])
    crops = np.stack([c for _, c in got])
    i_on, i_apex = 0, int(np.argmin(np.abs(numbers - apex)))
    flow = optical_flow(crops[i_on], crops[i_apex], "dis")
    strain = optical_strain(flow)
    stack = np.concatenate([flow.transpose(2, 0, 1), strain[None]]).astype(np.float16)
    f = flow.astype(np.float64)
    ys, xs = _slices(f.shape, REGIONS[ANCHOR])
    f = f - np.median(f[ys, xs].reshape(-1, 2), axis=0)  # the head's motion
    desc = []
    for name, region in REGIONS.items():
        if name == ANCHOR:
            continue
        ys, xs = _slices(f.shape, region)
        u, v = f[ys, xs, 0].mean(), f[ys, xs, 1].mean()
        mag = float(np.hypot(u, v))
        desc += [mag, u / mag if mag else 0.0, v / mag if mag else 0.0]
    return {"crops": crops, "numbers": numbers, "flow": stack,
            "keys": [i_on, i_apex, len(numbers) - 1], "descriptor": np.array(desc)}  # fmt: skip


def face_descriptor_names() -> list[str]:
    from mmmelab.analysis.face.regions import ANCHOR, REGIONS

    return [f"FACE_{r}_{q}" for r in REGIONS if r != ANCHOR for q in ("mag", "cos", "sin")]


def _session_samples(folder: Path, with_eeg: bool, with_face: bool,
                     eeg_ica: bool = True) -> dict[str, Any]:  # fmt: skip
    from mmmelab.analysis.physio.features import TABLE6
    from mmmelab.analysis.stats import concordance as conc
    from mmmelab.storage import SignalStream, open_session

    notes: list[str] = []
    se = conc.load_session(folder)
    rows = {r["event"]: r for r in conc.table6_rows(se)}
    with open_session(folder) as s:
        consent = s.consent_level
        session_no = s.manifest["participant"].get("session", "")
        eeg_stream = s.streams.get("eeg")
        eeg_res = None
        if with_eeg and isinstance(eeg_stream, SignalStream):
            from mmmelab.analysis.eeg import EegParams, from_stream

            eeg_res = from_stream(eeg_stream, EegParams(ica=eeg_ica))
        elif with_eeg:
            notes.append("no EEG stream")
    faces = _face(folder, se.events, se.clips, notes) if with_face else {}
    samples = []
    eeg_names: list[str] = []
    left_out: dict[str, int] = {}
    for _, ev in se.events.iterrows():
        emo = str(ev["emotion"])
        if emo not in EMOTIONS_7:
            left_out[emo] = left_out.get(emo, 0) + 1
            continue
        eid = str(ev["id"])
        apex_s = float(ev["apex_s"])
        t6 = rows.get(eid, {})
        feats = {m: np.array([float(t6.get(n, np.nan)) for n in TABLE6 if n.startswith(m + "_")])
                 for m in PERI}  # fmt: skip
        eeg_window = None
        if eeg_res is not None:
            from mmmelab.analysis.eeg import window_band_features

            t0, t1 = apex_s - EEG_WINDOW_S / 2, apex_s + EEG_WINDOW_S / 2
            bands = window_band_features(eeg_res, t0, t1)
            feats["EEG"] = np.array(list(bands.values()), dtype=np.float64)
            eeg_names[:] = list(bands)
            a = int(np.searchsorted(eeg_res.t, t0))
            n = int(round(EEG_WINDOW_S * float(eeg_res.raw.info["sfreq"])))
            if a >= 0 and a + n <= eeg_res.raw.n_times:
                import mne

                picks = mne.pick_types(eeg_res.raw.info, eeg=True)
                eeg_window = (eeg_res.raw.get_data(picks=picks, start=a, stop=a + n) * 1e6
                              ).astype(np.float32)  # fmt: skip
        face = faces.get(eid)
        feats["FACE"] = face["descriptor"] if face is not None else np.full(
            len(face_descriptor_names()), np.nan)  # fmt: skip
        samples.append({
            "session": folder.name, "subject": se.subject, "trial": int(ev["trial"]),
            "event": eid, "kind": str(ev["kind"]), "emotion": emo, "label3": TO_3[emo],
            "aus": str(ev["aus"]), "consent_level": consent,
            "onset_frame": int(ev["onset_frame"]), "apex_frame": int(ev["apex_frame"])
            if ev["apex_annotated"] else -1, "offset_frame": int(ev["offset_frame"]),
            "apex_s": apex_s, "features": feats, "face": face, "eeg": eeg_window,
        })  # fmt: skip
    if left_out:
        notes.append("left out (not one of the seven emotions): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(left_out.items())))  # fmt: skip
    return {"session": folder.name, "subject": se.subject, "session_no": session_no,
            "samples": samples, "notes": notes, "annotations": se.annotations,
            "eeg_names": eeg_names}  # fmt: skip


def build_dataset(
    sessions: Sequence[Path],
    out: Path,
    with_eeg: bool = True,
    with_face: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    eeg_ica: bool = True,
) -> dict[str, Any]:
    """Build (or update) ``out/dataset.h5``; returns the summary written to
    ``out/dataset.json``. ``eeg_ica=False`` skips the ICA of the EEG preprocessing
    (faster; recorded in the parameters)."""
    import h5py

    from mmmelab.analysis.physio.features import TABLE6

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = {"eeg": with_eeg, "face": with_face, "crop": CROP, "eeg_window_s": EEG_WINDOW_S,
              "flow": "dis", "strain": "standard", "eeg_ica": eeg_ica,
              "version": __version__}  # fmt: skip
    old_summary = {}
    if (out / "dataset.json").exists():
        try:
            old_summary = json.loads((out / "dataset.json").read_text())
        except ValueError:
            old_summary = {}
    old_keys = {k: v["key"] for k, v in old_summary.get("sessions", {}).items()}
    names = {m: [n for n in TABLE6 if n.startswith(m + "_")] for m in PERI}
    names["FACE"] = face_descriptor_names()
    tmp = out / (FILE + ".tmp")
    old = h5py.File(out / FILE, "r") if (out / FILE).exists() else None
    index: list[dict[str, Any]] = []
    feats: dict[str, list[np.ndarray]] = {}
    summary_sessions = {}
    try:
        with h5py.File(tmp, "w") as h5:
            grp = h5.create_group("samples")
            for n, folder in enumerate(sessions):
                folder = Path(folder)
                key = _session_key(folder, params)
                reuse = old is not None and old_keys.get(folder.name) == key
                if progress:
                    progress(n, len(sessions), f"{folder.name}{' (unchanged)' if reuse else ''}")
                if reuse:
                    assert old is not None
                    info = old_summary["sessions"][folder.name]
                    rows = [r for r in old_summary["index"] if r["session"] == folder.name]
                    for r in rows:
                        old.copy(old["samples"][r["sample"]], grp, name=r["sample"])
                        for m in old["features"]:
                            feats.setdefault(m, []).append(old["features"][m][r["row"]])
                            if m == "EEG":
                                names.setdefault("EEG", list(old["features"]["EEG"].attrs["names"]))
                    index += [{k: v for k, v in r.items() if k != "row"} for r in rows]
                    summary_sessions[folder.name] = info
                    continue
                res = _session_samples(folder, with_eeg, with_face, eeg_ica)
                for smp in res["samples"]:
                    sid = f"{folder.name}:{smp['event']}"
                    g = grp.create_group(sid)
                    if smp["face"] is not None:
                        g.create_dataset("crops", data=smp["face"]["crops"],
                                         compression="gzip", compression_opts=1)  # fmt: skip
                        g.create_dataset("frame_numbers", data=smp["face"]["numbers"])
                        g.create_dataset("flow", data=smp["face"]["flow"])
                        g.attrs["keys_onset_apex_offset"] = smp["face"]["keys"]
                    if smp["eeg"] is not None:
                        g.create_dataset("eeg", data=smp["eeg"])
                    for m, v in smp["features"].items():
                        feats.setdefault(m, []).append(v)
                    if res["eeg_names"]:
                        names["EEG"] = res["eeg_names"]
                    index.append({c: smp.get(c) for c in INDEX_COLUMNS if c in smp} | {
                        "sample": sid, "face": smp["face"] is not None,
                        "eeg": smp["eeg"] is not None})  # fmt: skip
                summary_sessions[folder.name] = {"key": key, "subject": res["subject"],
                                                 "samples": len(res["samples"]),
                                                 "notes": res["notes"],
                                                 "annotations": res["annotations"]}  # fmt: skip
            fg = h5.create_group("features")
            lengths = {m: len(v) for m, v in feats.items()}
            for m, rows_ in feats.items():
                if lengths[m] != len(index):
                    raise LabError(f"modality {m}: {lengths[m]} feature rows for {len(index)} "
                                   f"samples (sessions built with different options?)")  # fmt: skip
                d = fg.create_dataset(m, data=np.vstack(rows_).astype(np.float64))
                d.attrs["names"] = names.get(m, [f"{m}_{i}" for i in range(d.shape[1])])
            for r, row in enumerate(index):
                row["row"] = r
            h5.attrs["index"] = json.dumps(index)
            h5.attrs["labels_7"] = list(EMOTIONS_7)
    finally:
        if old is not None:
            old.close()
    tmp.replace(out / FILE)
    _write_index(out / "index.tsv", index)
    summary = {"format": "mmme-dataset", "format_version": 1, "built": time.strftime(
        "%Y-%m-%dT%H:%M:%S%z"), "params": params, "sessions": summary_sessions,
        "samples": len(index), "index": index,
        "subjects": sorted({r["subject"] for r in index}),
        "software": {"name": "mmme-lab", "version": __version__}}  # fmt: skip
    (out / "dataset.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _write_index(path: Path, index: list[dict[str, Any]]) -> None:
    cols = ["row", *INDEX_COLUMNS]
    lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in index]
    path.write_text("\n".join(lines) + "\n")


def load_features(ds: Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]],
                                     dict[str, list[str]]]:  # fmt: skip
    """(features per modality, the index rows, feature names per modality)."""
    import h5py

    path = Path(ds) / FILE if Path(ds).is_dir() else Path(ds)
    if not path.exists():
        raise LabError(f"{ds}: no {FILE} (build it with mmme dataset build)")
    try:
        with h5py.File(path, "r") as h5:
            index = json.loads(h5.attrs["index"])
            feats = {m: np.asarray(h5["features"][m]) for m in h5["features"]}
            names = {m: [str(n) for n in h5["features"][m].attrs["names"]] for m in feats}
    except (OSError, KeyError, ValueError) as exc:
        raise LabError(f"{path}: not a dataset file ({exc})") from None
    return feats, index, names
