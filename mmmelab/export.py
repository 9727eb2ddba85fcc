"""``mmme export bids``: recorded, aligned sessions as one BIDS dataset.

Per session (``sub-<id>/ses-<nn>/``):

* ``eeg/``: the EEG (mne-bids; BrainVision by default), ``channels.tsv``, the
  physiology as ``_recording-biopac_physio.tsv.gz`` + JSON (sample for sample, its
  rate and start fitted on the EEG file's axis, ``storage.bids``), and
  ``_events.tsv`` + JSON: every marker of the paradigm, every rating, every
  consensus annotation (onset, duration, apex, AUs, emotion, kind, how many coders
  marked it and their agreement) and every EEG gap, times on the EEG file's axis from
  the master clock, the master time itself as a column;
* ``beh/``: the face video under the BEP047 draft (``_video.mkv``, its sidecar and
  ``_frametimes.tsv``), for consent level 1 only - a level-2 participant's video goes
  to ``--restricted DIR`` (a separate tree marked restricted) or the export stops;
* ``_scans.tsv``;

and at the top ``dataset_description.json``, ``participants.tsv`` (+ JSON) with the
consent level, a README, ``.bidsignore`` (the video files: BEP047 is not in the
validator yet) and ``derivatives/mmme-sync/`` with each session's sync certificate.
Participant ids are the pseudonymous ids of the manifest; no free-text field of the
manifest (which may hold a name) is exported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.errors import LabError
from mmmelab.progress import LazyBar
from mmmelab.storage import CameraStream, SignalStream, bids, open_session
from mmmelab.storage.bidsvideo import write_video
from mmmelab.storage.consent import LEVELS, check_public, face_public

Progress = Callable[[int, int, str], None]
BIDSIGNORE = ("**/beh/*_video.*", "**/beh/*_frametimes.*")


@dataclass(frozen=True)
class Planned:
    folder: Path
    sub: str
    ses: str
    consent: int


def _plan(sessions: Sequence[Path]) -> list[Planned]:
    out: list[Planned] = []
    for folder in sessions:
        folder = Path(folder)
        with open_session(folder) as s:
            part = s.manifest.get("participant", {})
            sub = bids.label(part.get("id", ""))
            ses = f"{int(part.get('session', 1)):02d}"
            eeg = s.streams.get("eeg")
            if not isinstance(eeg, SignalStream):
                raise LabError(f"{folder}: no EEG stream; the BIDS export times everything on it")
            if not eeg.aligned:
                raise LabError(f"{folder}: not aligned (run mmme align {folder} first)")
            out.append(Planned(folder, sub, ses, s.consent_level))
    seen: dict[tuple[str, str], Path] = {}
    for p in out:
        if (p.sub, p.ses) in seen:
            raise LabError(f"{p.folder}: sub-{p.sub} ses-{p.ses} is also {seen[(p.sub, p.ses)]}")
        seen[(p.sub, p.ses)] = p.folder
    return out


def export_bids(sessions: Sequence[Path], out: Path, restricted: Path | None = None,
                video: bool = True, codec: str = "magicyuv", eeg_format: str = "BrainVision",
                authors: Sequence[str] = (), license_: str | None = None,
                progress: Progress | None = None,
                layout: str = "tiles") -> dict[str, Any]:  # fmt: skip
    """Write (or update) the dataset at ``out``; returns a summary. ``codec`` and
    ``layout``: the face video's (``storage.bidsvideo``)."""
    plan = _plan(sessions)
    if video and restricted is None:
        for p in plan:  # before anything is written
            check_public(p.sub, p.consent, "the face video")
    if restricted is not None and Path(restricted).resolve() == Path(out).resolve():
        raise LabError("--restricted must be a folder of its own, not the public export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for n, p in enumerate(plan):
        if progress:
            progress(n, len(plan), f"sub-{p.sub} ses-{p.ses}")
        done.append(_session(p, out, restricted, (codec, layout) if video else None,
                             eeg_format))  # fmt: skip
    _dataset_files(out, plan, done, list(authors), license_)
    if restricted is not None and any(d.get("restricted_video") for d in done):
        _restricted_files(Path(restricted), plan, done)
    if progress:
        progress(len(plan), len(plan), "")
    return {"out": str(out), "sessions": done, "restricted": str(restricted) if restricted
            else None}  # fmt: skip


def _session(p: Planned, out: Path, restricted: Path | None, video: tuple[str, str] | None,
             eeg_format: str) -> dict[str, Any]:  # fmt: skip
    pre = bids.prefix(p.sub, p.ses)
    with open_session(p.folder) as s:
        eeg = s.streams["eeg"]
        assert isinstance(eeg, SignalStream)
        line_hz = float(s.manifest.get("lab", {}).get("line_hz", 50.0))
        got = bids.write_eeg(eeg, out, p.sub, p.ses, line_hz, eeg_format)
        folder: Path = got["folder"]
        tb = bids.Timebase.of(eeg)
        files = [f"eeg/{got['file']}"]
        info: dict[str, Any] = {"sub": p.sub, "ses": p.ses, "session": p.folder.name,
                                "consent_level": p.consent,
                                "eeg_gaps": len(got["gaps"])}  # fmt: skip
        physio = s.streams.get("physio")
        if isinstance(physio, SignalStream):
            ph = bids.write_physio(physio, folder, pre, tb)
            files.append(f"eeg/{ph['file']}")
            info["physio"] = ph
        rows = _events(s, p, tb, eeg, got["gaps"])
        bids.write_events(folder / f"{pre}_events.tsv", rows, _levels())
        _presentation(folder / f"{pre}_eeg.json", s.manifest)
        info["events"] = len(rows)
        cam = s.streams.get("camera")
        if video and isinstance(cam, CameraStream):
            public = face_public(p.consent)
            assert public or restricted is not None  # checked before anything was written
            root = out if public else Path(restricted)  # type: ignore[arg-type]
            with LazyBar("frame", "face video", position=1) as bar:
                v = write_video(cam, root / f"sub-{p.sub}" / f"ses-{p.ses}" / "beh", pre, tb,
                                *video, progress=bar)  # fmt: skip
            if public:
                files.append(f"beh/{v['file']}")
            info["video" if public else "restricted_video"] = v
        acq = _acq_time(s, eeg)
        _scans(out / f"sub-{p.sub}" / f"ses-{p.ses}" / f"sub-{p.sub}_ses-{p.ses}_scans.tsv",
               files, acq)  # fmt: skip
        if s.sync:
            cert = (out / "derivatives" / "mmme-sync" / f"sub-{p.sub}" / f"ses-{p.ses}"
                    / f"{pre}_desc-sync_certificate.json")  # fmt: skip
            bids.write_json(cert, s.sync | {"session": p.folder.name})
    return info


def _presentation(sidecar: Path, manifest: dict[str, Any]) -> None:
    """What showed the stimuli (the EEG sidecar's StimulusPresentation)."""
    meta = json.loads(sidecar.read_text())
    env = manifest.get("environment", {})
    meta["StimulusPresentation"] = {
        "OperatingSystem": str(env.get("platform", "n/a")),
        "SoftwareName": "mmme-lab (PyQt6 participant window)",
        "SoftwareVersion": str(manifest.get("software", {}).get("version", __version__)),
    }  # fmt: skip
    bids.write_json(sidecar, meta)


def _acq_time(s: Any, eeg: SignalStream) -> str | None:
    import datetime as dt

    clock = s.manifest.get("clock", {})
    try:
        unix = float(clock["start_unix_s"]) + float(eeg.master_time[0]) - float(
            clock["start_master_s"])  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _scans(path: Path, files: list[str], acq: str | None) -> None:
    bids.write_tsv(path, ["filename", "acq_time"], [(f, acq) for f in files])
    bids.write_json(path.with_suffix(".json"), {
        "acq_time": {"Description": "the EEG's first sample on the master clock, as UTC "
                                    "(every file of the session is timed from it)"}})  # fmt: skip


def _levels() -> dict[str, str]:
    from mmmelab.sync.codes import MEANING

    out = {c.name.lower(): m for c, m in MEANING.items()}
    out |= {"rating": "the self-report: its onset is the rating screen's, its duration the "
                      "response time",
            "ME": "a micro-expression of the consensus coding (onset to offset)",
            "MaE": "a macro-expression of the consensus coding (onset to offset)",
            "BAD_ACQ_SKIP": "EEG samples the device did not deliver (zeros in the file)",
            }  # fmt: skip
    return out


def _events(s: Any, p: Planned, tb: bids.Timebase, eeg: SignalStream,
            gaps: list[dict[str, float]]) -> list[dict[str, Any]]:  # fmt: skip
    from mmmelab.sync.codes import EventCode

    rate = eeg.rate_hz
    rows: list[dict[str, Any]] = []

    def at(master: float) -> dict[str, Any]:
        onset = float(tb.to_file(master))
        return {"onset": round(onset, 6), "sample": int(round(onset * rate)),
                "master_time": round(float(master), 6)}  # fmt: skip

    clip_of: dict[int, tuple[str, str]] = {}
    for k, tr in enumerate(s.trials):
        clip_of[k] = (tr["clip_id"].decode(), tr["target_emotion"].decode())
    trial = -1
    for m in s.markers:
        code = int(m["code"])
        try:
            name = EventCode(code).name
        except ValueError:
            name = f"code_{code}"
        if code == EventCode.TRIAL_START:
            trial += 1
        text = m["label"].decode(errors="replace")
        row = at(float(m["t_on"])) | {"duration": 0.0, "trial_type": name.lower(), "value": code}
        if code == EventCode.NOTE:
            row["note"] = text
        elif text and code not in (EventCode.SYNC,):
            row["clip"] = text
            if trial >= 0 and trial in clip_of and clip_of[trial][0] == text:
                row["trial"], row["emotion"] = trial, clip_of[trial][1]
        rows.append(row)
    for k, tr in enumerate(s.trials):
        if tr["practice"] or not np.isfinite(tr["rating_onset"]):
            continue
        missed = bool(tr["missed"])
        rows.append(at(float(tr["rating_onset"])) | {
            "duration": 0.0 if missed else round(float(tr["response_time_s"]), 6),
            "trial_type": "rating", "trial": k, "clip": tr["clip_id"].decode(),
            "emotion": None if missed else tr["chosen_emotion"].decode() or None,
            "valence": None if missed else int(tr["valence"]),
            "arousal": None if missed else int(tr["arousal"])})  # fmt: skip
    rows += _annotation_rows(s, p, at)
    for g in gaps:
        rows.append({"onset": round(g["onset_s"], 6), "duration": round(g["duration_s"], 6),
                     "trial_type": "BAD_ACQ_SKIP",
                     "sample": int(round(g["onset_s"] * rate))})  # fmt: skip
    return rows


def _annotation_rows(s: Any, p: Planned, at: Callable[[float], dict[str, Any]],
                     ) -> list[dict[str, Any]]:  # fmt: skip
    from mmmelab.analysis.annotations import annotation_path, event_times, format_aus, read_table
    from mmmelab.analysis.annotations.agreement import iou
    from mmmelab.analysis.recognition.metrics import TO_3

    path = annotation_path(p.folder)
    cam = s.streams.get("camera")
    if not path.exists() or not isinstance(cam, CameraStream):
        return []
    table = read_table(path)
    coders = {}
    for f in sorted(path.parent.glob("coder-*.tsv")):
        try:
            coders[f.stem] = read_table(f).annotations
        except LabError:
            continue
    nf = cam.journal["acq_nframe"]
    master = cam.master_time
    rows = []
    for a in table.annotations:
        on, apex, off = event_times(nf, master, np.array([a.onset, a.apex_or_mid, a.offset]))
        if not np.isfinite(on) or not np.isfinite(off):
            continue
        row = at(float(on))
        end = float(at(float(off) + 1.0 / cam.rate_hz)["onset"])  # through the offset frame
        ious = [max((iou(a, b) for b in evs), default=0.0) for evs in coders.values()]
        marked = [v for v in ious if v >= 0.5]
        row |= {"duration": round(end - row["onset"], 6), "trial_type": a.kind.value,
                "kind": a.kind.value, "onset_frame": a.onset, "apex_frame": a.apex,
                "offset_frame": a.offset, "apex": at(float(apex))["onset"],
                "aus": format_aus(a.aus) or None, "emotion": a.emotion.value,
                "label3": TO_3.get(a.emotion.value),
                "coders": len(marked) if coders else None,
                "agreement": round(float(np.mean(marked)), 4) if marked else None}  # fmt: skip
        rows.append(row)
    return rows


def _dataset_files(out: Path, plan: list[Planned], done: list[dict[str, Any]],
                   authors: list[str], license_: str | None) -> None:  # fmt: skip
    desc: dict[str, Any] = {
        "Name": "MMME-style multimodal micro-expression recordings",
        "BIDSVersion": bids.BIDS_VERSION, "DatasetType": "raw",
        "GeneratedBy": [{"Name": "mmme-lab", "Version": __version__,
                         "Description": "mmme export bids"}],
    }  # fmt: skip
    if authors:
        desc["Authors"] = authors
    if license_:
        desc["License"] = license_
    bids.write_json(out / "dataset_description.json", desc)
    (out / "README").unlink(missing_ok=True)  # mne-bids' stub; ours is README.md
    parts: dict[str, int] = {}
    old = out / "participants.tsv"
    if old.exists():  # an update keeps the participants exported before
        lines = old.read_text().splitlines()
        head = lines[0].split("\t") if lines else []
        if "consent_level" in head:
            for line in lines[1:]:
                cells = dict(zip(head, line.split("\t"), strict=False))
                if cells.get("consent_level", "").isdigit():
                    parts[cells["participant_id"]] = int(cells["consent_level"])
    for p in plan:
        parts[f"sub-{p.sub}"] = p.consent
    bids.write_tsv(old, ["participant_id", "consent_level"], sorted(parts.items()))
    bids.write_json(out / "participants.json", {
        "participant_id": {"Description": "pseudonymous id from the session manifest"},
        "consent_level": {"Description": "what the participant agreed to share",
                          "Levels": {str(k): v for k, v in LEVELS.items()}},
    })  # fmt: skip
    (out / ".bidsignore").write_text("\n".join(BIDSIGNORE) + "\n")
    bids.write_json(out / "derivatives" / "mmme-sync" / "dataset_description.json", {
        "Name": "mmme-lab sync certificates", "BIDSVersion": bids.BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "mmme-lab", "Version": __version__,
                         "Description": "mmme align: each stream's alignment to the master "
                                        "clock (offset, drift, residuals per segment)"}],
    })  # fmt: skip
    withheld = [f"sub-{d['sub']}" for d in done if not face_public(d["consent_level"])]
    (out / "README.md").write_text(_readme(withheld))


def _readme(withheld: list[str]) -> str:
    lines = [
        "# MMME-style multimodal micro-expression recordings",
        "",
        f"Exported by mmme-lab {__version__} (`mmme export bids`).",
        "",
        "Each session holds the EEG (Neuroscan SynAmps RT), the peripheral physiology "
        "(BIOPAC MP160: ECG, PPG, respiration, skin temperature, EDA) as `_physio` files "
        "beside it, the paradigm's events and the consensus micro- and macro-expression "
        "annotations in `_events.tsv`, and - where consent allows - the face video "
        "(`beh/`, BEP047 draft).",
        "",
        "## Timing",
        "",
        "All devices were recorded on one trigger bus and aligned offline to one master "
        "clock (`derivatives/mmme-sync/`: per stream the offset, drift and residuals). "
        "Every time in this dataset is on the EEG file's axis (seconds from its first "
        "sample): event onsets, the physiology's `StartTime` and `SamplingFrequency` "
        "(fitted on that axis; the residual is in each sidecar), each video frame's onset "
        "(`_frametimes.tsv`). `master_time` columns give the master clock itself.",
        "",
        "## Consent",
        "",
        "`participants.tsv` gives each participant's consent level: 1 = all data may be "
        "shared and the face shown; 2 = data may be shared for research, but face images "
        "and video may not be published. Level-2 participants' face video is not in this "
        "dataset.",
    ]
    if withheld:
        lines += ["", "Face video withheld (consent level 2): " + ", ".join(withheld) + "."]
    lines += ["", "## Files the validator does not know", "",
              "The video files (`beh/*_video.*`, `beh/*_frametimes.*`) follow the BIDS video "
              "extension proposal BEP047, a draft the validator does not implement; "
              "`.bidsignore` lists them.", ""]  # fmt: skip
    return "\n".join(lines)


def _restricted_files(root: Path, plan: list[Planned], done: list[dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    who = [f"sub-{d['sub']}" for d in done if d.get("restricted_video")]
    (root / "RESTRICTED.txt").write_text(
        "RESTRICTED - NOT FOR PUBLICATION.\n\nFace video of participants whose consent "
        "(level 2) allows research use but not publication of their face: "
        + ", ".join(who) + ".\nKeep this folder apart from the public dataset; do not "
        "upload it to a public repository.\n")  # fmt: skip
    bids.write_json(root / "restricted.json", {
        "restricted": True, "reason": LEVELS[2], "participants": who,
        "public_dataset_sibling": True, "GeneratedBy": {"Name": "mmme-lab",
                                                        "Version": __version__}})  # fmt: skip


def validate(root: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run the BIDS validator (``bids-validator-deno``, offline) on ``root``: its errors
    and warnings by code."""
    import sys

    beside = Path(sys.executable).parent / "bids-validator-deno"  # the same environment's
    exe = str(beside) if beside.exists() else shutil.which("bids-validator-deno")
    if exe is None:
        raise LabError("the BIDS validator is not installed: pip install bids-validator-deno")
    try:
        res = subprocess.run([exe, str(root), "--json"], capture_output=True, text=True,
                             timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise LabError(f"the BIDS validator did not finish in {timeout_s:.0f} s") from None
    try:
        issues = json.loads(res.stdout)["issues"]["issues"]
    except (ValueError, KeyError):
        raise LabError(f"the BIDS validator gave no report: {res.stderr.strip()[:200]}") from None
    out: dict[str, Any] = {"errors": {}, "warnings": {}}
    for i in issues:
        key = "errors" if i.get("severity") == "error" else "warnings"
        entry = out[key].setdefault(i.get("code", "?"), {"count": 0, "files": []})
        entry["count"] += 1
        if len(entry["files"]) < 5 and i.get("location"):
            entry["files"].append(i["location"])
    out["n_errors"] = sum(v["count"] for v in out["errors"].values())
    out["n_warnings"] = sum(v["count"] for v in out["warnings"].values())
    return out
