"""The coding tool's model: one session as a coder sees it, without Qt.

``mmme annotate`` (``gui/annotate.py``) is a view on this class, as the console is a
view on its controller: everything it shows comes from here, everything the coder
does goes through here, and every test of the coding logic runs without a window.

* **Frames** by the camera's own numbers (the journal's ``acq_nframe``): a dropped
  frame is a gap, shown as such and never renumbered. Images are the Bayer mosaic
  reduced per 2x2 cell (half the sensor's size, colour), read with direct I/O so
  stepping through an hour does not fill memory with page cache; the frames on
  either side of the current one are read ahead in a background thread.
* **Tracks** on the master clock, read from the HDF5 file in windows (an hour of
  64-channel EEG never comes into memory): ECG, PPG, EDA, RSP, SKT, chosen EEG
  channels, the heart rate (NeuroKit2's R-peaks, computed in the background), the
  session's markers, and the spotter's regional curves and candidates.
* **Marks**: every change is written at once, atomically (temporary file, fsync,
  rename), to ``annotations/coder-<name>.tsv``; the mark in progress (an onset
  without its offset yet) and the pass's state go to
  ``annotations/coder-<name>.state.json`` the same way. Killing the tool loses
  nothing: reopening restores the events, the draft and the position.
* **Blind coding**: a coder sees other coders' marks only after submitting their
  own pass, and then only passes that were submitted.

The frames and tracks are read by :mod:`mmmelab.analysis.annotations.codingdata`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.analysis.annotations.codingdata import FrameSource, Shown, TrackData, TrackSource
from mmmelab.analysis.annotations.facs import DFME_AUS, DFME_MISC, MMME_AUS, parse_aus
from mmmelab.analysis.annotations.table import (
    FOLDER,
    Annotation,
    AnnotationError,
    AnnotationTable,
    Emotion,
    Kind,
    MeRule,
    annotation_path,
    read_table,
)
from mmmelab.analysis.annotations.writing import atomic_write, write_table
from mmmelab.errors import LabError
from mmmelab.storage import CameraStream, open_session

#: what the AU picker offers: MMME Table 2's 21 AUs, DFME's others, its head codes
PICKER_AUS = (*sorted({*MMME_AUS, *DFME_AUS}), *DFME_MISC)
EMOTIONS = tuple(e.value for e in Emotion)
KINDS = tuple(k.value for k in Kind)
SPEEDS = (1.0, 1 / 5, 1 / 10, 1 / 30)
_CODER_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def check_coder(name: str) -> str:
    """A coder's name as it goes into a file name (pseudonymous initials or an id)."""
    if not name or set(name) - _CODER_OK or name.startswith(".") or name.startswith("auto"):
        raise LabError(f"coder {name!r}: use letters, digits, '-', '_' or '.' (not 'auto...')")
    if name == "consensus":
        raise LabError("coder 'consensus' is the adjudicated file's name; choose another")
    return name


def state_path(session: Path, coder: str) -> Path:
    return Path(session) / FOLDER / f"coder-{coder}.state.json"


def read_state(session: Path, coder: str) -> dict[str, Any]:
    path = state_path(session, coder)
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot be read ({exc}); move it away to start afresh") from None
    if not isinstance(state, dict):
        raise LabError(f"{path}: not a coder state (a JSON object)")
    return state


def submitted_coders(session: Path) -> list[str]:
    """Coders of the session whose pass is submitted."""
    out = []
    for p in sorted((Path(session) / FOLDER).glob("coder-*.state.json")):
        coder = p.name[len("coder-") : -len(".state.json")]
        with contextlib.suppress(LabError):
            if read_state(session, coder).get("submitted"):
                out.append(coder)
    return out


@dataclass
class Draft:
    """The event being marked: any of its key frames, and its labels."""

    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    aus: str = ""
    emotion: str = Emotion.OTHERS.value
    notes: str = ""
    kind_override: str = ""  # "ME" or "MaE" when the coder overrides the rule
    override_reason: str = ""
    editing: str = ""  # id of the saved event being edited, else empty

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Spots:
    candidates: list[Annotation] = field(default_factory=list)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    source: str = ""


class CodingSession:
    """One coder's pass over one session (see the module docstring)."""

    def __init__(self, folder: Path | str, coder: str, spots: Path | None = None,
                 eeg_channels: tuple[str, ...] = ("Fz", "Cz", "Pz")) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.coder = check_coder(coder)
        self.session = open_session(self.folder)
        cam = self.session.streams.get("camera")
        if not isinstance(cam, CameraStream) or not cam.count:
            self.session.close()
            raise LabError(f"{self.folder}: no camera frames to code")
        self.camera = cam
        self.frames = FrameSource(cam)
        self.store, self.numbers, self.times = (
            self.frames.store,
            self.frames.numbers,
            self.frames.times,
        )
        self.fps = float(cam.rate_hz)
        self.first, self.last = self.frames.first, self.frames.last
        self.rule = MeRule()
        self.t0 = float(self.times[0])  # the tracks' zero
        self._closing = False
        self.tracks = TrackSource(self.session, eeg_channels)
        self.markers = self.tracks.markers
        self.spots = self._load_spots(spots)
        self.table = self._load_table()
        state = read_state(self.folder, self.coder)
        self.submitted = bool(state.get("submitted"))
        d = state.get("draft") or {}
        self.draft = Draft(**{k: v for k, v in d.items() if k in Draft().__dict__})
        self.position = int(np.clip(int(state.get("position", self.first)), self.first, self.last))

    # ------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def background_busy(self) -> bool:
        return self.tracks.background_busy

    def start_background(self) -> None:
        """The heart rate from the ECG, in a thread (the tool opens without waiting)."""
        if not self._closing:
            self.tracks.start_background()

    def wait_background(self, timeout: float = 60.0) -> None:
        self.tracks.wait_background(timeout)

    def close(self) -> None:
        self._closing = True
        self.frames.close()
        self.tracks.close()
        self.session.close()

    def __enter__(self) -> CodingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ frames

    def index_of(self, number: int) -> int | None:
        return self.frames.index_of(number)

    def time_of(self, number: float) -> float:
        return self.frames.time_of(number)

    def number_at(self, t: float) -> int:
        """The stored frame nearest to master time ``t``."""
        return self.frames.number_at(t)

    def frame(self, number: int) -> Shown:
        """The frame numbered ``number`` (clamped to the recording); a dropped frame
        comes back without an image and ``gap`` set."""
        number = int(np.clip(number, self.first, self.last))
        self.position = number
        i = self.index_of(number)
        t = self.time_of(number)
        if i is None:
            return Shown(number, None, t, None, gap=True)
        img = self.frames.image(i)
        if not self._closing:
            self.frames.read_ahead(i)
        return Shown(number, i, t, img)

    def step(self, frames: int) -> int:
        """The frame number ``frames`` away from the current one (gaps count as frames:
        a dropped frame is a place in time the coder can land on and see missing)."""
        return int(np.clip(self.position + frames, self.first, self.last))

    def missing(self) -> np.ndarray:
        """Frame numbers the recording does not hold (dropped), in order."""
        return self.frames.missing()

    # ------------------------------------------------------------ tracks

    @property
    def track_names(self) -> list[str]:
        return self.tracks.track_names

    def track(self, name: str, t0: float, t1: float, max_points: int = 4000) -> TrackData:
        """Track ``name`` over master times [t0, t1], at most ``max_points`` points."""
        return self.tracks.track(name, t0, t1, max_points)

    @property
    def heart_rate(self) -> TrackData | None:
        return self.tracks.heart_rate

    @property
    def heart_rate_note(self) -> str:
        return self.tracks.heart_rate_note

    # ------------------------------------------------------------ spotter output

    def _load_spots(self, folder: Path | None) -> Spots:
        if folder is None:
            return Spots()
        folder = Path(folder)
        name = self.folder.name
        table_path = folder / f"{name}_spots.tsv"
        if not table_path.exists():
            raise LabError(f"{folder}: no {table_path.name} (run mmme spot {self.folder} "
                           f"--out {folder})")  # fmt: skip
        spots = Spots(list(read_table(table_path).annotations), {}, str(table_path))
        curves = folder / f"{name}_curves.npz"
        if curves.exists():
            with np.load(curves) as z:
                segs = sorted({k.split("_", 1)[0] for k in z.files if k.endswith("_time")})
                for seg in segs:
                    t = z[f"{seg}_time"]
                    for key in z.files:
                        if key.startswith(seg + "_") and ":" in key:
                            label = key[len(seg) + 1 :]
                            old = spots.curves.get(label)
                            tt, yy = (t, z[key]) if old is None else (
                                np.r_[old[0], t], np.r_[old[1], z[key]])  # fmt: skip
                            spots.curves[label] = (tt, yy)
        return spots

    # ------------------------------------------------------------ marks

    def _load_table(self) -> AnnotationTable:
        path = annotation_path(self.folder, self.coder)
        if path.exists():
            t = read_table(path)
            return AnnotationTable(list(t.annotations), self.fps, self.coder, t.rule)
        return AnnotationTable([], self.fps, self.coder, self.rule)

    def _save(self) -> None:
        path = annotation_path(self.folder, self.coder)
        write_table(self.table, path, (self.numbers, self.times), self.session.manifest.get(
            "session_id", self.folder.name))  # fmt: skip
        self._save_state()

    def _save_state(self) -> None:
        state = {"coder": self.coder, "submitted": self.submitted,
                 "draft": self.draft.to_dict(), "position": self.position,
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        (self.folder / FOLDER).mkdir(exist_ok=True)
        atomic_write(state_path(self.folder, self.coder), json.dumps(state, indent=1))

    def mark(self, key: str, number: int | None = None) -> None:
        """Set the draft's ``onset``, ``apex`` or ``offset`` (default: the current frame)."""
        if key not in ("onset", "apex", "offset"):
            raise ValueError(f"no key frame {key!r}")
        setattr(self.draft, key, int(self.position if number is None else number))
        self._save_state()

    def set_labels(self, aus: str | None = None, emotion: str | None = None,
                   notes: str | None = None) -> None:  # fmt: skip
        if aus is not None:
            parse_aus(aus)  # ValueError names the bad token
            self.draft.aus = aus
        if emotion is not None:
            self.draft.emotion = Emotion(emotion).value
        if notes is not None:
            self.draft.notes = notes
        self._save_state()

    def override_kind(self, kind: str | None, reason: str = "") -> None:
        """Make the draft ``ME`` or ``MaE`` against the rule (a reason is required);
        ``None`` goes back to the rule."""
        if kind is not None:
            Kind(kind)
            if not reason.strip():
                raise ValueError("an override of the ME rule needs a reason")
        self.draft.kind_override = kind or ""
        self.draft.override_reason = reason.strip() if kind else ""
        self._save_state()

    def rule_kind(self, d: Draft | None = None) -> Kind | None:
        d = d or self.draft
        if d.onset is None or d.offset is None:
            return None
        return self.rule.kind(d.onset, d.apex, d.offset, self.fps)

    def draft_problem(self) -> str:
        """Why the draft cannot be saved yet, or empty."""
        d = self.draft
        if d.onset is None or d.offset is None:
            return "mark the onset and the offset"
        if d.offset < d.onset:
            return f"offset {d.offset} is before onset {d.onset}"
        if d.apex is not None and not d.onset <= d.apex <= d.offset:
            return f"apex {d.apex} is outside {d.onset}..{d.offset}"
        try:
            parse_aus(d.aus)
        except ValueError as exc:
            return str(exc)
        return ""

    def commit(self) -> Annotation:
        """Save the draft as an event (new, or the one being edited); written at once."""
        problem = self.draft_problem()
        if problem:
            raise AnnotationError(problem)
        d = self.draft
        assert d.onset is not None and d.offset is not None
        rule = self.rule.kind(d.onset, d.apex, d.offset, self.fps)
        kind = Kind(d.kind_override) if d.kind_override else rule
        reason = d.override_reason if d.kind_override and kind != rule else ""
        ids = {a.id for a in self.table.annotations}
        ev_id = d.editing or next(f"{self.coder}-{k:03d}" for k in range(1, 10**6)
                                  if f"{self.coder}-{k:03d}" not in ids)  # fmt: skip
        ann = Annotation(ev_id, d.onset, d.apex, d.offset, kind, parse_aus(d.aus),
                         Emotion(d.emotion), self.coder, d.notes, reason)  # fmt: skip
        anns = [a for a in self.table.annotations if a.id != ev_id] + [ann]
        self.table = replace(self.table, annotations=sorted(anns, key=lambda a: a.onset))
        self.draft = Draft()
        self._save()
        return ann

    def edit(self, event_id: str) -> None:
        """Load a saved event into the draft (committing replaces it)."""
        a = next((a for a in self.table.annotations if a.id == event_id), None)
        if a is None:
            raise LabError(f"no event {event_id!r} in {self.coder}'s file")
        rule = self.rule.kind(a.onset, a.apex, a.offset, self.fps)
        self.draft = Draft(
            a.onset,
            a.apex,
            a.offset,
            "+".join(str(u) for u in a.aus),
            a.emotion.value,
            a.notes,
            a.kind.value if a.kind != rule else "",
            a.kind_override,
            a.id,
        )
        self._save_state()

    def delete(self, event_id: str) -> None:
        anns = [a for a in self.table.annotations if a.id != event_id]
        if len(anns) == len(self.table.annotations):
            raise LabError(f"no event {event_id!r} in {self.coder}'s file")
        self.table = replace(self.table, annotations=anns)
        self._save()

    def cancel_draft(self) -> None:
        self.draft = Draft()
        self._save_state()

    def submit(self) -> None:
        """Submit the pass: the coder may now see the others' submitted passes."""
        if self.draft.onset is not None or self.draft.offset is not None:
            raise LabError("an event is being marked: save it or cancel it before submitting")
        self.submitted = True
        self._save()

    def others(self) -> dict[str, AnnotationTable]:
        """Other coders' submitted passes - empty until this coder's pass is submitted."""
        if not self.submitted:
            return {}
        out = {}
        for c in submitted_coders(self.folder):
            if c != self.coder and annotation_path(self.folder, c).exists():
                out[c] = read_table(annotation_path(self.folder, c))
        return out

    # ------------------------------------------------------------ navigation

    def _next_of(self, numbers: list[int], forward: bool) -> int | None:
        p = self.position
        cands = [n for n in numbers if (n > p if forward else n < p)]
        if not cands:
            return None
        return min(cands) if forward else max(cands)

    def next_candidate(self, forward: bool = True) -> int | None:
        return self._next_of([a.apex if a.apex is not None else a.onset
                              for a in self.spots.candidates], forward)  # fmt: skip

    def next_marker(self, forward: bool = True) -> int | None:
        return self._next_of([self.number_at(t) for t, _ in self.markers
                              if self.times[0] <= t <= self.times[-1]], forward)  # fmt: skip

    def next_annotation(self, forward: bool = True) -> int | None:
        return self._next_of([a.onset for a in self.table.annotations], forward)

    def loop_span(self) -> tuple[int, int] | None:
        """The interval a loop plays: the draft's onset..offset, else the event under the
        cursor."""
        d = self.draft
        if d.onset is not None and d.offset is not None and d.offset > d.onset:
            return d.onset, d.offset
        for a in self.table.annotations:
            if a.onset <= self.position <= a.offset:
                return a.onset, a.offset
        return None

    def events_on_screen(self) -> Iterator[tuple[str, Annotation]]:
        """(source, event) for this coder's events, then the others' once allowed."""
        for a in self.table.annotations:
            yield self.coder, a
        for c, t in self.others().items():
            for a in t.annotations:
                yield c, a
