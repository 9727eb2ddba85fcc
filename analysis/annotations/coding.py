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
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

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
    atomic_write,
    event_times,
    read_table,
    write_table,
)
from mmmelab.analysis.face.cv import opencv
from mmmelab.errors import LabError
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.storage.frames import BAYER_OFFSETS
from mmmelab.sync.codes import EventCode

PHYSIO_TRACKS = ("ECG", "PPG", "EDA", "RSP", "SKT")
#: what the AU picker offers: MMME Table 2's 21 AUs, DFME's others, its head codes
PICKER_AUS = (*sorted({*MMME_AUS, *DFME_AUS}), *DFME_MISC)
EMOTIONS = tuple(e.value for e in Emotion)
KINDS = tuple(k.value for k in Kind)
SPEEDS = (1.0, 1 / 5, 1 / 10, 1 / 30)
READ_AHEAD = 12  # frames either side kept ready
CACHE_FRAMES = 64
_CODER_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def display_rgb(raw: np.ndarray, pattern: str, luts: np.ndarray) -> np.ndarray:
    """The mosaic at half size for the screen, uint8 RGB: per 2x2 cell R, the mean of
    both G, B (as ``analysis.face.frames`` reduces it, to within rounding), each through
    its channel's white-balance table (``white_balance_luts``); OpenCV's table lookups,
    about 1.7 ms for a 2040x1080 frame, and nothing to compile at start."""
    cv2 = opencv()
    (ry, rx), (g1y, g1x), (g2y, g2x), (by, bx) = BAYER_OFFSETS[pattern]
    h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2

    def plane(y: int, x: int) -> np.ndarray:
        return np.ascontiguousarray(raw[y:h:2, x:w:2])

    out = np.empty((h // 2, w // 2, 3), np.uint8)
    out[:, :, 0] = cv2.LUT(plane(ry, rx), luts[0])
    # the mean of both greens, rounded (OpenCV's saturating arithmetic, SIMD)
    out[:, :, 1] = cv2.LUT(cv2.addWeighted(plane(g1y, g1x), 0.5, plane(g2y, g2x), 0.5, 0.0),
                           luts[1])  # fmt: skip
    out[:, :, 2] = cv2.LUT(plane(by, bx), luts[2])
    return out


def white_balance_luts(gains: tuple[float, float, float]) -> np.ndarray:
    levels = np.arange(256, dtype=np.float64)
    return np.stack([np.minimum(255.0, levels * k + 0.5) for k in gains]).astype(np.uint8)


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
class Shown:
    number: int  # the frame number asked for
    index: int | None  # stored index; None when that frame was dropped
    t: float  # master time (interpolated for a dropped frame)
    image: np.ndarray | None  # (h, w, 3) uint8 at half the sensor's size
    gap: bool = False


@dataclass
class TrackData:
    name: str
    unit: str
    t: np.ndarray
    y: np.ndarray


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
        self.store = cam.frames
        self.numbers = cam.journal["acq_nframe"].astype(np.int64)
        self.times = np.asarray(cam.master_time, dtype=np.float64)
        self.fps = float(cam.rate_hz)
        self.first, self.last = int(self.numbers[0]), int(self.numbers[-1])
        self.rule = MeRule()
        self.t0 = float(self.times[0])  # the tracks' zero
        self._reader = self.store.row_reader(0, self.store.height)
        self._luts = white_balance_luts(self.store.white_balance)
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ahead: threading.Thread | None = None
        self._ahead_cond = threading.Condition()
        self._ahead_gen = 0
        self._ahead_center = 0
        self._closing = False
        self.markers = self._markers()
        self._signals: dict[str, tuple[SignalStream, int, str]] = {}
        self._signal_times: dict[str, np.ndarray] = {}
        self._window: dict[str, tuple[tuple[str, int, int], np.ndarray]] = {}
        self._find_tracks(eeg_channels)
        self.heart_rate: TrackData | None = None
        self.heart_rate_note = "computing ..."
        self._hr_thread: threading.Thread | None = None
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
        return self._hr_thread is not None and self._hr_thread.is_alive()

    def start_background(self) -> None:
        """The heart rate from the ECG, in a thread (the tool opens without waiting)."""
        if self._closing:
            return
        if self._hr_thread is None and "ECG" in self._signals:
            self._hr_thread = threading.Thread(target=self._compute_heart_rate, daemon=True,
                                               name="coding-heart-rate")  # fmt: skip
            self._hr_thread.start()
        elif "ECG" not in self._signals:
            self.heart_rate_note = "no ECG in this session"

    def wait_background(self, timeout: float = 60.0) -> None:
        if self._hr_thread is not None:
            self._hr_thread.join(timeout)

    def close(self) -> None:
        with self._ahead_cond:
            self._closing = True
            self._ahead_cond.notify_all()
        for th in (self._ahead, self._hr_thread):
            if th is not None:
                th.join(30)
        self.session.close()

    def __enter__(self) -> CodingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ frames

    def index_of(self, number: int) -> int | None:
        i = int(np.searchsorted(self.numbers, number))
        return i if i < len(self.numbers) and self.numbers[i] == number else None

    def time_of(self, number: float) -> float:
        return float(event_times(self.numbers, self.times, np.array([number]))[0])

    def number_at(self, t: float) -> int:
        """The stored frame nearest to master time ``t``."""
        i = int(np.clip(np.searchsorted(self.times, t), 1, len(self.times) - 1))
        if abs(self.times[i - 1] - t) <= abs(self.times[i] - t):
            i -= 1
        return int(self.numbers[i])

    def _image(self, index: int, reader: Any = None) -> np.ndarray:
        with self._cache_lock:
            hit = self._cache.get(index)
            if hit is not None:
                self._cache.move_to_end(index)
                return hit
        raw = (reader or self._reader).read(index)  # each thread its own reader
        out = display_rgb(raw, self.store.bayer_pattern, self._luts)
        with self._cache_lock:
            self._cache[index] = out
            while len(self._cache) > CACHE_FRAMES:
                self._cache.popitem(last=False)
        return out

    def frame(self, number: int) -> Shown:
        """The frame numbered ``number`` (clamped to the recording); a dropped frame
        comes back without an image and ``gap`` set."""
        number = int(np.clip(number, self.first, self.last))
        self.position = number
        i = self.index_of(number)
        t = self.time_of(number)
        if i is None:
            return Shown(number, None, t, None, gap=True)
        img = self._image(i)
        self._read_ahead(i)
        return Shown(number, i, t, img)

    def _read_ahead(self, i: int) -> None:
        """Frames around ``i`` read in a background thread, nearest (and forward) first;
        a new position abandons the old one's list at once, so a seek never waits."""
        if self._closing:
            return
        with self._ahead_cond:
            self._ahead_center = i
            self._ahead_gen += 1
            self._ahead_cond.notify()
        if self._ahead is None:
            self._ahead = threading.Thread(target=self._ahead_loop, daemon=True,
                                           name="coding-read-ahead")  # fmt: skip
            self._ahead.start()

    def _ahead_loop(self) -> None:
        reader = self.store.row_reader(0, self.store.height)
        done_gen = 0
        while True:
            with self._ahead_cond:
                while not self._closing and self._ahead_gen == done_gen:
                    self._ahead_cond.wait(1.0)
                if self._closing:
                    return
                gen, i = self._ahead_gen, self._ahead_center
            lo, hi = max(0, i - READ_AHEAD), min(len(self.numbers), i + READ_AHEAD + 1)
            order = sorted(range(lo, hi), key=lambda j: (abs(j - i), j < i))
            for j in order:
                if self._closing or self._ahead_gen != gen:
                    break
                self._image(j, reader)
            else:
                done_gen = gen

    def step(self, frames: int) -> int:
        """The frame number ``frames`` away from the current one (gaps count as frames:
        a dropped frame is a place in time the coder can land on and see missing)."""
        return int(np.clip(self.position + frames, self.first, self.last))

    def missing(self) -> np.ndarray:
        """Frame numbers the recording does not hold (dropped), in order."""
        jumps = np.flatnonzero(np.diff(self.numbers) > 1)
        parts = [np.arange(self.numbers[k] + 1, self.numbers[k + 1]) for k in jumps]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    # ------------------------------------------------------------ tracks

    def _markers(self) -> list[tuple[float, str]]:
        m = self.session.markers
        if not len(m):
            return []
        out = []
        for code, label, t in zip(m["code"], m["label"], m["t_on"], strict=True):
            if int(code) == EventCode.SYNC:  # the clock's pulses: nothing a coder looks for
                continue
            try:
                name = EventCode(int(code)).name.lower()
            except ValueError:
                name = f"code {int(code)}"
            text = label.decode(errors="replace") if isinstance(label, bytes) else str(label)
            out.append((float(t), f"{name} {text}".strip()))
        return out

    def _find_tracks(self, eeg_channels: tuple[str, ...]) -> None:
        for name, stream in self.session.streams.items():
            if not isinstance(stream, SignalStream):
                continue
            low = [c.lower() for c in stream.channels]
            if stream.kind == "eeg" or name == "eeg":
                for ch in eeg_channels:
                    if ch.lower() in low:
                        self._signals[f"EEG {ch}"] = (stream, low.index(ch.lower()), stream.units)
            else:
                for mod in PHYSIO_TRACKS:
                    hits = [i for i, c in enumerate(low) if c == mod.lower()
                            or c.startswith(mod.lower() + " ")]  # fmt: skip
                    if hits:
                        unit = stream.attrs.get("units", {}) if stream.attrs else {}
                        self._signals[mod] = (stream, hits[0], str(unit.get(mod, "")) if
                                              isinstance(unit, dict) else "")  # fmt: skip

    @property
    def track_names(self) -> list[str]:
        order = [*PHYSIO_TRACKS[:1], "HR", *PHYSIO_TRACKS[1:]]
        names = [n for n in order if n in self._signals or (n == "HR" and "ECG" in self._signals)]
        return names + [n for n in self._signals if n.startswith("EEG ")]  # as asked

    def _times_of(self, stream: SignalStream) -> np.ndarray:
        t = self._signal_times.get(stream.name)
        if t is None:
            t = self._signal_times[stream.name] = np.asarray(stream.master_time, np.float64)
        return t

    def track(self, name: str, t0: float, t1: float, max_points: int = 4000) -> TrackData:
        """Track ``name`` over master times [t0, t1], at most ``max_points`` points
        (min-max pairs per bin when the window holds more samples, so a spike shows)."""
        if name == "HR":
            hr = self.heart_rate
            if hr is None:
                return TrackData(name, "bpm", np.zeros(0), np.zeros(0))
            a, b = np.searchsorted(hr.t, [t0, t1])
            return TrackData(name, "bpm", hr.t[a:b], hr.y[a:b])
        stream, col, unit = self._signals[name]
        t = self._times_of(stream)
        a, b = (int(v) for v in np.searchsorted(t, [t0, t1]))
        if b <= a:
            return TrackData(name, unit, np.zeros(0), np.zeros(0))
        y = np.asarray(self._rows(stream, a, b)[:, col], dtype=np.float64)
        tt = t[a:b]
        if len(y) > max_points:
            bins = max_points // 2
            edges = np.linspace(0, len(y), bins + 1).astype(np.int64)
            lo = np.minimum.reduceat(y, edges[:-1])
            hi = np.maximum.reduceat(y, edges[:-1])
            y = np.column_stack([lo, hi]).ravel()
            tt = np.repeat(tt[edges[:-1]], 2)
        return TrackData(name, unit, tt, y)

    def _rows(self, stream: SignalStream, a: int, b: int) -> np.ndarray:
        """Samples [a, b) of every channel of ``stream``, read once for all its tracks
        (HDF5 stores the channels of a sample together: one read, not one per track)."""
        key = (stream.name, a, b)
        hit = self._window.get(stream.name)
        if hit is not None and hit[0] == key:
            return hit[1]
        rows = np.asarray(stream.data[a:b])
        self._window[stream.name] = (key, rows)
        return rows

    def _compute_heart_rate(self) -> None:
        from mmmelab.analysis.physio.preprocess import PhysioParams, from_arrays

        stream, col, _ = self._signals["ECG"]
        try:
            x = np.asarray(stream.data[:, col], dtype=np.float64)
            t = self._times_of(stream)
            data = from_arrays({"ECG": x}, stream.rate_hz, params=PhysioParams(), t=t)
        except (OSError, ValueError) as exc:
            self.heart_rate_note = f"heart rate not computed: {exc}"
            return
        if data.heart_rate is None:
            self.heart_rate_note = data.problems.get("ECG", "no heart rate")
            return
        step = max(1, int(data.rate_hz // 20))  # 20 points a second is plenty to draw
        self.heart_rate = TrackData("HR", "bpm", data.t[::step], data.heart_rate[::step])
        self.heart_rate_note = f"{len(data.rpeaks)} R peaks (NeuroKit2)"

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
