"""The quality report's stream sections: the sync certificate with every trigger
edge's residual, the physiology's quality per trial, the EEG's bad channels and ICA
summary."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.report.html import _png
from mmmelab.analysis.report.page import img, pyplot, table


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


def sync(s: Any) -> tuple[str, dict[str, Any]]:
    cert = s.sync
    if not cert:
        return "<p class='bad'>not aligned: run <code>mmme align</code></p>", {}
    plt = pyplot()
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
    out = table(["stream", "method", "edges used", "segments", "drift ppm", "RMS ms",
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
        out += img(_png(fig), "residuals per edge")
        plt.close(fig)
    return out, {n: {"edges": len(r), "max_ms": float(np.abs(r).max()) if len(r) else None}
                 for n, r in res.items()}  # fmt: skip


def physio(s: Any) -> tuple[str, dict[str, Any]]:
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
    out += "<details><summary>per trial</summary>" + table(["trial", *st.channels], rows, cls)
    return out + "</details>", {"worst": worst}


def eeg(s: Any, folder: Path, ica: bool) -> tuple[str, dict[str, Any]]:
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
