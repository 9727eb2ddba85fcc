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
from typing import Any

import numpy as np

from mmmelab.streams import StreamHealth, SyncState
from mmmelab.sync.align import robust_line
from mmmelab.sync.codes import code_onsets

MATCH_WINDOW_S = 0.015  # rough master time vs marker time, when the clock map misses
RESIDUAL_LIMIT_MS = 2.0  # live residual above this is reported (USB latency jitter ~1 ms)
SETTLE_S = 0.05  # an edge is matched once markers up to this much later are known


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
        self._pending: list[tuple[str, float, int | None, float, bool]] = []
        self._now = float("-inf")
        self._seen: dict[str, float] = {}  # newest edge received per stream (rough master time)

    def marker(self, t_on: float, code: int, t_off: float) -> None:
        """A marker was sent. Its record arrives after the pulse, so edges wait for it."""
        with self._lock:
            self._markers.append((t_on + self.box_latency_s, int(code), t_off + self.box_latency_s))
            self._now = max(self._now, t_off)
            self._drain()

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
            for k in range(len(device_t)):
                if device_t[k] < self._last_device.get(stream, -np.inf) - 1e-3:
                    # the device clock was reset: a new map, without the old-clock edges
                    self._pairs.pop(stream, None)
                    self._pending = [e for e in self._pending if e[0] != stream]
                self._last_device[stream] = float(device_t[k])
                self._pending.append(
                    (
                        stream,
                        float(device_t[k]),
                        None if codes is None else int(codes[k]),
                        float(approx_master[k]),
                        True if rising is None else bool(rising[k]),
                    )
                )
                self._now = max(self._now, float(approx_master[k]))
                self._seen[stream] = max(self._seen.get(stream, -np.inf), float(approx_master[k]))
            self._drain()

    def seen(self) -> dict[str, float]:
        """Per stream that reported edges, the rough master time of its newest edge."""
        with self._lock:
            return dict(self._seen)

    def _drain(self) -> None:
        """Match the edges whose marker must be known by now: a marker at least
        ``SETTLE_S`` younger has arrived, or the edge is a second old."""
        newest = self._markers[-1][0] if self._markers else float("-inf")
        waiting = []
        for edge in self._pending:
            approx = edge[3]
            if newest >= approx + SETTLE_S or self._now - approx > 1.0:
                self._match(*edge)
            else:
                waiting.append(edge)
        self._pending = waiting

    def _match(
        self, stream: str, device_t: float, code: int | None, approx: float, rising: bool
    ) -> None:
        pairs = self._pairs.setdefault(stream, deque(maxlen=self.window))
        marks = np.array(self._markers) if self._markers else np.zeros((0, 3))
        if code is not None:
            cand = marks[marks[:, 1] == code][:, 0]
        else:
            cand = marks[:, 0] if rising else marks[:, 2]
        if not len(cand):
            return
        # by the current map first; by the rough master time when the map misses
        # (a poor early map, or one that no longer holds, must not lock us out)
        model = self._model(stream)
        # coded markers of one code are seconds apart; the camera's (uncoded) 40 ms apart
        guesses = [(approx, MATCH_WINDOW_S if code is None else 2 * MATCH_WINDOW_S)]
        if model:
            guesses.insert(0, (model[0] + model[1] * device_t, 0.02))
        for guess, tol in guesses:
            j = int(np.argmin(np.abs(cand - guess)))
            if abs(cand[j] - guess) <= tol:
                pairs.append((device_t, float(cand[j])))
                self._last_edge[stream] = approx
                return

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
                out[name] = self._health(name, now, sent_recently)
        return out

    def _health(self, name: str, now: float, sent_recently: bool) -> StreamHealth:
        """One stream's health now (with the lock held)."""
        h: dict[str, Any] = {}
        pairs = self._pairs.get(name)
        if pairs:
            h["edges"] = len(pairs)
            h["last_edge_age_s"] = now - self._last_edge.get(name, now)
        model = self._model(name)
        if model and pairs:
            a, b = model
            x, y = np.array(pairs).T
            r = y - (a + b * x)
            _, _, inliers = robust_line(x, y, floor_s=0.002)
            residual = float(np.sqrt(np.mean(r[inliers] ** 2)) * 1e3)
            h["residual_ms"] = residual
            h["drift_ppm"] = (1.0 / b - 1.0) * 1e6
            h["offset_ms"] = (a + (b - 1.0) * self._last_device[name]) * 1e3
            h["state"] = SyncState.OK
            limit = self.residual_limit_ms.get(name, RESIDUAL_LIMIT_MS)
            if residual > limit:
                h["state"] = SyncState.RESIDUAL_HIGH
                h["message"] = f"{name}: sync residual {residual:.2f} ms (limit {limit:g} ms)"
        first = self._markers[0][0] if self._markers else now
        silent = (
            h["last_edge_age_s"] > self.lost_after_s if pairs else now - first > self.lost_after_s
        )
        if sent_recently and silent:
            h["state"] = SyncState.NO_TRIGGERS
            h["message"] = (
                f"{name}: no trigger edge matched for {self.lost_after_s:g} s while markers "
                f"were sent - check the trigger cable"
            )
        return StreamHealth(**h)


def new_edges(prev_level: int, levels: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices where ``levels`` changes to a non-zero value, and the last level."""
    if not len(levels):
        return np.zeros(0, dtype=np.int64), prev_level
    return code_onsets(levels, prev_level), int(levels[-1])
