"""Spotting evaluation: predicted intervals against the coders' (MEGC protocol).

Intervals are inclusive frame ranges ``[onset, offset]``, so an interval is
``offset - onset + 1`` frames long and two intervals overlap by
``max(0, min(offsets) - max(onsets) + 1)`` frames; IoU is that overlap over the
union ``len_a + len_b - overlap`` (MMME eq. 11; MEGC's ``result_helper.py``).
A prediction and an event match when IoU >= ``iou`` (0.5). Matching is done per
video and per class: an ME prediction can only find an ME event.

Two rules, because the public scripts disagree (analysis_anchors.md, 1.1):

``one-to-one`` (default, paper_spec.md section 7)
    Every (event, prediction) pair with IoU >= iou, taken greedily by IoU (ties by
    event, then prediction order); each event and each prediction is used at most
    once. TP = matched pairs, FP = unmatched predictions, FN = unmatched events.

``gt-found`` (the MEGC 2020 baseline, MDMD)
    TP = events found by at least one prediction; FN = events found by none;
    precision = TP / predictions, so FP = predictions - TP (never below 0). Two
    predictions on one event are one TP and one FP, as in one-to-one; the rules
    differ when one prediction covers two events (nested or overlapping events:
    gt-found counts both as found, one-to-one only one).

Worked example (one video, all ME): events A = [10, 29], B = [100, 119];
predictions p = [12, 31] (IoU with A = 18/22 = 0.82), q = [8, 27] (IoU with A =
18/22 = 0.82), r = [300, 320] (nothing). One-to-one: A-p (the tie goes to the
earlier prediction), q and r unmatched: TP 1, FP 2, FN 1 (B); P = 1/3, R = 1/2,
F1 = 0.4. gt-found: A found, B not: TP 1, FP = 3 - 1 = 2, FN 1 - the same here.

Counts are pooled - summed over videos, then over classes for "overall" - and
precision, recall and F1 are computed from the pooled counts (MEGC's "overall"
is not a mean of F1s). Per subject and per dataset the same. The apex figures
use the one-to-one pairs: apex hit rate = pairs whose predicted apex lies inside
the event, apex error = |predicted apex - event apex| in ms at the video's fps
(an apex not given is the interval's middle).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.annotations.table import Kind, MeRule, read_table
from mmmelab.errors import LabError

RULES = ("one-to-one", "gt-found")
KINDS = (Kind.ME.value, Kind.MAE.value)


class SpottingInputError(LabError):
    """A ground-truth or prediction file that cannot be evaluated (file and row named)."""


@dataclass(frozen=True)
class Interval:
    """One event or prediction: an inclusive frame range in one video."""

    subject: str
    video: str
    onset: int
    offset: int
    kind: str = Kind.ME.value
    apex: float | None = None
    fps: float = math.nan
    dataset: str = ""

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1

    @property
    def apex_or_mid(self) -> float:
        return self.apex if self.apex is not None else (self.onset + self.offset) / 2.0


def iou(a: Interval | tuple[int, int], b: Interval | tuple[int, int]) -> float:
    """Intersection over union of two inclusive frame ranges (0 when either is empty)."""
    s1, e1 = (a.onset, a.offset) if isinstance(a, Interval) else a
    s2, e2 = (b.onset, b.offset) if isinstance(b, Interval) else b
    len1, len2 = e1 - s1 + 1, e2 - s2 + 1
    if len1 <= 0 or len2 <= 0:
        return 0.0
    inter = max(0, min(e1, e2) - max(s1, s2) + 1)
    return inter / (len1 + len2 - inter)


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    n_gt: int = 0
    n_pred: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.n_gt += other.n_gt
        self.n_pred += other.n_pred

    def to_dict(self) -> dict[str, Any]:
        p = self.tp / self.n_pred if self.n_pred else 0.0
        r = self.tp / self.n_gt if self.n_gt else 0.0
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "n_gt": self.n_gt,
                "n_pred": self.n_pred, "precision": p, "recall": r, "f1": f1}  # fmt: skip


@dataclass
class VideoResult:
    counts: Counts
    pairs: list[tuple[Interval, Interval, float]] = field(default_factory=list)  # gt, pred, iou


def match(
    gt: Sequence[Interval], pred: Sequence[Interval], threshold: float = 0.5,
    rule: str = "one-to-one",
) -> VideoResult:  # fmt: skip
    """Match one video's events and predictions of one class (see the module doc)."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}: one of {', '.join(RULES)}")
    cand = [(iou(g, p), i, j) for i, g in enumerate(gt) for j, p in enumerate(pred)]
    cand = [c for c in cand if c[0] >= threshold and c[0] > 0]
    cand.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_g: set[int] = set()
    used_p: set[int] = set()
    pairs = []
    for score, i, j in cand:
        if i in used_g or j in used_p:
            continue
        used_g.add(i)
        used_p.add(j)
        pairs.append((gt[i], pred[j], score))
    if rule == "one-to-one":
        tp = len(pairs)
        counts = Counts(tp, len(pred) - tp, len(gt) - tp, len(gt), len(pred))
    else:
        found = {i for _, i, _ in cand}
        tp = len(found)
        counts = Counts(tp, max(0, len(pred) - tp), len(gt) - tp, len(gt), len(pred))
    return VideoResult(counts, pairs)


def _apex(pairs: list[tuple[Interval, Interval, float]]) -> dict[str, Any]:
    hits = [g.onset <= p.apex_or_mid <= g.offset for g, p, _ in pairs]
    errors = [abs(p.apex_or_mid - g.apex_or_mid) / g.fps * 1000.0 for g, p, _ in pairs
              if math.isfinite(g.fps) and g.fps > 0]  # fmt: skip
    return {
        "pairs": len(pairs),
        "apex_hit_rate": float(np.mean(hits)) if hits else None,
        "apex_error_ms_mean": float(np.mean(errors)) if errors else None,
        "apex_error_ms_median": float(np.median(errors)) if errors else None,
    }


def evaluate(
    gt: Iterable[Interval], pred: Iterable[Interval], threshold: float = 0.5,
    rule: str = "one-to-one",
) -> dict[str, Any]:  # fmt: skip
    """Per class and overall (pooled counts), per subject, per dataset, with the apex
    figures; a video with predictions but no events counts its predictions as FP."""
    by_video: dict[tuple[str, str, str], dict[str, tuple[list[Interval], list[Interval]]]]
    by_video = defaultdict(lambda: {k: ([], []) for k in KINDS})
    for side, items in ((0, gt), (1, pred)):
        for it in items:
            if it.kind not in KINDS:
                raise SpottingInputError(f"kind {it.kind!r}: ME or MaE")
            by_video[(it.dataset, it.subject, it.video)][it.kind][side].append(it)
    groups: dict[str, dict[str, dict[str, Counts]]] = {"subject": {}, "dataset": {}}
    total = {k: Counts() for k in KINDS}
    pairs_all: list[tuple[Interval, Interval, float]] = []
    for (dataset, subject, _), per_kind in sorted(by_video.items()):
        for kind, (g, p) in per_kind.items():
            res = match(g, p, threshold, rule)
            total[kind].add(res.counts)
            pairs_all += res.pairs
            for level, key in (("subject", subject), ("dataset", dataset)):
                slot = groups[level].setdefault(key, {k: Counts() for k in KINDS})
                slot[kind].add(res.counts)

    def summary(per_kind: dict[str, Counts]) -> dict[str, Any]:
        overall = Counts()
        for c in per_kind.values():
            overall.add(c)
        return {**{k: c.to_dict() for k, c in per_kind.items()}, "overall": overall.to_dict()}

    return {
        "rule": rule,
        "iou_threshold": threshold,
        "videos": len(by_video),
        **summary(total),
        "apex": _apex(pairs_all),
        "per_subject": {k: summary(v) for k, v in sorted(groups["subject"].items())},
        "per_dataset": {k: summary(v) for k, v in sorted(groups["dataset"].items())},
    }


# ---------------------------------------------------------------- reading


def read_intervals(
    path: Path, fps: float | None = None, rule: MeRule | None = None
) -> list[Interval]:
    """Events or predictions from one of: our annotation table (``.tsv`` with its
    sidecar: subject and video from the session folder's name), a MEGC csv
    (``subject, video, onset, offset[, apex][, type][, emotion]``; without a type
    column the kind is judged from the duration, which needs ``fps``), or a folder
    holding annotation tables (each ``consensus.tsv`` or ``auto-*.tsv`` under it)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("annotations/consensus.tsv")) + sorted(
            path.rglob("annotations/auto-*.tsv")
        )
        if not found:
            raise SpottingInputError(f"{path}: no annotations/*.tsv under it")
        return [it for f in found for it in read_intervals(f, fps, rule)]
    if not path.exists():
        raise SpottingInputError(f"{path}: file not found")
    if path.suffix.lower() == ".tsv":
        return _from_table(path, rule)
    return _from_megc_csv(path, fps, rule or MeRule())


def _from_table(path: Path, rule: MeRule | None) -> list[Interval]:
    table = read_table(path, rule)
    session = path.parent.parent.name  # sub-P01_ses-01_<stamp>/annotations/x.tsv
    try:  # a table written elsewhere (mmme spot --out) names its session in the sidecar
        named = json.loads(path.with_suffix(".json").read_text()).get("session") or ""
    except (OSError, ValueError, AttributeError):
        named = ""
    if named and not session.startswith("sub-"):
        session = str(named)
    subject = session.split("_")[0].removeprefix("sub-") if session.startswith("sub-") else ""
    return [
        Interval(
            a.subject or subject,
            a.clip or session,
            a.onset,
            a.offset,
            a.kind.value,
            float(a.apex) if a.apex is not None else None,
            table.fps,
        )  # fmt: skip
        for a in table.annotations
    ]


def _from_megc_csv(path: Path, fps: float | None, rule: MeRule) -> list[Interval]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpottingInputError(f"{path}: cannot be read ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise SpottingInputError(f"{path}: empty")
    header = [h.strip().lower() for h in rows[0]]
    need = ("subject", "video", "onset", "offset")
    missing = [c for c in need if c not in header]
    if missing:
        raise SpottingInputError(
            f"{path}: row 1: no column {', '.join(missing)} (MEGC layout: subject, video, "
            f"onset, offset[, apex][, type][, emotion])"
        )
    col = {h: i for i, h in enumerate(header)}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        cell = {h: (row[i].strip() if i < len(row) else "") for h, i in col.items()}
        onset = _frame(cell, "onset", path, n)
        offset = _frame(cell, "offset", path, n)
        apex = _frame(cell, "apex", path, n, optional=True) if "apex" in col else None
        assert onset is not None and offset is not None
        if offset < onset:
            raise SpottingInputError(f"{path}: row {n}: offset {offset} before onset {onset}")
        kind = _kind(cell.get("type", ""), path, n)
        if kind is None:
            if not fps:
                raise SpottingInputError(
                    f"{path}: row {n}: no type column, so the kind comes from the duration: "
                    f"give --fps"
                )
            kind = rule.kind(onset, apex, offset, fps).value
        out.append(Interval(cell["subject"], cell["video"], onset, offset, kind,
                            None if apex is None else float(apex),
                            float(fps) if fps else math.nan, cell.get("dataset", "")))  # fmt: skip
    return out


def _frame(
    cell: dict[str, str], name: str, path: Path, row: int, optional: bool = False
) -> int | None:
    value = cell.get(name, "")
    if optional and value in ("", "-1", "/"):  # SAMM writes -1 for an apex not coded
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise SpottingInputError(
            f"{path}: row {row}, column {name}: {value!r} is not a frame number"
        )
    return int(number)


def _kind(value: str, path: Path, row: int) -> str | None:
    v = value.strip().lower().replace("-", "").replace(" ", "")
    if not v:
        return None
    if v in ("me", "micro", "microexpression"):
        return Kind.ME.value
    if v in ("mae", "macro", "macroexpression"):
        return Kind.MAE.value
    raise SpottingInputError(f"{path}: row {row}, column type: {value!r} is not ME or MaE")
