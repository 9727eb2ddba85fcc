"""The quality report's page parts: its style, tables, images and plotting backend."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

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


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def table(head: list[str], rows: list[list[Any]], classes: list[list[str]] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cells = []
        for j, v in enumerate(r):
            cls = classes[i][j] if classes else ""
            cells.append(f"<td class='{cls}'>{html.escape(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def img(uri: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='{uri}'>"
