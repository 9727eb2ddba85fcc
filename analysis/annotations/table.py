"""The annotation table: the one format for expression events (ME and MaE).

One file per coder and one consensus file in the session's ``annotations/`` folder::

    annotations/coder-<name>.tsv   + .json sidecar
    annotations/consensus.tsv      + .json sidecar

Columns (tab-separated, a header row):

=============  ==============================================================
id             unique within the file (e.g. ``me-001``)
kind           ``ME`` or ``MaE``; computed from the frames by the ME rule
onset_frame    camera frame numbers - the journal's ``acq_nframe`` counter, so
apex_frame     a dropped frame never shifts an annotation; apex may be empty
offset_frame   (SAMM's ``-1``: not annotated)
aus            action units in FACS notation (``L12+14``, ``4(B/C)+7B``)
emotion        happiness, surprise, sadness, fear, anger, disgust, contempt, others
coder          who coded it (``consensus`` in the consensus file)
notes          free text
kind_override  empty, or the reason the kind differs from the rule's
=============  ==============================================================

Times are never typed in: ``onset_s``/``apex_s``/``offset_s`` on the master clock and
``duration_ms`` are derived from the session's camera journal (:func:`event_times`)
and written as extra columns for the reader's convenience; reading ignores them.

The ME rule (MMME, DFME): at the session's frame rate, an expression is an ME when
``offset - onset + 1 <= 0.5 * fps`` or ``apex - onset + 1 <= 0.25 * fps`` (frames
counted inclusively, DFME's formula; ``<=`` as its formula, not its prose). The
limits and the counting (``inclusive`` or ``interval`` = ``(offset - onset) / fps``)
are configurable and recorded in the sidecar.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.annotations.facs import ActionUnit, format_aus, parse_aus
from mmmelab.errors import LabError

COLUMNS = (
    "id",
    "kind",
    "onset_frame",
    "apex_frame",
    "offset_frame",
    "aus",
    "emotion",
    "coder",
    "notes",
    "kind_override",
)
DERIVED = ("duration_ms", "onset_s", "apex_s", "offset_s")
CONSENSUS = "consensus"
FOLDER = "annotations"


class AnnotationError(LabError):
    """A coding sheet or annotation file has a bad value: file, row and column are named."""


class Kind(enum.StrEnum):
    ME = "ME"
    MAE = "MaE"


class Emotion(enum.StrEnum):
    HAPPINESS = "happiness"
    SURPRISE = "surprise"
    SADNESS = "sadness"
    FEAR = "fear"
    ANGER = "anger"
    DISGUST = "disgust"
    CONTEMPT = "contempt"
    OTHERS = "others"


#: Spellings in public coding sheets, mapped to ours.
EMOTION_ALIASES = {
    "happy": "happiness",
    "happiness": "happiness",
    "surprise": "surprise",
    "surprised": "surprise",
    "sad": "sadness",
    "sadness": "sadness",
    "fear": "fear",
    "afraid": "fear",
    "anger": "anger",
    "angry": "anger",
    "disgust": "disgust",
    "disgusted": "disgust",
    "contempt": "contempt",
    "others": "others",
    "other": "others",
    "repression": "others",
    "tense": "others",
}


@dataclass(frozen=True)
class MeRule:
    """When an expression counts as a micro-expression (see the module docstring)."""

    max_duration_ms: float = 500.0
    max_onset_apex_ms: float = 250.0
    counting: str = "inclusive"  # "inclusive" (DFME frames) or "interval"

    def kind(self, onset: int, apex: int | None, offset: int, fps: float) -> Kind:
        extra = 1 if self.counting == "inclusive" else 0
        if (offset - onset + extra) <= self.max_duration_ms / 1000.0 * fps + 1e-9:
            return Kind.ME
        if (
            apex is not None
            and (apex - onset + extra) <= self.max_onset_apex_ms / 1000.0 * fps + 1e-9
        ):
            return Kind.ME
        return Kind.MAE


@dataclass
class Annotation:
    id: str
    onset: int
    apex: int | None
    offset: int
    kind: Kind = Kind.ME
    aus: list[ActionUnit] = field(default_factory=list)
    emotion: Emotion = Emotion.OTHERS
    coder: str = ""
    notes: str = ""
    kind_override: str = ""
    subject: str = ""  # foreign sheets: the dataset's subject and clip
    clip: str = ""

    @property
    def apex_or_mid(self) -> float:
        """The apex frame, or the interval's middle when the apex was not annotated."""
        return float(self.apex) if self.apex is not None else (self.onset + self.offset) / 2.0


@dataclass
class AnnotationTable:
    """Annotations of one coder (or the consensus) for one recording at ``fps``."""

    annotations: list[Annotation]
    fps: float
    coder: str = CONSENSUS
    rule: MeRule = field(default_factory=MeRule)
    source: str = ""
    source_sha256: str = ""
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.annotations)

    def of_kind(self, kind: Kind) -> list[Annotation]:
        return [a for a in self.annotations if a.kind is kind]

    def classify(self) -> AnnotationTable:
        """Set every kind from the rule, keeping an override that gives its reason."""
        out = []
        for a in self.annotations:
            rule_kind = self.rule.kind(a.onset, a.apex, a.offset, self.fps)
            out.append(a if a.kind_override else replace(a, kind=rule_kind))
        return replace(self, annotations=out)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def annotation_path(session: Path, coder: str = CONSENSUS) -> Path:
    name = CONSENSUS if coder == CONSENSUS else f"coder-{coder}"
    return Path(session) / FOLDER / f"{name}.tsv"


def event_times(acq_nframe: np.ndarray, master_time: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Master-clock times of camera frame numbers (exposure start).

    Frame numbers are the journal's ``acq_nframe``; a dropped frame's time is
    interpolated between its neighbours (frames are periodic on the camera clock).
    Frames outside the recording give NaN.
    """
    frames = np.asarray(frames, dtype=np.float64)
    nf = np.asarray(acq_nframe, dtype=np.float64)
    if not len(nf):
        return np.full(frames.shape, np.nan)
    out = np.interp(frames, nf, np.asarray(master_time, dtype=np.float64))
    out[(frames < nf[0]) | (frames > nf[-1]) | ~np.isfinite(frames)] = np.nan
    return out


# ---------------------------------------------------------------- reading


def _int_cell(path: Path, row: int, col: str, value: str, optional: bool = False) -> int | None:
    text = value.strip()
    if optional and text in ("", "-1", "n/a", "-"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise AnnotationError(
            f"{path}: row {row}, column {col!r}: {value!r} is not a frame number"
        ) from None
    if not np.isfinite(number) or number < 0 or number != int(number):
        raise AnnotationError(
            f"{path}: row {row}, column {col!r}: {value!r} is not a whole frame number >= 0"
        )
    return int(number)


def check_frames(path: Path, row: int, onset: int, apex: int | None, offset: int) -> None:
    if offset < onset:
        raise AnnotationError(
            f"{path}: row {row}, column 'offset_frame': {offset} is before the onset {onset}"
        )
    if apex is not None and not onset <= apex <= offset:
        raise AnnotationError(
            f"{path}: row {row}, column 'apex_frame': {apex} is not between onset {onset} "
            f"and offset {offset}"
        )


def parse_emotion(path: Path, row: int, col: str, value: str) -> Emotion:
    key = value.strip().lower()
    if key not in EMOTION_ALIASES:
        raise AnnotationError(
            f"{path}: row {row}, column {col!r}: {value!r} is not an emotion "
            f"(one of {', '.join(e.value for e in Emotion)})"
        )
    return Emotion(EMOTION_ALIASES[key])


def read_table(path: Path | str, rule: MeRule | None = None) -> AnnotationTable:
    """Read an annotation TSV and its sidecar (which gives fps and the rule)."""
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text())
        fps = float(sidecar["fps"])
    except FileNotFoundError:
        raise AnnotationError(f"{sidecar_path}: missing (it gives the frame rate)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{sidecar_path}: not a valid sidecar ({exc})") from None
    if rule is None:
        rule = MeRule(**sidecar.get("me_rule", {})) if sidecar.get("me_rule") else MeRule()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot be read ({exc})") from None
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows:
        raise AnnotationError(f"{path}: empty (no header row)")
    header = rows[0]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise AnnotationError(f"{path}: row 1: missing column(s) {', '.join(missing)}")
    col = {name: header.index(name) for name in COLUMNS}
    anns: list[Annotation] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for r, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < len(header):
            raise AnnotationError(
                f"{path}: row {r}: {len(cells)} cells, the header has {len(header)}"
            )
        get = {name: cells[i] for name, i in col.items()}
        ident = get["id"].strip()
        if not ident:
            raise AnnotationError(f"{path}: row {r}, column 'id': empty")
        if ident in seen:
            raise AnnotationError(f"{path}: row {r}, column 'id': {ident!r} is used twice")
        seen.add(ident)
        onset = _int_cell(path, r, "onset_frame", get["onset_frame"])
        apex = _int_cell(path, r, "apex_frame", get["apex_frame"], optional=True)
        offset = _int_cell(path, r, "offset_frame", get["offset_frame"])
        assert onset is not None and offset is not None
        check_frames(path, r, onset, apex, offset)
        try:
            aus = parse_aus(get["aus"])
        except ValueError as exc:
            raise AnnotationError(f"{path}: row {r}, column 'aus': {exc}") from None
        emotion = parse_emotion(path, r, "emotion", get["emotion"])
        kind_text = get["kind"].strip()
        if kind_text not in (Kind.ME.value, Kind.MAE.value):
            raise AnnotationError(f"{path}: row {r}, column 'kind': {kind_text!r} is not ME or MaE")
        override = get["kind_override"].strip()
        rule_kind = rule.kind(onset, apex, offset, fps)
        if Kind(kind_text) is not rule_kind and not override:
            warnings.append(
                f"{path}: row {r}: kind {kind_text} disagrees with the ME rule at {fps:g} fps "
                f"({rule_kind.value}); the rule's kind is used (give a reason in kind_override "
                f"to keep {kind_text})"
            )
        anns.append(
            Annotation(
                ident,
                onset,
                apex,
                offset,
                Kind(kind_text) if override else rule_kind,
                aus,
                emotion,
                get["coder"].strip(),
                get["notes"],
                override,
            )
        )
    return AnnotationTable(
        anns,
        fps,
        str(sidecar.get("coder", CONSENSUS)),
        rule,
        str(path),
        file_sha256(path),
        warnings,
    )


def times_table(table: AnnotationTable, acq_nframe: np.ndarray, master_time: np.ndarray) -> Any:
    """The annotations as a pandas DataFrame with their master-clock times (s)."""
    import pandas as pd

    anns = table.annotations
    frames = np.array([[a.onset, a.apex_or_mid, a.offset] for a in anns], float).reshape(-1, 3)
    t = event_times(acq_nframe, master_time, frames.reshape(-1)).reshape(-1, 3)
    return pd.DataFrame(
        {
            "id": [a.id for a in anns],
            "kind": [a.kind.value for a in anns],
            "emotion": [a.emotion.value for a in anns],
            "aus": [format_aus(a.aus) for a in anns],
            "onset_frame": [a.onset for a in anns],
            "apex_frame": [a.apex for a in anns],
            "offset_frame": [a.offset for a in anns],
            "apex_annotated": [a.apex is not None for a in anns],
            "onset_s": t[:, 0],
            "apex_s": t[:, 1],
            "offset_s": t[:, 2],
        }
    )


def table_from_rows(rows: list[dict[str, Any]], fps: float, coder: str, rule: MeRule) -> Any:
    """An AnnotationTable from dicts with onset/apex/offset frames (the rule sets kinds)."""
    anns = [
        Annotation(
            str(r["id"]),
            int(r["onset"]),
            None if r.get("apex") is None else int(r["apex"]),
            int(r["offset"]),
            aus=parse_aus(r.get("aus", "")),
            emotion=Emotion(EMOTION_ALIASES[str(r.get("emotion", "others")).lower()]),
            coder=coder,
            notes=str(r.get("notes", "")),
        )
        for r in rows
    ]
    return AnnotationTable(anns, fps, coder, rule).classify()
