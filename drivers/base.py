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


@dataclass(frozen=True)
class AuxLayout:
    name: str
    dtype: str
    width: int = 1


@dataclass(frozen=True)
class SignalLayout:
    channels: tuple[str, ...]
    units: str
    rate_hz: float
    aux: tuple[AuxLayout, ...] = ()


@dataclass
class SampleBlock:
    """Consecutive samples. ``first_sample`` is the device's own sample index."""

    first_sample: int
    data: np.ndarray  # (n, channels) float32
    host_time: float  # master clock when the block arrived
    aux: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceFault:
    host_time: float
    kind: str  # gap | resync | reconnect | malformed | lost
    count: int
    detail: str


class SignalDriver(Protocol):
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
