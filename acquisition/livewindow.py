"""The last seconds of a signal stream, for live display.

Recorder threads ``push`` every block; the GUI pulls a ``snapshot`` on its own
timer (20-30 Hz). Nothing here is on the recording path's critical side: a push
is one or two array copies under a lock that a snapshot holds only for its copy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Snapshot:
    """``data`` (samples x channels) ends at the newest sample, received at ``t_last``
    (master clock, s); sample ``i`` is at ``t_last - (len(data) - 1 - i) / rate_hz``."""

    data: np.ndarray
    t_last: float
    rate_hz: float
    total: int  # samples pushed since the start

    def times(self) -> np.ndarray:
        n = len(self.data)
        return self.t_last - (n - 1 - np.arange(n)) / self.rate_hz


class SignalWindow:
    """A ring of the newest ``seconds`` of a stream. Thread-safe (one writer, any readers)."""

    def __init__(self, n_channels: int, rate_hz: float, seconds: float = 12.0) -> None:
        self.rate_hz = float(rate_hz)
        self.n = max(1, int(round(seconds * rate_hz)))
        self._buf = np.zeros((self.n, n_channels), np.float32)
        self._lock = threading.Lock()
        self.total = 0
        self.t_last = float("nan")

    def push(self, data: np.ndarray, host_time: float) -> None:
        """Append a block (samples x channels); ``host_time`` is its last sample's arrival."""
        block = np.asarray(data, np.float32)[-self.n :]
        k = len(block)
        if not k:
            return
        with self._lock:
            start = self.total % self.n
            first = min(k, self.n - start)
            self._buf[start : start + first] = block[:first]
            if first < k:
                self._buf[: k - first] = block[first:]
            self.total += len(data)
            self.t_last = host_time

    def snapshot(self, seconds: float, channels: Sequence[int] | None = None) -> Snapshot:
        """A copy of the newest ``seconds`` (fewer before they exist) of ``channels``."""
        want = min(self.n, int(round(seconds * self.rate_hz)))
        cols = slice(None) if channels is None else list(channels)
        with self._lock:
            have = min(want, self.total)
            end = self.total % self.n
            idx = np.arange(end - have, end) % self.n
            if channels is None:
                data = self._buf[idx]
            else:
                data = self._buf[np.ix_(idx, np.asarray(cols, dtype=np.intp))]
            return Snapshot(np.ascontiguousarray(data), self.t_last, self.rate_hz, self.total)
