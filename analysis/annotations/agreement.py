"""Several coders on one session: their events matched, their agreement, a consensus.

**Matching.** Two coders' events are paired one-to-one by interval IoU (frames
counted inclusively, camera frame numbers) with the assignment that maximises the
summed IoU (Hungarian, ``scipy.optimize.linear_sum_assignment``); a pair counts
when its IoU is at least ``threshold`` (0.5, the MEGC rule). With more than two
coders, pairs link into groups (at most one event per coder: when a chain would put
two of one coder's events in a group, the one with the lower summed IoU leaves it).

**Agreement** (``agreement``):

* AU agreement, MMME eq. 3: ``r = 2 |AU(A1) n AU(A2)| / (|AU(A1)| + |AU(A2)|)`` per
  matched pair, on AU codes (side and intensity ignored unless ``sided``); *pooled*
  (sums over all pairs: the primary figure, paper_spec.md) and the *per-event mean*;
  pairs where neither coder gave an AU are skipped and counted.
* Emotion: Cohen's kappa per coder pair on their matched events; Fleiss' kappa over
  the groups every coder marked (DFME eqs. 2-7), with DFME's bands.
* Key frames: per pair, |delta onset|, |delta apex|, |delta offset| in frames and ms
  (mean, median, max) and the IoU; ICC(2,1) and ICC(3,1) of the durations (onset
  to offset) and of the onset-to-apex latencies across coders (absolute frame
  numbers would agree trivially: the events lie minutes apart).
* Detection: how many events each coder marked, how many were matched by the other.

**Consensus** (``propose_consensus``): per group, key frames are the median over its
coders (DFME took the median of five; a half frame, as with two coders, rounds up);
the emotion is the label given by more than half of all coders (DFME: >= 4 of 7;
with two coders, both); an AU is kept when more than half of all coders gave it.
Whatever falls short - an event only some coders marked, no emotion majority, an AU
some gave, key frames further apart than ``frame_tolerance`` - becomes a *dispute*
the adjudicator decides.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mmmelab.analysis.annotations.facs import ActionUnit
from mmmelab.analysis.annotations.table import (
    CONSENSUS,
    Annotation,
    AnnotationTable,
    Emotion,
    MeRule,
)
from mmmelab.analysis.stats.reliability import cohen_kappa, fleiss_counts, fleiss_kappa, icc
from mmmelab.analysis.stats.reliability import kappa_band as band

THRESHOLD = 0.5
FRAME_TOLERANCE = 3  # key frames further apart than this (frames) are a dispute


def iou(a: Annotation, b: Annotation) -> float:
    """Interval IoU of two events, frames counted inclusively."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    union = max(a.offset, b.offset) - min(a.onset, b.onset) + 1
    return inter / union


def match_pair(a: list[Annotation], b: list[Annotation],
               threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:  # fmt: skip
    """(index in a, index in b, IoU) for the one-to-one pairs with IoU >= threshold."""
    if not a or not b:
        return []
    m = np.array([[iou(x, y) for y in b] for x in a])
    rows, cols = linear_sum_assignment(m, maximize=True)
    return [(int(i), int(j), float(m[i, j])) for i, j in zip(rows, cols, strict=True)
            if m[i, j] >= threshold]  # fmt: skip


@dataclass
class Group:
    """One expression as the coders saw it: coder -> their event."""

    events: dict[str, Annotation]

    @property
    def start(self) -> int:
        return min(e.onset for e in self.events.values())


def group_events(tables: dict[str, AnnotationTable], threshold: float = THRESHOLD) -> list[Group]:
    """The coders' events linked into groups (see the module's docstring)."""
    coders = sorted(tables)
    node = [(c, i) for c in coders for i in range(len(tables[c].annotations))]
    parent = {n: n for n in node}

    def find(n: tuple[str, int]) -> tuple[str, int]:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    score: dict[tuple[str, int], float] = dict.fromkeys(node, 0.0)
    for c1, c2 in itertools.combinations(coders, 2):
        for i, j, v in match_pair(tables[c1].annotations, tables[c2].annotations, threshold):
            parent[find((c1, i))] = find((c2, j))
            score[(c1, i)] += v
            score[(c2, j)] += v
    comps: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for n in node:
        comps.setdefault(find(n), []).append(n)
    groups = []
    for members in comps.values():
        best: dict[str, tuple[str, int]] = {}
        spare = []
        for n in sorted(members, key=lambda n: -score[n]):
            if n[0] in best:
                spare.append(n)  # a second event of one coder: a group of its own
            else:
                best[n[0]] = n
        groups.append(Group({c: tables[c].annotations[i] for c, (_, i) in best.items()}))
        groups += [Group({c: tables[c].annotations[i]}) for c, i in spare]
    return sorted(groups, key=lambda g: (g.start, sorted(g.events)))


def _au_set(aus: list[ActionUnit], sided: bool) -> set[str]:
    return {f"{a.side}{a.code}" if sided else a.code for a in aus}


def au_agreement(pairs: list[tuple[Annotation, Annotation]], sided: bool = False) -> dict[str, Any]:
    """MMME eq. 3 over matched pairs: pooled and per-event mean."""
    inter = total = 0
    per = []
    skipped = 0
    for a, b in pairs:
        sa, sb = _au_set(a.aus, sided), _au_set(b.aus, sided)
        if not sa and not sb:
            skipped += 1
            continue
        inter += len(sa & sb)
        total += len(sa) + len(sb)
        per.append(2 * len(sa & sb) / (len(sa) + len(sb)))
    return {"pooled": (2 * inter / total) if total else None,
            "per_event_mean": float(np.mean(per)) if per else None,
            "events": len(per), "skipped_no_aus": skipped, "sided": sided}  # fmt: skip


def _deltas(pairs: list[tuple[Annotation, Annotation]], fps: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("onset", "apex", "offset"):
        d = [abs(getattr(a, key) - getattr(b, key)) for a, b in pairs
             if getattr(a, key) is not None and getattr(b, key) is not None]  # fmt: skip
        if not d:
            out[key] = None
            continue
        arr = np.asarray(d, dtype=np.float64)
        out[key] = {"mean_frames": float(arr.mean()), "median_frames": float(np.median(arr)),
                    "max_frames": int(arr.max()), "mean_ms": float(arr.mean() * 1000.0 / fps),
                    "n": len(d)}  # fmt: skip
    ious = [iou(a, b) for a, b in pairs]
    out["iou_mean"] = float(np.mean(ious)) if ious else None
    return out


def _icc_of(groups: list[Group], coders: list[str], what: str) -> dict[str, Any]:
    rows = []
    for g in groups:
        if len(g.events) != len(coders):
            continue
        evs = [g.events[c] for c in coders]
        if what == "duration":
            rows.append([e.offset - e.onset for e in evs])
        elif all(e.apex is not None for e in evs):
            rows.append([(e.apex or 0) - e.onset for e in evs])
    if len(coders) < 2:
        return {"n": len(rows), "note": "one coder"}
    forms, note = icc(np.asarray(rows, dtype=np.float64).reshape(-1, len(coders)))
    keep = {f.form: f.to_dict() for f in forms if f.form in ("ICC2", "ICC3")}
    return {"n": len(rows), "note": note, **keep}


def agreement(tables: dict[str, AnnotationTable], threshold: float = THRESHOLD,
              sided: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every agreement figure for one session's coder tables (see the module docstring)."""
    coders = sorted(tables)
    fps = next(iter(tables.values())).fps if tables else 0.0
    groups = group_events(tables, threshold)
    pairs_out = []
    all_pairs: list[tuple[Annotation, Annotation]] = []
    for c1, c2 in itertools.combinations(coders, 2):
        a, b = tables[c1].annotations, tables[c2].annotations
        m = match_pair(a, b, threshold)
        pairs = [(a[i], b[j]) for i, j, _ in m]
        all_pairs += pairs
        k = cohen_kappa([x.emotion.value for x, _ in pairs], [y.emotion.value for _, y in pairs])
        pairs_out.append({
            "coders": [c1, c2], "events": [len(a), len(b)], "matched": len(m),
            "unmatched": [len(a) - len(m), len(b) - len(m)],
            "au": au_agreement(pairs, sided), "keyframes": _deltas(pairs, fps),
            "emotion_cohen_kappa": k.to_dict() | {"band": band(k.value)},
            "emotion_agreement": (sum(x.emotion == y.emotion for x, y in pairs) / len(pairs))
            if pairs else None,
        })  # fmt: skip
    full = [g for g in groups if len(g.events) == len(coders)]
    fleiss: dict[str, Any] = {"events": len(full)}
    if len(coders) >= 2 and full:
        table, cats = fleiss_counts([[g.events[c].emotion.value for c in coders] for g in full],
                                    [e.value for e in Emotion])  # fmt: skip
        est = fleiss_kappa(table)
        fleiss |= est.to_dict() | {"band": band(est.value)}
    else:
        fleiss["note"] = "needs two or more coders and an event all of them marked"
    return {
        "coders": coders,
        "fps": fps,
        "threshold_iou": threshold,
        "groups": len(groups),
        "marked_by_all": len(full),
        "pairs": pairs_out,
        "au_pooled_all_pairs": au_agreement(all_pairs, sided),
        "emotion_fleiss_kappa": fleiss,
        "icc_duration": _icc_of(groups, coders, "duration"),
        "icc_onset_to_apex": _icc_of(groups, coders, "apex"),
        "conventions": {
            "au": "MMME eq. 3 (Dice) on AU codes; pooled = sums over pairs (primary), "
                  "per_event_mean secondary; pairs without AUs on both sides skipped",
            "icc": "Shrout-Fleiss standard form (MMME eq. 2 prints n targets for k raters)",
            "matching": f"one-to-one Hungarian on interval IoU >= {threshold}",
        },
    }  # fmt: skip


# ---------------------------------------------------------------- consensus


@dataclass
class Dispute:
    group: int  # index in the proposal's groups
    what: list[str]  # "marked by a and not by b", "emotion", "aus", "onset" ...
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Proposal:
    groups: list[Group]
    events: list[Annotation | None]  # the proposed consensus per group (None: drop)
    disputes: list[Dispute]
    coders: list[str]


def _median_frame(values: list[int]) -> int:
    return int(np.floor(np.median(values) + 0.5))


def _aus_majority(evs: list[Annotation], n_coders: int) -> tuple[list[ActionUnit], list[str]]:
    counts: Counter[tuple[str, str, int]] = Counter()
    intens: dict[tuple[str, str, int], list[str]] = {}
    for e in evs:
        for a in {(a.prefix, a.side, a.number): a for a in e.aus}.values():
            key = (a.prefix, a.side, a.number)
            counts[key] += 1
            intens.setdefault(key, []).append(a.intensity)
    kept, split = [], []
    for key, c in sorted(counts.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        au = ActionUnit(key[2], key[1], "", key[0])
        if 2 * c > n_coders:
            given = sorted(i for i in intens[key] if i and "/" not in i)
            inten = given[(len(given) - 1) // 2] if given else ""
            kept.append(ActionUnit(key[2], key[1], inten, key[0]))
        else:
            split.append(str(au))
    return kept, split


def propose_consensus(tables: dict[str, AnnotationTable], threshold: float = THRESHOLD,
                      frame_tolerance: int = FRAME_TOLERANCE) -> Proposal:  # fmt: skip
    coders = sorted(tables)
    groups = group_events(tables, threshold)
    events: list[Annotation | None] = []
    disputes = []
    n = len(coders)
    for gi, g in enumerate(groups):
        evs = [g.events[c] for c in coders if c in g.events]
        what: list[str] = []
        detail: dict[str, Any] = {}
        if len(evs) < n:
            what.append(
                "marked by "
                + ", ".join(c for c in coders if c in g.events)
                + "; not by "
                + ", ".join(c for c in coders if c not in g.events)
            )
        onset = _median_frame([e.onset for e in evs])
        offset = _median_frame([e.offset for e in evs])
        apexes = [e.apex for e in evs if e.apex is not None]
        apex = _median_frame(apexes) if apexes else None
        for key in ("onset", "apex", "offset"):
            vals = [getattr(e, key) for e in evs if getattr(e, key) is not None]
            if len(vals) > 1 and max(vals) - min(vals) > frame_tolerance:
                what.append(key)
                detail[key] = dict(zip([c for c in coders if c in g.events], vals, strict=False))
        votes = Counter(e.emotion for e in evs)
        top, count = votes.most_common(1)[0]
        if 2 * count <= n:
            what.append("emotion")
            detail["emotion"] = {c: g.events[c].emotion.value for c in coders if c in g.events}
        aus, split = _aus_majority(evs, n)
        if split:
            what.append("aus")
            detail["aus_split"] = split
        if apex is not None and not onset <= apex <= offset:
            apex = min(max(apex, onset), offset)
        overrides = {e.kind_override for e in evs if e.kind_override}
        ann = Annotation(f"c-{gi + 1:03d}", onset, apex, offset, evs[0].kind, aus,
                         top if 2 * count > n else Emotion.OTHERS, CONSENSUS,
                         notes="from " + ", ".join(c for c in coders if c in g.events),
                         kind_override="; ".join(sorted(overrides)))  # fmt: skip
        events.append(ann)
        if what:
            disputes.append(Dispute(gi, what, detail))
    return Proposal(groups, events, disputes, coders)


def consensus_table(proposal: Proposal, fps: float, rule: MeRule | None = None) -> AnnotationTable:
    """The consensus events (those the adjudication kept), kinds by the rule."""
    rule = rule or MeRule()
    kept = [e for e in proposal.events if e is not None]
    out = []
    for i, e in enumerate(kept):
        kind = rule.kind(e.onset, e.apex, e.offset, fps) if not e.kind_override else e.kind
        out.append(Annotation(f"c-{i + 1:03d}", e.onset, e.apex, e.offset, kind, e.aus,
                              e.emotion, CONSENSUS, e.notes, e.kind_override))  # fmt: skip
    return AnnotationTable(out, fps, CONSENSUS, rule)
