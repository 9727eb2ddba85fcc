"""The simulated trigger line and the simulated devices' clocks.

``VirtualWire`` is the TTL bus of the simulated lab: the simulated trigger box
writes a level (an 8-bit code) at a master-clock time, and every simulated device
samples the wire at its own sample times, so a code the driver sends shows up in
the EEG event channel, the MP160 digital inputs and the camera GPI, each with its
own latency. It keeps the whole history so that a device may sample "the level
at time t" slightly in the past, as real hardware latches its inputs.

``DeviceClock`` maps master time to a device's own time base with an offset and a
drift in ppm - the ground truth the alignment must recover.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class VirtualWire:
    """Thread-safe history of TTL levels on the master clock."""

    def __init__(self, name: str = "trigger") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._times: list[float] = [float("-inf")]
        self._levels: list[int] = [0]

    def set(self, level: int, t: float) -> None:
        """The line takes ``level`` from master time ``t`` on (times must not go back)."""
        with self._lock:
            if t < self._times[-1]:
                t = self._times[-1]
            self._times.append(t)
            self._levels.append(int(level))

    def level_at(self, t: float) -> int:
        with self._lock:
            i = bisect.bisect_right(self._times, t) - 1
            return self._levels[i]

    def levels_at(self, times: np.ndarray) -> np.ndarray:
        """Levels at many (sorted or unsorted) master times at once."""
        with self._lock:
            edges = np.asarray(self._times)
            levels = np.asarray(self._levels, dtype=np.int64)
        idx = np.searchsorted(edges, times, side="right") - 1
        return levels[idx]

    def history(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(zip(self._times[1:], self._levels[1:], strict=True))


def sample_wire(
    wire: VirtualWire,
    device_clock: DeviceClock,
    clock: Callable[[], float],
    device_t: np.ndarray,
    latency_s: float,
    connected: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the trigger input as a device does, paced by the device's own clock.

    Waits until the last of the sample times ``device_t`` (device clock) has happened,
    then returns their master times and the wire's level at each, seen ``latency_s``
    late (all zeros when the trigger input is not ``connected``).
    """
    master_t = np.asarray(device_clock.master_time(device_t))
    wait = master_t[-1] - clock()
    if wait > 0:
        time.sleep(wait)
    codes = wire.levels_at(master_t - latency_s)
    return master_t, codes if connected else np.zeros_like(codes)


@dataclass(frozen=True)
class DeviceClock:
    """``device_time = (master - epoch) * (1 + drift_ppm * 1e-6) + offset_s``."""

    epoch: float
    offset_s: float = 0.0
    drift_ppm: float = 0.0

    def device_time(self, master: float | np.ndarray) -> float | np.ndarray:
        return (master - self.epoch) * (1.0 + self.drift_ppm * 1e-6) + self.offset_s

    def master_time(self, device: float | np.ndarray) -> float | np.ndarray:
        return (device - self.offset_s) / (1.0 + self.drift_ppm * 1e-6) + self.epoch
