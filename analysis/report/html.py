"""Self-contained HTML pages: the Table-3-like concordance page with its plots.

Plots are matplotlib PNGs embedded as data URIs (one file to mail or archive; a
few hundred kB, not the tens of MB of a report that embeds raw traces).
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np

LOCKED_TITLES = {
    "heart_rate": ("Heart rate", "bpm"),
    "EDA": ("EDA", "uS"),
    "RSP": ("Respiration", "a.u."),
    "SKT": ("Skin temperature", "degC"),
}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def locked_figure(summary: dict[str, Any], title: str) -> str:
    """Event-locked mean and 95 % CI of each signal around the apex, as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = [n for n in LOCKED_TITLES if n in summary]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.6 * max(1, len(names)), 2.8))
    axes = np.atleast_1d(axes)
    t = summary.get("time_s", np.zeros(0))
    for ax, name in zip(axes, names, strict=False):
        s = summary[name]
        label, unit = LOCKED_TITLES[name]
        ax.fill_between(t, s["lo"], s["hi"], color="tab:blue", alpha=0.25, lw=0)
        ax.plot(t, s["mean"], color="tab:blue", lw=1.4)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.set_title(f"{label} (n = {s['n']})", fontsize=9)
        ax.set_xlabel("time from apex (s)", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def p_figure(table: Any) -> str:
    """Histogram of surrogate p-values per D next to the ME ones (a calibration check)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    bins = [i / 20 for i in range(21)]
    for source, color in (("surrogate", "tab:gray"), ("ME", "tab:red")):
        p = table.loc[table["source"] == source, "p"].dropna().to_numpy()
        if len(p):
            ax.hist(p, bins=bins, alpha=0.6, color=color, label=f"{source} (n = {len(p)})",
                    density=True)  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("p (paired t-test, every feature and window)", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def _fmt(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not np.isfinite(f):
        return "&ndash;"
    return f"{f:.{digits}f}" if abs(f) < 1e4 else f"{f:.3g}"


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0} td.f{text-align:left;font-family:monospace}
td.sig{background:#ffe2cc;font-weight:600} td.sig2{background:#ffc49a;font-weight:700}
.note{color:#555;font-size:12px} pre{font-size:11px;background:#f7f7f7;padding:8px;overflow:auto}
"""


def concordance_page(
    table: Any,
    summary: dict[str, Any],
    locked_uri: str,
    p_uri: str,
    provenance: dict[str, Any],
) -> str:
    """The whole page: summary, a Table-3-like grid, the control, plots and provenance."""
    windows = sorted(table["D_s"].unique()) if len(table) else []
    me = table[table["source"] == "ME"]
    head = "".join(f"<th colspan=5>{d:g} s</th>" for d in windows)
    sub = "".join("<th>pre mean (SD)</th><th>post mean (SD)</th><th>t</th><th>p</th><th>q</th>"
                  for _ in windows)  # fmt: skip
    body = []
    for feat in dict.fromkeys(me["feature"]):
        cells = [f"<td class=f>{html.escape(feat)}</td>"]
        for d in windows:
            r = me[(me["feature"] == feat) & (me["D_s"] == d)]
            if not len(r):
                cells.append("<td colspan=5>&ndash;</td>")
                continue
            r = r.iloc[0]
            cls = " class=sig2" if r["p"] < 0.01 else (" class=sig" if r["p"] < 0.05 else "")
            cells.append(
                f"<td>{_fmt(r['mean_pre'])} ({_fmt(r['sd_pre'])})</td>"
                f"<td>{_fmt(r['mean_post'])} ({_fmt(r['sd_post'])})</td>"
                f"<td>{_fmt(r['t'])}</td><td{cls}>{_fmt(r['p'])}</td><td>{_fmt(r['q_bh'])}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    ctrl = "".join(
        f"<tr><td>{c['D_s']:g} s</td><td>{c['tests']}</td><td>{c['share_p05']:.1%}</td>"
        f"<td>{c['me_share_p05']:.1%}</td></tr>"
        for c in summary.get("control", [])
    )
    excl = "".join(
        f"<tr><td>{c['D_s']:g} s</td><td>{c['events']}</td><td>{c['excluded_overlap']}</td>"
        f"<td>{c['included']}</td></tr>"
        for c in summary.get("exclusions", [])
    )
    sessions = html.escape(", ".join(summary.get("sessions", [])))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Concordance: micro-expressions and physiology</title><style>{CSS}</style></head><body>
<h1>Concordance between micro-expressions and peripheral physiology</h1>
<p class=note>{len(summary.get("sessions", []))} session(s): {sessions}.
Windows: pre = [apex &minus; D, apex), post = [apex, apex + D). An ME whose epoch overlaps
another ME is left out. Paired t-test, t &gt; 0 when pre &gt; post; p uncorrected (as the
MMME paper), q = Benjamini&ndash;Hochberg over all {len(me)} tests.
Orange: p &lt; 0.05, dark orange: p &lt; 0.01.</p>
<h2>Events per window</h2>
<table><tr><th>D</th><th>MEs</th><th>left out (ME in epoch)</th><th>tested</th></tr>{excl}</table>
<h2>Event-locked averages around the apex (mean, 95 % CI)</h2>
<img src="{locked_uri}" alt="event-locked averages">
<h2>Table 3: features before and after the apex</h2>
<table><tr><th rowspan=2>feature</th>{head}</tr><tr>{sub}</tr>{"".join(body)}</table>
<h2>Control: surrogate apex times</h2>
<p class=note>Same tests at random times (matched count per trial, inside the clip, epochs
free of expressions). With no effect, about 5 % of them fall below 0.05.</p>
<table><tr><th>D</th><th>tests</th><th>surrogate p &lt; 0.05</th><th>ME p &lt; 0.05</th></tr>
{ctrl}</table>
<img src="{p_uri}" alt="p-value histograms">
<h2>Provenance</h2>
<pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>
</body></html>
"""
