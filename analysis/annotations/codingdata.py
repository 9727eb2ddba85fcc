"""What the coding tool reads from a session, without Qt: the camera's frames by
their own numbers (:class:`FrameSource`: reduced for the screen, cached, read ahead
in a background thread) and the tracks on the master clock (:class:`TrackSource`:
physiology, chosen EEG channels, the heart rate computed in the background, the
session's markers), read from the HDF5 file in windows. The model that uses them
is :class:`mmmelab.analysis.annotations.coding.CodingSession`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmmelab.analysis.annotations.table import event_times
from mmmelab.analysis.face.cv import opencv
from mmmelab.storage import CameraStream, SignalStream
from mmmelab.storage.frames import BAYER_OFFSETS
from mmmelab.sync.codes import EventCode

PHYSIO_TRACKS = ("ECG", "PPG", "EDA", "RSP", "SKT")
READ_AHEAD = 12  # frames either side kept ready
CACHE_FRAMES = 64


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


class FrameSource:
    """The camera's frames by number (the journal's ``acq_nframe``; a dropped frame is
    a gap), as half-size RGB for the screen. ``image`` may be called from any thread."""

    def __init__(self, cam: CameraStream) -> None:
        self.store = cam.frames
        self.numbers = cam.journal["acq_nframe"].astype(np.int64)
        self.times = np.asarray(cam.master_time, dtype=np.float64)
        self.first, self.last = int(self.numbers[0]), int(self.numbers[-1])
        self._reader = self.store.row_reader(0, self.store.height)
        self._luts = white_balance_luts(self.store.white_balance)
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ahead: threading.Thread | None = None
        self._ahead_cond = threading.Condition()
        self._ahead_gen = 0
        self._ahead_center = 0
        self._closing = False

    def close(self) -> None:
        with self._ahead_cond:
            self._closing = True
            self._ahead_cond.notify_all()
        if self._ahead is not None:
            self._ahead.join(30)

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

    def image(self, index: int, reader: Any = None) -> np.ndarray:
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

    def read_ahead(self, i: int) -> None:
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
                self.image(j, reader)
            else:
                done_gen = gen

    def missing(self) -> np.ndarray:
        """Frame numbers the recording does not hold (dropped), in order."""
        jumps = np.flatnonzero(np.diff(self.numbers) > 1)
        parts = [np.arange(self.numbers[k] + 1, self.numbers[k + 1]) for k in jumps]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class TrackSource:
    """The tracks of a session on the master clock; the heart rate is computed on
    ``start_background`` in a thread (``coding-heart-rate``)."""

    def __init__(self, session: Any, eeg_channels: tuple[str, ...]) -> None:
        self.session = session
        self._signals: dict[str, tuple[SignalStream, int, str]] = {}
        self._signal_times: dict[str, np.ndarray] = {}
        self._window: dict[str, tuple[tuple[str, int, int], np.ndarray]] = {}
        self._find_tracks(eeg_channels)
        self.markers = self._markers()
        self.heart_rate: TrackData | None = None
        self.heart_rate_note = "computing ..."
        self._hr_thread: threading.Thread | None = None
        self._closing = False

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
        self._closing = True
        if self._hr_thread is not None:
            self._hr_thread.join(30)

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
