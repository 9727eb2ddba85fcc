"""``mmme report SESSION``: the quality report of one session, as one self-contained
HTML page (plots embedded as PNG data URIs; a few hundred kB for a 60-minute session).

What a PI reads in a minute, top to bottom: a verdict line and every fault and
warning; the devices and their settings; the paradigm's timeline (clips by emotion,
ratings, reminders, notes) and the trial table; the camera (frame rate, drops,
timestamp jitter, the inter-frame interval histogram); the sync certificate with the
residual of every trigger edge per stream; the physiology's quality per trial
(flat and saturated stretches, range); the EEG's bad channels and ICA summary
(Analysis I's preprocessing); the annotations and, with several coders, their
agreement. Nothing here needs Qt or a network; the page opens in any browser.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.report.html import _png
from mmmelab.analysis.report.page import CSS, EMOTION_COLOURS, img, pyplot, table
from mmmelab.analysis.report.streams import eeg, physio, sync
from mmmelab.errors import LabError

# --------------------------------------------------------------------- sections


def _devices(s: Any) -> str:
    from mmmelab.storage import CameraStream, SignalStream

    lab = s.manifest.get("lab", {})
    rows = []
    for name, st in s.streams.items():
        if isinstance(st, SignalStream):
            gaps, missing = st.gaps()
            rows.append([name, st.kind, f"{st.rate_hz:g} Hz", len(st.channels), st.count,
                         f"{gaps} gaps, {missing} samples", st.aligned,
                         str(st.attrs.get("device_model", ""))])  # fmt: skip
        elif isinstance(st, CameraStream):
            gaps, missing = st.dropped()
            rows.append([name, "camera", f"{st.rate_hz:g} fps",
                         f"{st.frames.width}x{st.frames.height}", st.count,
                         f"{gaps} gaps, {missing} frames", st.aligned,
                         str((s.manifest.get("streams", {}).get(name) or {}).get("model", "")),
                         ])  # fmt: skip
    out = table(["stream", "kind", "rate", "channels / size", "samples", "lost", "aligned",
                  "device"], rows)  # fmt: skip
    settings = []
    for dev in ("camera", "eeg", "physio"):
        for k, v in (lab.get(dev) or {}).items():
            settings.append([dev, k, json.dumps(v) if isinstance(v, list | dict) else v])
    if settings:
        out += "<details><summary>settings (lab config at recording)</summary>"
        out += table(["device", "setting", "value"], settings) + "</details>"
    return out


def _timeline(s: Any) -> tuple[str, dict[str, Any]]:
    from mmmelab.sync.codes import EventCode

    plt = pyplot()
    m = s.markers
    t0 = float(m["t_on"][0]) if len(m) else 0.0
    fig, ax = plt.subplots(figsize=(11, 2.3))
    trials = s.trials
    for tr in trials:
        on = float(tr["clip_onset"]) - t0
        emo = tr["target_emotion"].decode()
        dur = float(tr["rating_onset"]) - float(tr["clip_onset"]) - 0.1
        ax.barh(1, dur / 60, left=on / 60, color=EMOTION_COLOURS.get(emo, "#999"), height=0.6)
        if not tr["missed"] and np.isfinite(tr["rating_onset"]):
            ax.plot((float(tr["rating_onset"]) - t0) / 60, 0.3, "v", color="#333", ms=4)
    codes = m["code"] if len(m) else np.zeros(0)
    rem = (m["t_on"][codes == EventCode.REMINDER_ON] - t0) / 60 if len(m) else []
    notes = (m["t_on"][codes == EventCode.NOTE] - t0) / 60 if len(m) else []
    ax.vlines(rem, 1.4, 1.8, color="#c62828", lw=1.2, label="reminder")
    ax.vlines(notes, 1.4, 1.8, color="#1565c0", lw=1.2, label="note")
    ax.set_yticks([0.3, 1, 1.6], ["rating", "clip", "reminder/note"])
    ax.set_xlabel("minutes from session start")
    ax.set_ylim(-0.1, 2.0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in EMOTION_COLOURS.values()]
    ax.legend(handles, list(EMOTION_COLOURS), ncol=8, fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, 1.35), frameon=False)  # fmt: skip
    uri = _png(fig)
    plt.close(fig)
    rows, cls = [], []
    for k, tr in enumerate(trials):
        missed = bool(tr["missed"])
        target, chosen = tr["target_emotion"].decode(), tr["chosen_emotion"].decode()
        rows.append([k, tr["clip_id"].decode(), target, "missed" if missed else chosen,
                     None if missed else int(tr["valence"]),
                     None if missed else int(tr["arousal"]),
                     None if missed else round(float(tr["response_time_s"]), 2)])  # fmt: skip
        cls.append(["", "", "", "r" if missed else ("g" if chosen == target else "a"), "", "",
                    ""])  # fmt: skip
    stats = {"trials": len(trials), "missed": int(sum(bool(t["missed"]) for t in trials)),
             "reminders": int(len(rem)), "notes": int(len(notes))}  # fmt: skip
    out = img(uri, "paradigm timeline")
    out += (f"<p>{stats['trials']} trials, {stats['missed']} ratings missed, "
            f"{stats['reminders']} reminders, {stats['notes']} notes.</p>")  # fmt: skip
    out += "<details><summary>trials</summary>" + table(
        ["trial", "clip", "target", "reported", "valence", "arousal", "RT s"], rows, cls
    )
    return out + "</details>", stats


def _camera(s: Any) -> tuple[str, dict[str, Any]]:
    from mmmelab.storage import CameraStream

    cam = s.streams.get("camera")
    if not isinstance(cam, CameraStream) or cam.count < 2:
        return "<p class='muted'>no camera stream</p>", {}
    plt = pyplot()
    ts = cam.journal["ts_us"].astype(np.float64)
    nf = cam.journal["acq_nframe"].astype(np.int64)
    step = np.diff(nf)
    dt = np.diff(ts)[step == 1]  # consecutive frames only
    nominal = 1e6 / cam.rate_hz
    gaps, missing = cam.dropped()
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.hist(dt - nominal, bins=80, color="#5c6bc0")
    ax.set_xlabel("inter-frame interval - nominal (us)")
    ax.set_ylabel("frames")
    ax.set_yscale("log")
    uri = _png(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 2.4))
    host = np.asarray(cam.host_time)
    ax.plot((host - host[0]) / 60, (host - np.asarray(cam.master_time)) * 1e3, lw=0.6)
    ax.set_xlabel("minutes")
    ax.set_ylabel("host receipt - exposure (ms)")
    uri2 = _png(fig)
    plt.close(fig)
    stats = {"fps_measured": float(1e6 / np.median(dt)) if len(dt) else None,
             "jitter_us_sd": float(np.std(dt)) if len(dt) else None,
             "jitter_us_max": float(np.max(np.abs(dt - nominal))) if len(dt) else None,
             "dropped_gaps": gaps, "dropped_frames": missing, "frames": cam.count}  # fmt: skip
    verdict = "ok" if missing == 0 else "bad"
    out = (f"<p class='{verdict}'>{cam.count} frames, measured {stats['fps_measured']:.3f} fps "
           f"(nominal {cam.rate_hz:g}); {missing} frames dropped in {gaps} gaps; device "
           f"timestamp jitter SD {stats['jitter_us_sd']:.2f} us, max "
           f"{stats['jitter_us_max']:.1f} us.</p>")  # fmt: skip
    return out + img(uri, "frame intervals") + img(uri2, "delivery latency"), stats


def _annotations(folder: Path) -> tuple[str, dict[str, Any]]:
    from mmmelab.analysis.annotations import annotation_path, read_table

    path = annotation_path(folder)
    if not path.exists():
        return "<p class='muted'>not coded yet</p>", {}
    table = read_table(path)
    kinds: dict[str, int] = {}
    emos: dict[str, int] = {}
    for a in table.annotations:
        kinds[a.kind.value] = kinds.get(a.kind.value, 0) + 1
        emos[a.emotion.value] = emos.get(a.emotion.value, 0) + 1
    out = (f"<p>{len(table.annotations)} consensus events: "
           + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) + "; emotions: "
           + ", ".join(f"{k} {v}" for k, v in sorted(emos.items())) + ".</p>")  # fmt: skip
    stats: dict[str, Any] = {"events": len(table.annotations), "kinds": kinds}
    coders = sorted(path.parent.glob("coder-*.tsv"))
    if len(coders) >= 2:
        from mmmelab.analysis.annotations.agreement import agreement

        tables = {f.stem.removeprefix("coder-"): read_table(f) for f in coders}
        ag = agreement(tables)
        keep = {k: ag[k] for k in ("cohen_kappa", "fleiss_kappa", "au_r_pooled", "mean_iou")
                if k in ag}  # fmt: skip
        out += f"<p>{len(coders)} coders: " + html.escape(json.dumps(keep, default=str)) + "</p>"
        stats["agreement"] = keep
    return out, stats


def _faults(s: Any) -> tuple[str, int]:
    rows = [[f"{float(f['host_time']):.3f}", f["stream"].decode(), f["kind"].decode(),
             int(f["count"]), f["detail"].decode(errors="replace")] for f in s.faults]  # fmt: skip
    items = [*s.problems, *(s.manifest.get("problems") or [])]
    for name, st in (s.sync or {}).get("streams", {}).items():
        items += [f"sync {name}: {w}" for w in st.get("warnings", [])]
    n = len(rows) + len(items)
    if not n:
        return "<p class='ok'>no fault, no warning</p>", 0
    out = "".join(f"<p class='warn'>{html.escape(str(i))}</p>" for i in items)
    if rows:
        out += table(["master time", "stream", "kind", "count", "detail"], rows,
                      [["", "", "r", "", ""] for _ in rows])  # fmt: skip
    return out, n


def _provenance(folder: Path, ica: bool) -> dict[str, Any]:
    """What the page was made from: parameters, package versions, input hashes (the
    session's manifest, sync certificate and annotation files; the signal files are
    large and append-only, and the manifest holds their counts)."""
    from mmmelab.analysis.annotations import annotation_path
    from mmmelab.analysis.eeg import EegParams
    from mmmelab.analysis.provenance import sha256, versions
    from mmmelab.storage.manifest import MANIFEST

    ann = annotation_path(folder)
    files = [folder / MANIFEST, folder / "sync.json", ann, *sorted(ann.parent.glob("coder-*.tsv"))]
    return {"parameters": {"ica": ica, "eeg": EegParams(ica=ica).to_dict()},
            "versions": versions(("numpy", "scipy", "mne", "mne-icalabel", "matplotlib",
                                  "h5py")),
            "inputs": {p.relative_to(folder).as_posix(): sha256(p) for p in files
                       if p.is_file()}}  # fmt: skip


# ------------------------------------------------------------------------- page


def write_report(folder: Path, out: Path | None = None, ica: bool = False,
                 progress: Callable[[int, int, str], None] | None = None,
                 ) -> dict[str, Any]:  # fmt: skip
    """Write ``out`` (default ``<session>/report.html``); returns its summary."""
    from mmmelab.storage import open_session
    from mmmelab.storage.manifest import MANIFEST

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise LabError(f"{folder}: not a session folder (no {MANIFEST})")
    out = Path(out) if out else folder / "report.html"
    t0 = time.perf_counter()
    steps = ["devices", "timeline", "camera", "sync", "physiology", "EEG", "annotations"]
    tick = progress or (lambda _d, _t, _n: None)
    with open_session(folder) as s:
        part = s.manifest.get("participant", {})
        parts: dict[str, str] = {}
        stats: dict[str, Any] = {}
        tick(0, len(steps), steps[0])
        parts["Devices and settings"] = _devices(s)
        tick(1, len(steps), steps[1])
        parts["Paradigm"], stats["paradigm"] = _timeline(s)
        tick(2, len(steps), steps[2])
        parts["Camera"], stats["camera"] = _camera(s)
        tick(3, len(steps), steps[3])
        parts["Synchronisation"], stats["sync"] = sync(s)
        tick(4, len(steps), steps[4])
        parts["Physiology quality"], stats["physio"] = physio(s)
        tick(5, len(steps), steps[5])
        parts["EEG"], stats["eeg"] = eeg(s, folder, ica)
        tick(6, len(steps), steps[6])
        parts["Annotations"], stats["annotations"] = _annotations(folder)
        faults, n_faults = _faults(s)
        head = {"session": s.manifest.get("session_id", folder.name),
                "participant": part.get("id"), "session_no": part.get("session"),
                "consent_level": s.consent_level, "status": str(s.status.value),
                "created": s.manifest.get("created_utc"), "ended": s.manifest.get("ended_utc"),
                "software": s.manifest.get("software", {}).get("version"),
                "simulated": bool(s.simulated)}  # fmt: skip
    prov = _provenance(folder, ica)
    cam = stats.get("camera", {})
    ok = n_faults == 0 and not cam.get("dropped_frames") and bool(stats["sync"])
    verdict = ("<p class='ok'>Session complete: no fault, no dropped frame, aligned.</p>" if ok
               else f"<p class='bad'>{n_faults} faults/warnings, "
                    f"{cam.get('dropped_frames', 0)} dropped frames - see below.</p>")  # fmt: skip
    body = [f"<h1>Session {html.escape(str(head['session']))}</h1>",
            "<p class='muted'>" + " &middot; ".join(html.escape(f"{k}: {v}")
                                                   for k, v in head.items()) + "</p>",
            verdict, "<h2>Faults and warnings</h2>", faults]  # fmt: skip
    for title, content in parts.items():
        body.append(f"<h2>{html.escape(title)}</h2>{content}")
    body.append("<h2>Provenance</h2><p class='muted'>"
                + html.escape(", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
                + f"; made {time.strftime('%Y-%m-%d %H:%M')}</p>"
                + table(["input", "sha256"], [[k, v] for k, v in prov["inputs"].items()])
                + "<script type='application/json' id='provenance'>"
                + json.dumps(prov).replace("</", "<\\/") + "</script>")  # fmt: skip
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Session "
            f"{html.escape(str(head['session']))}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")  # fmt: skip
    out.write_text(page, encoding="utf-8")
    tick(len(steps), len(steps), "")
    return {"path": str(out), "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - t0, 2), "faults": n_faults, "ok": ok,
            "header": head, "stats": stats, "provenance": prov}  # fmt: skip
