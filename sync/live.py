"""Live sync health: a running clock map per stream while recording.

Recorders report the trigger edges they see (device time, code, and an
approximate master time from the host receive time); the trigger bus reports
every marker it sends. Each edge is paired with the marker of the same code
closest to its approximate time (the camera, which sees no codes, pairs by time
alone), and a robust line over the most recent pairs gives the stream's current
offset, drift and residual - for the console to show. ``status`` also says when
a stream stopped seeing its triggers or its residual grew, so the experimenter
learns of a loose trigger cable during the session, not after it.

Thread-safe: ``marker`` runs on the bus thread, ``edges`` on recorder threads,
``status`` on the control or GUI thread.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from mmmelab.sync.align import robust_line

MATCH_WINDOW_S = 0.15  # host receive time vs marker time, before a clock map exists


@dataclass
class StreamHealth:
    state: str = "waiting"  # waiting | ok | no_triggers | residual_high
    edges: int = 0
    offset_ms: float = float("nan")  # master minus device time now, ms
    drift_ppm: float = float("nan")
    residual_ms: float = float("nan")
    last_edge_age_s: float = float("nan")
    message: str = ""


class LiveSync:
    """Running alignment of every stream against the markers sent."""

    def __init__(
        self,
        box_latency_s: float = 0.0,
        window: int = 40,
        lost_after_s: float = 15.0,
        residual_limit_ms: dict[str, float] | None = None,
    ) -> None:
        self.box_latency_s = box_latency_s
        self.window = window
        self.lost_after_s = lost_after_s
        self.residual_limit_ms = residual_limit_ms or {"camera": 5.0}
        self._lock = threading.Lock()
        self._markers: deque[tuple[float, int, float]] = deque(maxlen=500)  # on, code, off
        self._pairs: dict[str, deque[tuple[float, float]]] = {}
        self._last_edge: dict[str, float] = {}
        self._last_device: dict[str, float] = {}

    def marker(self, t_on: float, code: int, t_off: float) -> None:
        with self._lock:
            self._markers.append((t_on + self.box_latency_s, int(code), t_off + self.box_latency_s))

    def edges(
        self,
        stream: str,
        device_t: np.ndarray,
        codes: np.ndarray | None,
        approx_master: np.ndarray,
        rising: np.ndarray | None = None,
    ) -> None:
        """New edges of ``stream``; ``codes`` None for the camera (then ``rising`` says
        which edges are pulse onsets)."""
        with self._lock:
            if not self._markers:
                return
            marks = np.array(self._markers)
            pairs = self._pairs.setdefault(stream, deque(maxlen=self.window))
            model = self._model(stream)
            for k in range(len(device_t)):
                guess = model[0] + model[1] * device_t[k] if model else approx_master[k]
                if codes is not None:
                    cand = marks[marks[:, 1] == codes[k]][:, 0]
                else:
                    cand = marks[:, 0] if rising is None or rising[k] else marks[:, 2]
                if not len(cand):
                    continue
                j = int(np.argmin(np.abs(cand - guess)))
                tol = 0.02 if model else MATCH_WINDOW_S
                if abs(cand[j] - guess) <= tol:
                    pairs.append((float(device_t[k]), float(cand[j])))
                    self._last_edge[stream] = float(approx_master[k])
                    self._last_device[stream] = float(device_t[k])

    def _model(self, stream: str) -> tuple[float, float] | None:
        pairs = self._pairs.get(stream)
        if not pairs or len(pairs) < 4:
            return None
        x, y = np.array(pairs).T
        if np.ptp(x) < 1.0:
            return float(np.mean(y - x)), 1.0
        a, b, _ = robust_line(x, y, floor_s=0.002)
        return a, b

    def status(self, now: float, streams: list[str]) -> dict[str, StreamHealth]:
        out = {}
        with self._lock:
            sent_recently = any(now - m[0] < self.lost_after_s for m in self._markers)
            for name in streams:
                h = StreamHealth()
                pairs = self._pairs.get(name)
                if pairs:
                    h.edges = len(pairs)
                    h.last_edge_age_s = now - self._last_edge.get(name, now)
                model = self._model(name)
                if model and pairs:
                    a, b = model
                    x, y = np.array(pairs).T
                    r = y - (a + b * x)
                    h.residual_ms = float(np.sqrt(np.mean(r**2)) * 1e3)
                    h.drift_ppm = (1.0 / b - 1.0) * 1e6
                    h.offset_ms = (a + (b - 1.0) * self._last_device[name]) * 1e3
                    h.state = "ok"
                    limit = self.residual_limit_ms.get(name, 1.0)
                    if h.residual_ms > limit:
                        h.state = "residual_high"
                        h.message = (
                            f"{name}: sync residual {h.residual_ms:.2f} ms (limit {limit:g} ms)"
                        )
                if sent_recently and (not pairs or h.last_edge_age_s > self.lost_after_s):
                    h.state = "no_triggers"
                    h.message = (
                        f"{name}: no trigger edge matched for "
                        f"{self.lost_after_s:g} s while markers were sent - check the "
                        f"trigger cable"
                    )
                out[name] = h
        return out


def new_edges(prev_level: int, levels: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices where ``levels`` changes to a non-zero value, and the last level."""
    if not len(levels):
        return np.zeros(0, dtype=np.int64), prev_level
    prev = np.concatenate([[prev_level], levels[:-1]])
    return np.flatnonzero((levels != prev) & (levels != 0)), int(levels[-1])
