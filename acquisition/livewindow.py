"""The last seconds of a signal stream, for live display.

Recorder threads ``push`` every block; the console pulls a ``snapshot`` on its own
timer (20-30 Hz), in this process or, for a window made with ``shared=True``, in
another one that ``attach``-es to it by its :class:`WindowRef`. Nothing here is on
the recording path's critical side: a push is one or two array copies and two
counter writes; a snapshot takes no lock. It reads the sample count, copies the
samples it wants and checks that the writer has not come round to them meanwhile
(the ring keeps ``SLACK_S`` more than it shows, so that practically never happens).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from mmmelab.storage.ringbuffer import _attach_untracked, segment_name

SLACK_S = 1.0  # kept beyond what a snapshot may show: room for pushes during a copy
HEADER = 6  # int64 words: total, t_last and rate (float64 bits), n_channels, seq, spare
H_TOTAL, H_T_LAST, H_RATE, H_CHANNELS, H_SEQ = 0, 1, 2, 3, 4  # seq: odd while updating


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


@dataclass(frozen=True)
class WindowRef:
    """What another process needs to attach to a shared window."""

    name: str
    n_channels: int
    rate_hz: float
    n: int  # samples in the ring
    shown: int  # at most this many samples in a snapshot


class SignalWindow:
    """A ring of the newest ``seconds`` of a stream: one writer thread, any readers
    (threads of this process, or other processes when ``shared``)."""

    def __init__(
        self, n_channels: int, rate_hz: float, seconds: float = 12.0, shared: bool = False
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.shown = max(1, int(round(seconds * rate_hz)))
        self.n = self.shown + max(1, int(round(SLACK_S * rate_hz)))
        self._shm: shared_memory.SharedMemory | None = None
        self._owner = shared
        if shared:
            size = HEADER * 8 + self.n * n_channels * 4
            self._shm = shared_memory.SharedMemory(segment_name("window"), create=True, size=size)
            self._map(self._shm, n_channels)
        else:
            self._head = np.zeros(HEADER, np.int64)
            self._buf = np.zeros((self.n, n_channels), np.float32)
        self._head[H_TOTAL] = self._head[H_SEQ] = 0
        self._head[H_T_LAST : H_RATE + 1].view(np.float64)[:] = (np.nan, self.rate_hz)
        self._head[H_CHANNELS] = n_channels
        self._write_lock = threading.Lock()  # one writer at a time, should two ever push

    def _map(self, shm: shared_memory.SharedMemory, n_channels: int) -> None:
        self._head = np.ndarray((HEADER,), np.int64, buffer=shm.buf)
        self._buf = np.ndarray((self.n, n_channels), np.float32, buffer=shm.buf, offset=HEADER * 8)

    @classmethod
    def attach(cls, ref: WindowRef) -> SignalWindow:
        """A reader of the shared window ``ref`` (made in another process)."""
        self = cls.__new__(cls)
        self.rate_hz, self.shown, self.n = ref.rate_hz, ref.shown, ref.n
        self._owner = False
        self._shm = _attach_untracked(ref.name)
        self._map(self._shm, ref.n_channels)
        self._write_lock = threading.Lock()
        return self

    @property
    def ref(self) -> WindowRef | None:
        """How to attach to this window from another process (None unless shared)."""
        if self._shm is None:
            return None
        n_channels = int(self._head[H_CHANNELS])
        return WindowRef(self._shm.name, n_channels, self.rate_hz, self.n, self.shown)

    @property
    def total(self) -> int:
        return int(self._head[H_TOTAL])

    @property
    def t_last(self) -> float:
        return float(self._head[H_T_LAST : H_T_LAST + 1].view(np.float64)[0])

    def push(self, data: np.ndarray, host_time: float) -> None:
        """Append a block (samples x channels); ``host_time`` is its last sample's arrival."""
        block = np.asarray(data, np.float32)[-self.n :]
        k = len(block)
        if not k:
            return
        with self._write_lock:
            total = int(self._head[H_TOTAL])
            start = total % self.n
            first = min(k, self.n - start)
            self._buf[start : start + first] = block[:first]
            if first < k:
                self._buf[: k - first] = block[first:]
            self._head[H_SEQ] += 1
            self._head[H_T_LAST : H_T_LAST + 1].view(np.float64)[0] = host_time
            self._head[H_TOTAL] = total + len(data)  # after the data: readers trust it
            self._head[H_SEQ] += 1

    def snapshot(self, seconds: float, channels: Sequence[int] | None = None) -> Snapshot:
        """A copy of the newest ``seconds`` (fewer before they exist) of ``channels``."""
        want = min(self.shown, int(round(seconds * self.rate_hz)))
        cols = None if channels is None else np.asarray(list(channels), dtype=np.intp)
        for _ in range(100):
            total, t_last = self._newest()
            have = min(want, total)
            idx = np.arange(total - have, total) % self.n
            data = self._buf[idx] if cols is None else self._buf[np.ix_(idx, cols)]
            if int(self._head[H_TOTAL]) - (total - have) <= self.n:  # nothing overwritten
                return Snapshot(np.ascontiguousarray(data), t_last, self.rate_hz, total)
        raise RuntimeError("signal window: the writer kept overtaking the reader")

    def _newest(self) -> tuple[int, float]:
        """The sample count and the newest sample's time, read as a matching pair."""
        while True:
            seq = int(self._head[H_SEQ])
            total, t_last = int(self._head[H_TOTAL]), self.t_last
            if seq % 2 == 0 and int(self._head[H_SEQ]) == seq:
                return total, t_last

    def close(self) -> None:
        """Detach (the maker also frees the shared memory); a no-op when not shared."""
        if self._shm is None:
            return
        shm, self._shm = self._shm, None
        self._head = np.zeros(HEADER, np.int64)
        self._buf = np.zeros((0, 0), np.float32)
        shm.close()
        if self._owner:
            shm.unlink()
