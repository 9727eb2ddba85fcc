"""The pre-flight of the volumes a session records to: space, measured speed, fit.

The camera's frames are striped round-robin by chunk over the volumes (one
volume: all of them on the session's own); the signals go to the first. For
each volume the check measures its free space and its write speed (a short
direct-I/O probe, as the writer writes), then says whether the planned session
fits at the planned rate with the volumes it has. It refuses, in one line, what
would lose data for certain (too little space in all, a volume slower than its
share of the frames); it warns of what leaves little room (a volume that fills
before the planned end, whose share the others then take; a volume under
``DISK_SPEED_MARGIN`` times its share).
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError
from mmmelab.storage.directio import write_speed

logger = logging.getLogger(__name__)

DISK_SPEED_MARGIN = 1.5  # a volume under this many times its share of the rate: a warning
DISK_MARGIN = 1.25  # the space a session needs: its planned bytes times this


@dataclass
class DiskCheck:
    """The figures (``figures``, kept in the manifest) and the warnings of a pre-flight."""

    figures: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str:
        return "; ".join(self.warnings)


def check_volumes(
    volumes: list[Path], frame_bytes_per_s: float, other_bytes_per_s: float, planned_s: float
) -> DiskCheck:
    """Check ``volumes`` (the first holds the session) for a session of ``planned_s`` that
    writes ``frame_bytes_per_s`` of frames, striped, and ``other_bytes_per_s`` to the first.
    Raises LabError (one line) when the session cannot be recorded without loss."""
    n = len(volumes)
    share = frame_bytes_per_s / n  # round-robin by chunk: each volume takes an equal share
    rate = frame_bytes_per_s + other_bytes_per_s
    need = rate * planned_s * DISK_MARGIN
    check = DiskCheck()
    rows: list[dict[str, Any]] = []
    for k, folder in enumerate(volumes):
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        own = share + (other_bytes_per_s if k == 0 else 0.0)
        rows.append({"volume": k, "folder": str(folder), "free_bytes": free,
                     "share_bytes_per_s": own,
                     "time_to_full_s": free / own if own else None})  # fmt: skip
    total_free = sum(r["free_bytes"] for r in rows)
    check.figures = {
        "free_bytes": total_free,
        "planned_s": planned_s,
        "bytes_per_s": rate,
        "needed_bytes": int(need),
        "volumes": rows,
    }
    where = str(volumes[0]) if n == 1 else f"the {n} volumes ({', '.join(map(str, volumes))})"
    if not total_free >= need:  # written so that a NaN plan fails too
        raise LabError(
            f"not enough disk space in {where}: the protocol may run {planned_s / 60:.1f} min "
            f"at {rate / 1e6:.0f} MB/s, which needs {need / 1e9:.1f} GB (with margin) but "
            f"{total_free / 1e9:.1f} GB are free"
        )
    speeds: list[float] = []
    for row in rows:
        _probe(row, check, n)
        speeds.append(row.get("write_mb_s", math.nan))
    measured = [s for s in speeds if math.isfinite(s)]
    check.figures["write_mb_s"] = round(sum(measured), 1) if measured else math.nan
    check.figures["write_probe_direct"] = all(r.get("write_probe_direct") for r in rows)
    if n > 1:
        for row in rows:
            ttf = row["time_to_full_s"]
            if ttf is not None and ttf < planned_s * DISK_MARGIN:
                check.warnings.append(
                    f"volume {row['volume']} ({row['folder']}) fills after about "
                    f"{ttf / 60:.1f} min of the {planned_s / 60:.1f} planned; "
                    "the other volumes then take its frames"
                )
    check.figures["fits"] = not check.warnings
    for w in check.warnings:
        logger.warning("%s", w)
    return check


def _probe(row: dict[str, Any], check: DiskCheck, n: int) -> None:
    """Measure one volume's speed; refuse one slower than its share, warn near it."""
    folder = Path(row["folder"])
    probe = write_speed(folder)
    row["write_probe_direct"] = probe["direct"]
    name = str(folder) if n == 1 else f"volume {row['volume']} ({folder})"
    if not probe["bytes"]:
        check.warnings.append(f"{name}: too little free space to measure its speed")
        return
    row["write_mb_s"] = probe["mb_s"]
    need = row["share_bytes_per_s"]
    of = "the recording" if n == 1 else f"its share of the {n}-volume stripe"
    if probe["mb_s"] * 1e6 < need:
        raise LabError(
            f"{name} writes {probe['mb_s']:.0f} MB/s (measured, {probe['bytes'] >> 20} MB), "
            f"{of} needs {need / 1e6:.0f} MB/s: frames would be lost; record to a faster volume"
        )
    if probe["mb_s"] * 1e6 < DISK_SPEED_MARGIN * need:  # a fault row once recording
        check.warnings.append(
            f"{name} writes {probe['mb_s']:.0f} MB/s (measured), under {DISK_SPEED_MARGIN:g}x "
            f"the {need / 1e6:.0f} MB/s {of} needs: little room if the disk slows"
        )
