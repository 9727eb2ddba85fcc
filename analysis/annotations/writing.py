"""Writing the annotation table: the TSV with its derived time columns and the JSON
sidecar (format, ME rule, columns, provenance), each replaced atomically, so a kill
at any moment leaves the old file or the new one. The format is described in
:mod:`mmmelab.analysis.annotations.table`, which reads it back.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mmmelab import __version__
from mmmelab.analysis.annotations.facs import format_aus
from mmmelab.analysis.annotations.table import (
    COLUMNS,
    DERIVED,
    AnnotationTable,
    Emotion,
    event_times,
)


def write_table(
    table: AnnotationTable,
    path: Path,
    camera: tuple[np.ndarray, np.ndarray] | None = None,
    session_id: str = "",
) -> Path:
    """Write the TSV and its JSON sidecar; ``camera`` = (acq_nframe, master_time) adds times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anns = table.annotations
    times = None
    if camera is not None and anns:
        keys = np.array([[a.onset, a.apex_or_mid, a.offset] for a in anns], dtype=np.float64)
        times = event_times(camera[0], camera[1], keys.reshape(-1)).reshape(-1, 3)
    out = io.StringIO(newline="")
    w = csv.writer(out, delimiter="\t", lineterminator="\n")
    w.writerow([*COLUMNS, *DERIVED])
    for i, a in enumerate(anns):
        row = [
            a.id,
            a.kind.value,
            a.onset,
            "" if a.apex is None else a.apex,
            a.offset,
            format_aus(a.aus),
            a.emotion.value,
            a.coder or table.coder,
            a.notes,
            a.kind_override,
        ]
        dur = (a.offset - a.onset + (1 if table.rule.counting == "inclusive" else 0)) / table.fps
        derived = [f"{dur * 1000.0:.2f}"]
        if times is not None:
            apex_t = times[i, 1] if a.apex is not None else float("nan")
            derived += [_fmt_s(times[i, 0]), _fmt_s(apex_t), _fmt_s(times[i, 2])]
        else:
            derived += ["n/a", "n/a", "n/a"]
        w.writerow([*row, *derived])
    sidecar = {
        "format": "mmme-annotations",
        "format_version": 1,
        "session": session_id,
        "coder": table.coder,
        "fps": table.fps,
        "frame_numbers": "camera journal acq_nframe (dropped frames are gaps, never renumbered)",
        "me_rule": asdict(table.rule),
        "times": "onset_s/apex_s/offset_s: master clock (pylsl.local_clock) of the frame's "
        "exposure start, derived from the camera journal and sync.json; not read back",
        "columns": {
            "id": "unique within the file",
            "kind": "ME or MaE, from the ME rule unless kind_override gives a reason",
            "onset_frame": "first frame of the expression (acq_nframe)",
            "apex_frame": "frame of greatest intensity; empty when not annotated",
            "offset_frame": "last frame of the expression",
            "aus": "action units, FACS notation (L/R side, intensity A-E)",
            "emotion": ", ".join(e.value for e in Emotion),
            "coder": "coder name, or consensus",
            "notes": "free text",
            "kind_override": "reason the kind differs from the rule, else empty",
            "duration_ms": "offset - onset at fps, counted as the ME rule counts",
        },
        "source": table.source,
        "source_sha256": table.source_sha256,
        "software": {"name": "mmme-lab", "version": __version__},
    }
    # the sidecar first: a kill between the two leaves the old table with a sidecar
    # that describes it equally well (both only grow the same columns)
    atomic_write(path.with_suffix(".json"), json.dumps(sidecar, indent=2))
    atomic_write(path, out.getvalue())
    return path


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a kill at any moment leaves the old file or
    the new one, never a part: a temporary file, fsync, rename, fsync of the folder."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fmt_s(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.6f}"
