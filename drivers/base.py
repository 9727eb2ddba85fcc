"""What every sampled-signal driver hands to the engine.

A driver connects, describes its stream (:class:`SignalLayout`), then returns
:class:`SampleBlock` objects from ``read(timeout_s)``. Anything that went wrong
on the way - a gap in the device's sample index, garbage bytes skipped, a
reconnect - becomes a :class:`DeviceFault` in ``driver.faults``, which the
engine drains into the session, so nothing is lost silently.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mmmelab.errors import DeviceLostError, DeviceTimeoutError
from mmmelab.streams import FaultKind, SignalLayout


@dataclass
class SampleBlock:
    """Consecutive samples. ``first_sample`` is the device's own sample index."""

    first_sample: int
    data: np.ndarray  # (n, channels) float32
    host_time: float  # master clock when the block arrived
    aux: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceFault:
    """Something a driver noticed (a gap, a malformed packet, ...): when (master clock, s),
    what kind, how many, in a line."""

    host_time: float
    kind: FaultKind
    count: int
    detail: str


class SignalDriver(Protocol):
    """What the recorders need from a signal device: connect (its layout), start, read
    blocks (on the recorder's thread), info, close."""

    name: str
    faults: list[DeviceFault]

    def connect(self) -> SignalLayout: ...
    def start(self) -> None: ...
    def read(self, timeout_s: float) -> list[SampleBlock]: ...
    def info(self) -> dict[str, object]: ...
    def close(self) -> None: ...


def recv_exact(sock: socket.socket, n: int, device: str, max_stalls: int = 20) -> bytes:
    """Read exactly ``n`` bytes (TCP may split anywhere); the socket's timeout applies.

    Before the first byte a timeout raises DeviceTimeoutError (nothing lost). Once a
    message has begun, up to ``max_stalls`` timeouts are waited out; then the
    connection counts as lost rather than hanging forever.
    """
    buf = bytearray()
    stalls = 0
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            if not buf:
                raise DeviceTimeoutError(device, "no data within the timeout") from None
            stalls += 1
            if stalls > max_stalls:
                raise DeviceLostError(
                    device, f"stalled mid-message ({len(buf)}/{n} bytes)"
                ) from None
            continue
        except OSError as exc:
            raise DeviceLostError(device, f"connection lost ({exc})") from None
        if not chunk:
            raise DeviceLostError(device, "the server closed the connection")
        buf += chunk
    return bytes(buf)


class ArrivalGapWatcher:
    """Spots samples a stream without sample indices never delivered, from arrival timing.

    For each block, the lag between its arrival (master clock) and its last
    sample's time on the counted sample axis has a floor set by the transport. A
    stall raises it only until the burst catches up, clock drift moves it by
    fractions of a millisecond per window, but lost samples raise the floor for
    good by their duration. ``check`` compares the floor window by window and
    returns the estimated number of missing samples (0 when none); the caller
    advances its sample count by that much and records an estimated gap.
    """

    def __init__(self, rate_hz: float, min_gap_s: float, window_s: float = 2.0) -> None:
        self.rate_hz = rate_hz
        self.min_gap_s = min_gap_s
        self.window_s = window_s
        self._window: tuple[float, float, float | None] | None = None

    def reset(self) -> None:
        self._window = None

    def check(self, now: float, samples_after: int) -> int:
        lag = now - samples_after / self.rate_hz
        if self._window is None:
            self._window = (now, lag, None)
            return 0
        start, floor, previous = self._window
        floor = min(floor, lag)
        if now - start < self.window_s:
            self._window = (start, floor, previous)
            return 0
        missing = 0
        if previous is not None and floor - previous >= self.min_gap_s:
            missing = int(round((floor - previous) * self.rate_hz))
            floor -= missing / self.rate_hz
        self._window = (now, lag - missing / self.rate_hz, floor)
        return missing


class EstimatedGaps:
    """Gap bookkeeping of a stream whose device sends no sample index (Acquire, NDT).

    Two ways samples go missing without the device saying so: across a broken
    delivery (estimated from the host clock, from the last block before the break
    to the first after it) and silently (estimated from arrival timing by
    :class:`ArrivalGapWatcher`). ``account`` returns how many samples went missing
    before a block, so the driver moves its sample count on by that much, and the
    :class:`DeviceFault` saying so (``None`` when nothing is to be said). Runs on the
    driver's reading thread.
    """

    def __init__(self, rate_hz: float, min_gap_s: float, why: str) -> None:
        self.rate_hz = rate_hz
        self.why = why  # e.g. "Acquire carries no sample index"
        self.watcher = ArrivalGapWatcher(rate_hz, min_gap_s)
        self._lost_at: float | None = None

    def broken(self, last_block_time: float) -> None:
        """Delivery broke off; ``last_block_time`` (master clock, s) is when the last
        block before the break arrived."""
        self._lost_at = last_block_time
        self.watcher.reset()

    def resume(self) -> None:
        """The count was moved on by other means (a pause that lost nothing): timing
        starts afresh."""
        self.watcher.reset()

    def account(self, now: float, counted: int, n: int) -> tuple[int, DeviceFault | None]:
        """Samples missing before ``n`` samples arriving at ``now`` (master clock, s),
        the stream having counted ``counted`` samples before them."""
        if self._lost_at is not None:
            missing = max(0, int(round((now - self._lost_at) * self.rate_hz)) - n)
            self._lost_at = None
            self.watcher.reset()
            detail = (f"about {missing} samples lost while delivery was broken off "
                      f"(estimated from the host clock: {self.why})")  # fmt: skip
            return missing, DeviceFault(now, FaultKind.GAP, missing, detail)
        missing = self.watcher.check(now, counted + n)
        if not missing:
            return 0, None
        detail = (f"about {missing} samples never arrived (estimated from arrival timing: "
                  f"{self.why}; placed within the last {self.watcher.window_s:g} s)")  # fmt: skip
        return missing, DeviceFault(now, FaultKind.GAP, missing, detail)
