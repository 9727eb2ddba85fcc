"""The simulated XIMEA MQ022CG-CM behind :mod:`mmmelab.hardware_mocks.ximea.library`:
2048x1088 sensor, RAW8 Bayer, readout time ``(37.625 + 5.375 * lines) us`` which sets
the maximum frame rate, frames paced by the clock, a bounded frame queue that drops
the oldest frame (and counts it) when the client is too slow, a 32-bit microsecond
timestamp that wraps, the GPI level sampled from the shared trigger wire at exposure
start, and ``unplug()``. Also the xiAPI return codes and parameter kinds it answers
with.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire
from mmmelab.hardware_mocks.ximea.scene import MotionSchedule, Rig, Scene

logger = logging.getLogger(__name__)

# xiAPI return codes used here (names as in xiApi.h)
XI_OK, XI_INVALID_HANDLE, XI_TIMEOUT, XI_INVALID_ARG = 0, 1, 10, 11
XI_ACQUISITION_ALREADY_UP, XI_ACQUISITION_STOPED, XI_DEVICE_NOT_READY = 41, 45, 49
XI_NO_DEVICES_FOUND, XI_BUFFER_TOO_SMALL = 56, 58
XI_UNKNOWN_PARAM, XI_WRONG_PARAM_VALUE, XI_WRONG_PARAM_TYPE = 100, 101, 103
XI_READ_ONLY_PARAM, XI_PARAM_OUT_OF_RANGE = 109, 114
XI_PARAM_NOT_SETTABLE_WHILE_ACQ = 121

T_INT, T_FLOAT, T_STRING, T_INT64 = 0, 1, 2, 6
XI_RAW8, XI_MONO8 = 5, 0
TS_WRAP_US = 1 << 32


@dataclass
class Param:
    value: Any
    kind: int = T_INT
    lo: float = 0
    hi: float = 2**31 - 1
    inc: float = 1
    writable: bool = True
    while_acq: bool = True


class SimulatedCamera:
    """One simulated xiQ camera: parameter model, clock, frame queue, trigger input."""

    sensor_width = 2048
    sensor_height = 1088

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        serial: str = "SIM22CG01",
        device_clock: DeviceClock | None = None,
        ts_offset_us: int = 0,
        gpi_latency_s: float = 0.0,
        schedule: MotionSchedule | None = None,
        gpi_mask: int = 0xFF,
        sensor_limited: bool = True,
    ) -> None:
        self.wire = wire
        self.clock = clock
        self.serial = serial
        self.device_clock = device_clock or DeviceClock(epoch=clock())
        self.ts_offset_us = ts_offset_us
        self.gpi_latency_s = gpi_latency_s
        # The camera's single input sees "any of these trigger lines high" (wired
        # through a diode-OR or from the box's strobe line), so every code is visible.
        self.gpi_mask = gpi_mask
        # False only in benchmarks: frames come as fast as the exposure allows, so that
        # the pipeline's limit is measured, not the sensor's readout time.
        self.sensor_limited = sensor_limited
        self.schedule = schedule or MotionSchedule()
        self.rig = Rig()  # lamps and lens (set-up and fault injection)
        self.params: dict[str, Param] = {
            "exposure": Param(10000.0, T_FLOAT, 15.0, 1_000_000.0, 1.0),
            "gain": Param(0.0, T_FLOAT, -1.5, 12.0, 0.1),
            "wb_kr": Param(1.0, T_FLOAT, 0.0, 8.0, 0.01),
            "wb_kg": Param(1.0, T_FLOAT, 0.0, 8.0, 0.01),
            "wb_kb": Param(1.0, T_FLOAT, 0.0, 8.0, 0.01),
            "width": Param(self.sensor_width, T_INT, 16, self.sensor_width, 8, while_acq=False),
            "height": Param(self.sensor_height, T_INT, 2, self.sensor_height, 2, while_acq=False),
            "offsetX": Param(0, T_INT, 0, 0, 8),
            "offsetY": Param(0, T_INT, 0, 0, 2),
            "imgdataformat": Param(XI_MONO8, T_INT, 0, 6, 1, while_acq=False),
            "framerate": Param(60.0, T_FLOAT, 1.0, 1000.0, 0.01),
            "acq_timing_mode": Param(0, T_INT, 0, 2, 1, while_acq=False),
            "buffer_policy": Param(0, T_INT, 0, 1, 1, while_acq=False),
            "buffers_queue_size": Param(4, T_INT, 2, 4096, 1, while_acq=False),
            "recent_frame": Param(0, T_INT, 0, 1, 1),
            "gpi_selector": Param(1, T_INT, 1, 1, 1),
            "gpi_mode": Param(0, T_INT, 0, 0, 1),
            "gpi_level": Param(0, T_INT, writable=False),
            "gpo_selector": Param(1, T_INT, 1, 1, 1),
            "gpo_mode": Param(0, T_INT, 0, 16, 1),
            "ts_rst_mode": Param(0, T_INT, 0, 1, 1),
            "ts_rst_source": Param(0, T_INT, 0, 37, 1),
            "counter_selector": Param(0, T_INT, 0, 7, 1),
            "counter_value": Param(0, T_INT, writable=False),
            "device_sn": Param(serial, T_STRING, writable=False),
            "device_name": Param("MQ022CG-CM", T_STRING, writable=False),
            "device_type": Param("U3V", T_STRING, writable=False),
            "device_model_id": Param(0x2A, T_INT, writable=False),
            "timestamp": Param(0, T_INT64, writable=False),
            "acq_buffer_size": Param(512 << 20, T_INT, 1 << 20, 4 << 30),
            "limit_bandwidth": Param(3200, T_INT, 100, 4000),
        }
        self._lock = threading.Condition()
        self.acquiring = False
        self.unplugged = False
        self._t0 = 0.0
        self._next = 0  # acq_nframe of the next frame to expose
        self._queue: deque[tuple[int, float, int]] = deque()
        self.api_skipped = 0
        self.delivered = 0
        self._scene: Scene | None = None
        self._armed_at = 0.0
        self._reset_at: float | None = None
        self.force_reset_at: float | None = None  # fault injection: reset the clock then
        self._out: np.ndarray | None = None
        self.drop_frames: set[int] = set()  # acq_nframe numbers lost in transport (faults)
        self.transport_skipped = 0

    # ------------------------------------------------------------ model

    def _update_ranges(self) -> None:
        p = self.params
        p["offsetX"].hi = self.sensor_width - p["width"].value
        p["offsetY"].hi = self.sensor_height - p["height"].value
        p["framerate"].hi = round(self.max_framerate(), 2)

    def readout_us(self) -> float:
        return 37.625 + 5.375 * self.params["height"].value

    def max_framerate(self) -> float:
        readout = self.readout_us() if self.sensor_limited else 0.0
        period = max(readout, self.params["exposure"].value + 20.0)
        return 1e6 / period

    def fps(self) -> float:
        p = self.params
        if p["acq_timing_mode"].value == 1:
            return min(p["framerate"].value, self.max_framerate())
        return self.max_framerate()

    def set_param(self, name: str, value: Any) -> int:
        base, _, suffix = name.partition(":")
        p = self.params.get(base)
        if p is None:
            return XI_UNKNOWN_PARAM
        if suffix or not p.writable:
            return XI_READ_ONLY_PARAM
        if self.acquiring and not p.while_acq:
            return XI_PARAM_NOT_SETTABLE_WHILE_ACQ
        self._update_ranges()
        if p.kind in (T_INT, T_FLOAT, T_INT64):
            if not p.lo <= value <= p.hi:
                return XI_PARAM_OUT_OF_RANGE
            if p.kind == T_INT and (value - p.lo) % p.inc:
                return XI_WRONG_PARAM_VALUE
        if base == "imgdataformat" and value not in (XI_MONO8, XI_RAW8):
            return XI_WRONG_PARAM_VALUE
        p.value = value
        self._update_ranges()
        if base in ("width", "height"):
            for off in ("offsetX", "offsetY"):
                if self.params[off].value > self.params[off].hi:
                    self.params[off].value = 0
        return XI_OK

    def get_param(self, name: str) -> tuple[int, Any, int]:
        base, _, suffix = name.partition(":")
        p = self.params.get(base)
        if p is None:
            return XI_UNKNOWN_PARAM, None, T_INT
        self._update_ranges()
        if base == "counter_value":
            sel = self.params["counter_selector"].value
            value = {0: self.transport_skipped, 1: self.api_skipped, 2: self.delivered}.get(sel, 0)
            return XI_OK, value, T_INT
        if base == "gpi_level":
            return XI_OK, int(bool(self.wire.level_at(self.clock()) & self.gpi_mask)), T_INT
        if base == "timestamp":
            return XI_OK, int(self._ts_us(self.clock())), T_INT64
        if suffix in ("min", "max", "inc"):
            limit: Any = {"min": p.lo, "max": p.hi, "inc": p.inc}[suffix]
            return XI_OK, limit, p.kind
        if suffix:
            return XI_UNKNOWN_PARAM, None, T_INT
        return XI_OK, p.value, p.kind

    def _ts_us(self, master: float) -> int:
        reset = self._reset_time(master)
        if reset is not None:  # counter zeroed at the trigger edge, counting since
            dev = float(self.device_clock.device_time(master)) - float(
                self.device_clock.device_time(reset)
            )
            return int(dev * 1e6) % TS_WRAP_US
        return (
            int(float(self.device_clock.device_time(master)) * 1e6) + self.ts_offset_us
        ) % TS_WRAP_US

    def _reset_time(self, master: float) -> float | None:
        """Master time of the event that reset the timestamp, if one did by ``master``:
        a forced reset (``force_reset_at``, fault injection) or the GPI 1 rising edge
        (``ts_rst_source`` = GPI 1, armed at acquisition start)."""
        if self.force_reset_at is not None:
            return self.force_reset_at if self.force_reset_at <= master else None
        if self.params["ts_rst_source"].value != 1 or not self._armed_at:
            return None
        if self._reset_at is None:
            prev = 0
            for t, level in self.wire.history():
                high = int(bool(level & self.gpi_mask))
                if t > self._armed_at and high and not prev:
                    self._reset_at = t
                    break
                prev = high
        return self._reset_at if self._reset_at is not None and self._reset_at <= master else None

    # ------------------------------------------------------------ acquisition

    def start(self) -> int:
        with self._lock:
            if self.unplugged:
                return XI_DEVICE_NOT_READY
            if self.acquiring:
                return XI_ACQUISITION_ALREADY_UP
            w, h = self.params["width"].value, self.params["height"].value
            if self._scene is None or (self._scene.width, self._scene.height) != (w, h):
                self._scene = Scene(w, h, self.schedule, self.rig)
            self._out = np.empty(w * h, np.uint8)
            self._queue.clear()
            self._next = 0
            self.api_skipped = self.delivered = self.transport_skipped = 0
            self._t0 = self.clock()
            self._armed_at = self._t0
            self._reset_at = None
            self.acquiring = True
            return XI_OK

    def stop(self) -> int:
        with self._lock:
            if not self.acquiring:
                return XI_ACQUISITION_STOPED
            self.acquiring = False
            self._lock.notify_all()
            return XI_OK

    def truth(self) -> dict[str, Any]:
        """Exposure start of frame ``acq_nframe`` n is ``t0_master + (n - 1) / fps``."""
        return {
            "t0_master": self._t0,
            "fps": self.fps(),
            "readout_us": self.readout_us(),
            "reset_at_master": self._reset_time(float("inf")),
        }

    def unplug(self) -> None:
        """The USB cable is pulled: every later call fails."""
        with self._lock:
            self.unplugged = True
            self.acquiring = False
            self._lock.notify_all()

    def _exposure_start(self, k: int) -> float:
        return self._t0 + k / self.fps()

    def _produce(self, now: float) -> None:
        """Enqueue every frame whose readout finished by ``now``; drop oldest when full."""
        ready_after = self.readout_us() * 1e-6
        cap = self.params["buffers_queue_size"].value
        while self._exposure_start(self._next) + ready_after <= now:
            k = self._next
            self._next += 1
            if k in self.drop_frames:
                self.transport_skipped += 1
                continue
            t_exp = self._exposure_start(k)
            gpi = int(bool(self.wire.level_at(t_exp - self.gpi_latency_s) & self.gpi_mask))
            if len(self._queue) >= cap:
                self._queue.popleft()
                self.api_skipped += 1
            self._queue.append((k, t_exp, gpi))

    def next_frame(self, timeout_s: float) -> tuple[int, Any]:
        """Wait up to ``timeout_s`` for a frame: (status, (k, t_exposure, gpi) or None)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                if self.unplugged:
                    return XI_DEVICE_NOT_READY, None
                if not self.acquiring:
                    return XI_ACQUISITION_STOPED, None
                self._produce(self.clock())
                if self._queue:
                    if self.params["recent_frame"].value:
                        item = self._queue.pop()
                        self.api_skipped += len(self._queue)
                        self._queue.clear()
                    else:
                        item = self._queue.popleft()
                    self.delivered += 1
                    return XI_OK, item
                due = self._exposure_start(self._next) + self.readout_us() * 1e-6 - self.clock()
                left = deadline - time.monotonic()
                if left <= 0:
                    return XI_TIMEOUT, None
                self._lock.wait(min(max(due, 0.0), left))

    def fill_image(self, img: Any, item: tuple[int, float, int]) -> int:
        """Copy frame ``item`` into the XI_IMG structure (and its buffer)."""
        assert self._scene is not None and self._out is not None
        k, t_exp, gpi = item
        w, h = self._scene.width, self._scene.height
        src = self._scene.frame(  # lab time, as physio
            t_exp - self.device_clock.epoch,
            float(self.params["exposure"].value),
            float(self.params["gain"].value),
        )
        need = w * h
        if img.bp and self.params["buffer_policy"].value == 1:
            if img.bp_size < need:
                return XI_BUFFER_TOO_SMALL
            dst = img.bp
        else:
            dst = self._out.ctypes.data
            img.bp = dst
        ctypes.memmove(dst, src.ctypes.data, need)
        ts = self._ts_us(t_exp + self.readout_us() * 1e-6)
        img.bp_size = need
        img.frm = self.params["imgdataformat"].value
        img.width, img.height = w, h
        img.nframe = k + 1
        img.acq_nframe = k + 1
        img.tsSec, img.tsUSec = divmod(ts, 1_000_000)
        img.GPI_level = gpi
        img.padding_x = 0
        img.AbsoluteOffsetX = self.params["offsetX"].value
        img.AbsoluteOffsetY = self.params["offsetY"].value
        img.exposure_time_us = int(self.params["exposure"].value)
        img.gain_db = self.params["gain"].value
        return XI_OK
