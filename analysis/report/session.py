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
from mmmelab.errors import LabError

EMOTION_COLOURS = {"happiness": "#f4b400", "surprise": "#ab47bc", "sadness": "#4285f4",
                   "fear": "#546e7a", "anger": "#db4437", "disgust": "#0f9d58",
                   "contempt": "#8d6e63", "neutral": "#bdbdbd"}  # fmt: skip
CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ddd;
padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;
padding:3px 7px;text-align:left}th{background:#f5f5f5}
.ok{color:#0b7a3b;font-weight:600}.warn{color:#b26a00;font-weight:600}
.bad{color:#c62828;font-weight:600}.muted{color:#777}
.g{background:#e6f4ea}.a{background:#fff4e0}.r{background:#fde7e9}
img{max-width:100%}code{background:#f5f5f5;padding:0 3px}
"""


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _table(head: list[str], rows: list[list[Any]], classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cells = []
        for j, v in enumerate(r):
            cls = classes[i][j] if classes else ""
            cells.append(f"<td class='{cls}'>{html.escape(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def _img(uri: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='{uri}'>"


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
    out = _table(["stream", "kind", "rate", "channels / size", "samples", "lost", "aligned",
                  "device"], rows)  # fmt: skip
    settings = []
    for dev in ("camera", "eeg", "physio"):
        for k, v in (lab.get(dev) or {}).items():
            settings.append([dev, k, json.dumps(v) if isinstance(v, list | dict) else v])
    if settings:
        out += "<details><summary>settings (lab config at recording)</summary>"
        out += _table(["device", "setting", "value"], settings) + "</details>"
    return out


def _timeline(s: Any) -> tuple[str, dict[str, Any]]:
    from mmmelab.sync.codes import EventCode

    plt = _plt()
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
    out = _img(uri, "paradigm timeline")
    out += (f"<p>{stats['trials']} trials, {stats['missed']} ratings missed, "
            f"{stats['reminders']} reminders, {stats['notes']} notes.</p>")  # fmt: skip
    out += "<details><summary>trials</summary>" + _table(
        ["trial", "clip", "target", "reported", "valence", "arousal", "RT s"], rows, cls
    )
    return out + "</details>", stats


def _camera(s: Any) -> tuple[str, dict[str, Any]]:
    from mmmelab.storage import CameraStream

    cam = s.streams.get("camera")
    if not isinstance(cam, CameraStream) or cam.count < 2:
        return "<p class='muted'>no camera stream</p>", {}
    plt = _plt()
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
    return out + _img(uri, "frame intervals") + _img(uri2, "delivery latency"), stats


def edge_residuals(s: Any) -> dict[str, np.ndarray]:
    """Per stream, the certificate's residual (ms) at every trigger edge it recorded: the
    edge's master time (through the alignment) minus its marker's time."""
    from mmmelab.storage import CameraStream, SignalStream
    from mmmelab.sync.align import camera_edges, coded_edges
    from mmmelab.sync.codes import trigger_levels

    out: dict[str, np.ndarray] = {}
    m = s.markers
    if not len(m) or not s.sync:
        return out
    latency = float(s.sync.get("box_latency_ms", 0.0)) / 1e3
    mt, mc = m["t_on"].astype(np.float64) + latency, m["code"].astype(np.int64)
    lab = s.manifest.get("lab", {})
    for name, st in s.streams.items():
        if not st.aligned:
            continue
        dev_lat = float((lab.get(name) or {}).get("trigger_latency_ms", 0.0)) / 1e3
        if isinstance(st, SignalStream):
            codes = trigger_levels(st.aux)
            if codes is None:
                continue
            t, code = coded_edges(np.asarray(st.master_time), codes, 1 / st.rate_hz, dev_lat)
        elif isinstance(st, CameraStream):
            mast = np.asarray(st.master_time)
            gpi = st.journal["gpi_level"].astype(np.int64)
            mid, _, rising, _, _ = camera_edges(mast, gpi, mast, dev_lat)
            t, code = mid[rising], None
        else:
            continue
        res = []
        for i, te in enumerate(t):
            cand = np.flatnonzero(np.abs(mt - te) < 0.05)
            if code is not None:
                cand = cand[mc[cand] == code[i]]
            if len(cand):
                j = cand[np.argmin(np.abs(mt[cand] - te))]
                res.append((te - mt[j]) * 1e3)
        out[name] = np.asarray(res)
    return out


def _sync(s: Any) -> tuple[str, dict[str, Any]]:
    cert = s.sync
    if not cert:
        return "<p class='bad'>not aligned: run <code>mmme align</code></p>", {}
    plt = _plt()
    rows, cls = [], []
    for name, st in cert.get("streams", {}).items():
        segs = st.get("segments", [])
        drift = [g.get("drift_ppm") for g in segs if g.get("drift_ppm") is not None]
        rms, mx = st.get("residual_rms_ms"), st.get("residual_max_ms")
        rows.append([name, st.get("method"), f"{st.get('edges_used')}/{st.get('edges_expected')}",
                     len(segs), drift[0] if len(drift) == 1 else drift, rms, mx,
                     "; ".join(st.get("warnings", [])) or None])  # fmt: skip
        # a camera sees an edge only at its next exposure: up to half a frame either way
        fps = (s.streams.get(name).rate_hz if name in s.streams else 0.0) or 0.0
        limit = 2.0 + (500.0 / fps if getattr(s.streams.get(name), "kind", "") == "camera"
                       else 0.0)  # fmt: skip
        bad = mx is None or mx > limit or st.get("warnings")
        cls.append([""] * 5 + ["", "r" if bad else "g", "a" if st.get("warnings") else ""])
    out = _table(["stream", "method", "edges used", "segments", "drift ppm", "RMS ms",
                  "max ms", "warnings"], rows, cls)  # fmt: skip
    res = edge_residuals(s)
    if res:
        fig, axes = plt.subplots(
            1, len(res), figsize=(3.6 * len(res), 2.4), squeeze=False, layout="constrained"
        )
        for ax, (name, r) in zip(axes[0], res.items(), strict=True):
            ax.plot(r, ".", ms=2)
            ax.axhline(0, color="#999", lw=0.6)
            ax.set_title(f"{name}: {len(r)} edges", fontsize=9)
            ax.set_xlabel("edge")
            ax.set_ylabel("residual (ms)")
        out += _img(_png(fig), "residuals per edge")
        plt.close(fig)
    return out, {n: {"edges": len(r), "max_ms": float(np.abs(r).max()) if len(r) else None}
                 for n, r in res.items()}  # fmt: skip


def _physio(s: Any) -> tuple[str, dict[str, Any]]:
    """Per trial (clip onset to rating onset) and channel: flat and saturated share."""
    from mmmelab.storage import SignalStream

    st = s.streams.get("physio")
    if not isinstance(st, SignalStream) or not st.count:
        return "<p class='muted'>no physiology stream</p>", {}
    t = np.asarray(st.master_time)
    data = np.asarray(st.data[:], dtype=np.float64)
    lo, hi = np.nanmin(data, axis=0), np.nanmax(data, axis=0)
    rows, cls = [], []
    worst = {c: "g" for c in st.channels}
    for k, tr in enumerate(s.trials):
        a, b = np.searchsorted(t, [float(tr["clip_onset"]), float(tr["rating_onset"])])
        if b - a < 10:
            continue
        row: list[Any] = [k]
        c_row = [""]
        for j, ch in enumerate(st.channels):
            x = data[a:b, j]
            flat = float(np.mean(np.diff(x) == 0))
            sat = float(np.mean((x <= lo[j]) | (x >= hi[j]))) if hi[j] > lo[j] else 1.0
            grade = "r" if flat > 0.5 or sat > 0.05 else "a" if flat > 0.2 or sat > 0.01 else "g"
            row.append(f"flat {flat:.0%}, sat {sat:.1%}, range {np.ptp(x):.3g}")
            c_row.append(grade)
            if grade == "r" or (grade == "a" and worst[ch] == "g"):
                worst[ch] = grade
        rows.append(row)
        cls.append(c_row)
    out = "<p>Worst trial per channel: " + ", ".join(
        f"<span class='{ {'g': 'ok', 'a': 'warn', 'r': 'bad'}[g]}'>{html.escape(c)}</span>"
        for c, g in worst.items()) + ".</p>"  # fmt: skip
    out += "<details><summary>per trial</summary>" + _table(["trial", *st.channels], rows, cls)
    return out + "</details>", {"worst": worst}


def _eeg(s: Any, folder: Path, ica: bool) -> tuple[str, dict[str, Any]]:
    from mmmelab.storage import SignalStream

    st = s.streams.get("eeg")
    if not isinstance(st, SignalStream) or not st.count:
        return "<p class='muted'>no EEG stream</p>", {}
    from mmmelab.analysis.eeg import EegParams, from_stream

    # the bad channels as Analysis I finds them; their repair is not needed to list them
    res = from_stream(st, EegParams(ica=ica), clean=ica)
    summ = res.summary()
    bad = summ["bad_channels"]
    why = ", ".join(f"{c} ({summ['bad_reasons'].get(c, '')})" for c in bad)
    out = (f"<p class='{'ok' if not bad else 'warn'}'>{summ['channels']} channels, "
           f"{len(bad)} bad" + (f": {why}" if bad else "") + ".</p>")  # fmt: skip
    if ica:
        rej = summ["ica_rejected"]
        out += (f"<p>ICA: {summ['ica_components']} components, {len(rej)} removed"
                + (": " + ", ".join(f"IC{r['component']} {r.get('label', '')} "
                                    f"({r.get('probability', 0):.2f})" for r in rej)
                   if rej else "") + ".</p>")  # fmt: skip
    else:
        out += "<p class='muted'>ICA not run (<code>mmme report --ica</code> runs it).</p>"
    for n in summ["notes"]:
        out += f"<p class='muted'>{html.escape(str(n))}</p>"
    return out, {"bad_channels": bad, "ica_components": summ["ica_components"],
                 "ica_rejected": len(summ["ica_rejected"])}  # fmt: skip


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
        out += _table(["master time", "stream", "kind", "count", "detail"], rows,
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
        parts["Synchronisation"], stats["sync"] = _sync(s)
        tick(4, len(steps), steps[4])
        parts["Physiology quality"], stats["physio"] = _physio(s)
        tick(5, len(steps), steps[5])
        parts["EEG"], stats["eeg"] = _eeg(s, folder, ica)
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
                + _table(["input", "sha256"], [[k, v] for k, v in prov["inputs"].items()])
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
