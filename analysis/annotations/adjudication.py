"""Adjudication: from the coders' submitted passes to ``annotations/consensus.tsv``.

The proposal (``agreement.propose_consensus``: median key frames, majority emotion
and AUs) is taken as it is where the coders agree; every *dispute* - an event only
some coders marked, no emotion majority, an AU only some gave, key frames apart -
waits for the adjudicator's decision: keep (as proposed, as one coder had it, or
edited) or drop. Each decision is written at once (``annotations/adjudication.json``,
atomically), so the adjudicator can stop and come back; if a coder's file changed
since, the decisions no longer fit the groups and the adjudication starts over (the
old file is kept beside it). ``write()`` refuses while a dispute is undecided and
then writes the consensus table and, in ``adjudication.json``, who decided what,
the inputs' hashes and the agreement figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmmelab import __version__
from mmmelab.analysis.annotations.agreement import (
    THRESHOLD,
    Dispute,
    agreement,
    consensus_table,
    propose_consensus,
)
from mmmelab.analysis.annotations.coding import submitted_coders
from mmmelab.analysis.annotations.facs import format_aus, parse_aus
from mmmelab.analysis.annotations.table import (
    CONSENSUS,
    FOLDER,
    Annotation,
    AnnotationTable,
    Emotion,
    Kind,
    annotation_path,
    file_sha256,
    read_table,
)
from mmmelab.analysis.annotations.writing import atomic_write, write_table
from mmmelab.errors import LabError

FILE = "adjudication.json"


class Adjudication:
    def __init__(self, folder: Path | str, adjudicator: str, threshold: float = THRESHOLD,
                 camera: Any = None) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.adjudicator = adjudicator
        self.threshold = threshold
        self.camera = camera  # (acq_nframe, master_time) for the written times
        coders = submitted_coders(self.folder)
        if len(coders) < 2:
            raise LabError(
                f"{self.folder}: adjudication needs two or more submitted passes; submitted: "
                f"{', '.join(coders) or 'none'} (each coder submits in mmme annotate)"
            )
        self.coders = coders
        self.tables: dict[str, AnnotationTable] = {
            c: read_table(annotation_path(self.folder, c)) for c in coders
        }
        fps = {t.fps for t in self.tables.values()}
        if len(fps) != 1:
            raise LabError(f"{self.folder}: the coders' files disagree on the frame rate {fps}")
        self.fps = fps.pop()
        self.inputs = {c: file_sha256(annotation_path(self.folder, c)) for c in coders}
        self.proposal = propose_consensus(self.tables, threshold)
        self.decisions: dict[int, dict[str, Any]] = {}
        self.note = ""
        self._load()

    @property
    def path(self) -> Path:
        return self.folder / FOLDER / FILE

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.path}: cannot be read ({exc})") from None
        if old.get("inputs") != self.inputs or old.get("threshold_iou") != self.threshold:
            keep = self.path.with_name(f"adjudication.{time.strftime('%Y%m%dT%H%M%S')}.json")
            self.path.replace(keep)
            self.note = (f"the coders' files changed since the last adjudication: started over "
                         f"(the old decisions are in {keep.name})")  # fmt: skip
            return
        self.decisions = {int(k): v for k, v in old.get("decisions", {}).items()}

    @property
    def disputes(self) -> list[Dispute]:
        return self.proposal.disputes

    def undecided(self) -> list[Dispute]:
        return [d for d in self.disputes if d.group not in self.decisions]

    def versions(self, group: int) -> dict[str, Annotation]:
        """Each coder's event in the group, and the proposal (key ``consensus``)."""
        g = self.proposal.groups[group]
        out = dict(g.events)
        prop = self.current(group)
        if prop is not None:
            out[CONSENSUS] = prop
        return out

    def current(self, group: int) -> Annotation | None:
        """The group's consensus event as it stands (decided, else proposed)."""
        base = self.proposal.events[group]
        d = self.decisions.get(group)
        if d is None or base is None:
            return base
        if not d["keep"]:
            return None
        e = d.get("event") or {}
        return replace(base, onset=int(e.get("onset", base.onset)),
                       apex=e.get("apex", base.apex), offset=int(e.get("offset", base.offset)),
                       aus=parse_aus(e["aus"]) if "aus" in e else base.aus,
                       emotion=Emotion(e.get("emotion", base.emotion.value)),
                       kind=Kind(e.get("kind", base.kind.value)),
                       kind_override=e.get("kind_override", base.kind_override),
                       notes=e.get("notes", base.notes))  # fmt: skip

    def decide(self, group: int, keep: bool = True, take: str | None = None,
               **fields: Any) -> Annotation | None:  # fmt: skip
        """Decide a group: ``keep=False`` drops it; ``take=<coder>`` keeps that coder's
        version; ``fields`` (onset, apex, offset, aus, emotion, notes, kind,
        kind_override) edit what is kept. Saved at once."""
        if not 0 <= group < len(self.proposal.groups):
            raise LabError(f"no group {group} (there are {len(self.proposal.groups)})")
        event: dict[str, Any] = {}
        if take is not None:
            src = self.proposal.groups[group].events.get(take)
            if src is None:
                raise LabError(f"{take} did not mark group {group}")
            event = {"onset": src.onset, "apex": src.apex, "offset": src.offset,
                     "aus": format_aus(src.aus), "emotion": src.emotion.value,
                     "kind": src.kind.value, "kind_override": src.kind_override}  # fmt: skip
        for k, v in fields.items():
            if k not in ("onset", "apex", "offset", "aus", "emotion", "notes", "kind",
                         "kind_override"):  # fmt: skip
                raise LabError(f"no field {k!r} to decide")
            event[k] = v
        if "aus" in event:
            parse_aus(event["aus"])  # ValueError names the bad token
        if "emotion" in event:
            Emotion(event["emotion"])
        on = int(event.get("onset", self._base(group).onset))
        off = int(event.get("offset", self._base(group).offset))
        apex = event.get("apex", self._base(group).apex)
        if off < on or (apex is not None and not on <= int(apex) <= off):
            raise LabError(f"key frames {on}/{apex}/{off} are not in order")
        self.decisions[group] = {"keep": keep, "event": event, "take": take,
                                 "by": self.adjudicator,
                                 "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        self._save()
        return self.current(group)

    def _base(self, group: int) -> Annotation:
        base = self.proposal.events[group]
        assert base is not None
        return base

    def _save(self, written: str = "") -> None:
        doc = {
            "format": "mmme-adjudication", "format_version": 1,
            "adjudicator": self.adjudicator, "coders": self.coders, "inputs": self.inputs,
            "threshold_iou": self.threshold,
            "disputes": [{"group": d.group, "what": d.what, "detail": d.detail}
                         for d in self.disputes],
            "decisions": {str(k): v for k, v in sorted(self.decisions.items())},
            "written": written, "software": {"name": "mmme-lab", "version": __version__},
        }  # fmt: skip
        self.path.parent.mkdir(exist_ok=True)
        atomic_write(self.path, json.dumps(doc, indent=1, default=str))

    def table(self) -> AnnotationTable:
        events = [self.current(i) for i in range(len(self.proposal.groups))]
        prop = replace(self.proposal, events=events)
        return consensus_table(prop, self.fps)

    def write(self) -> Path:
        """The consensus file; refuses while a dispute is undecided."""
        left = self.undecided()
        if left:
            raise LabError(f"{len(left)} dispute(s) not decided yet (first: group {left[0].group}"
                           f", {', '.join(left[0].what)})")  # fmt: skip
        table = self.table()
        table.source = ", ".join(f"coder-{c}.tsv" for c in self.coders)
        path = write_table(table, annotation_path(self.folder, CONSENSUS), self.camera,
                           self.folder.name)  # fmt: skip
        self._save(written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        doc = json.loads(self.path.read_text())
        doc["agreement"] = agreement(self.tables, self.threshold)
        atomic_write(self.path, json.dumps(doc, indent=1, default=str))
        return path
