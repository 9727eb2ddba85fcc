"""One recorder thread per device: read from the driver, hand the data on.

A recorder never touches another device. When its device fails it reports the
fault, moves to ``FAILED`` and stops; the other recorders keep recording.
``stop()`` returns within the driver's read timeout plus a join. Faults go to a
``fault_sink(host_time, stream, kind, count, detail)`` - the session's
``signals.h5`` in a recording, a list in a benchmark.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.drivers.base import DeviceFault, SampleBlock, SignalDriver
from mmmelab.errors import DeviceLostError, LabError
from mmmelab.storage.signals import SignalFile
from mmmelab.streams import FaultKind
from mmmelab.sync.codes import trigger_levels
from mmmelab.sync.live import LiveSync, new_edges

logger = logging.getLogger(__name__)

FaultSink = Callable[[float, str, FaultKind, int, str], None]
STALL_S = 0.5  # a device silent this long is noted in the session, even if nothing is lost


class RecorderState(enum.StrEnum):
    """A recorder thread's state (shown per stream in the console and the telemetry)."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Recorder:
    """Base: the thread, its state, and fault reporting."""

    def __init__(self, name: str, fault_sink: FaultSink, clock: Callable[[], float]) -> None:
        self.name = name
        self.fault_sink = fault_sink
        self.clock = clock
        self.state = RecorderState.IDLE
        self.error: str | None = None
        self.first_data = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"rec-{name}", daemon=True)
        self.faults_recorded = 0

    def start(self) -> None:
        self.state = RecorderState.RUNNING
        self._thread.start()

    def _main(self) -> None:
        try:
            self._loop()
            self.state = RecorderState.STOPPED
        except LabError as exc:
            self._failed(str(exc))
            logger.error("%s recorder stopped: %s", self.name, exc)
        except Exception as exc:  # a bug must not leave the stream "running"
            logger.exception("%s recorder failed unexpectedly", self.name)
            self._failed(f"unexpected error in the {self.name} recorder: {exc!r}")

    def _failed(self, message: str) -> None:
        self.error = message
        self.state = RecorderState.FAILED
        try:
            self.fault(self.clock(), FaultKind.LOST, 1, message)
        except Exception:  # the state above is what the engine watches
            logger.exception("%s: the fault could not be recorded", self.name)

    def _loop(self) -> None:
        raise NotImplementedError

    def fault(self, host_time: float, kind: FaultKind, count: int, detail: str) -> None:
        self.faults_recorded += 1
        self.fault_sink(host_time, self.name, kind, count, detail)

    def _drain_faults(self, faults: list[DeviceFault]) -> None:
        while faults:
            f = faults.pop(0)
            logger.warning("%s: %s (%d): %s", self.name, f.kind, f.count, f.detail)
            self.fault(f.host_time, f.kind, f.count, f.detail)

    def request_stop(self) -> None:
        """Ask the thread to end (returns at once; ``stop`` also waits)."""
        self._stop.set()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """End the thread, waiting at most ``timeout_s``; False when it is still running
        (a device call that hangs) - it is a daemon thread and cannot hold the exit."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("%s recorder did not stop within %.1f s", self.name, timeout_s)
                return False
        return True


class SignalRecorder(Recorder):
    """Reads sample blocks from an EEG or physiology driver into ``signals.h5``.

    A lost connection is retried (for drivers with ``reconnect()``) with back-off
    for ``reconnect_s``; the disconnection, the reconnection and the samples lost
    in between are recorded. If it does not come back, the stream stops with the
    error while the others keep recording.
    """

    def __init__(
        self,
        driver: SignalDriver,
        signals: SignalFile,
        clock: Callable[[], float],
        reconnect_s: float = 10.0,
        live: LiveSync | None = None,
        rate_hz: float = 1000.0,
        window: SignalWindow | None = None,
    ) -> None:
        super().__init__(driver.name, signals.fault, clock)
        self.window = window
        self.driver = driver
        self.signals = signals
        self.samples = 0
        self.last_block_time = float("nan")
        self.reconnect_s = reconnect_s
        self.reconnects = 0
        self.live = live
        self.driver_rate_hz = rate_hz
        self._last_level = 0
        self._last_arrival = 0.0

    def _reconnect(self) -> bool:
        reconnect = getattr(self.driver, FaultKind.RECONNECT, None)
        can = getattr(self.driver, "can_reconnect", None)
        if reconnect is None or (can is not None and not can()):
            return False
        lost = self.clock()
        delay = 0.1
        while not self._stop.is_set() and self.clock() - lost < self.reconnect_s:
            try:
                reconnect()
            except LabError as exc:
                logger.warning("%s: reconnecting failed (%s); retrying", self.name, exc)
                self._stop.wait(delay)
                delay = min(2 * delay, 1.0)
                continue
            self.reconnects += 1
            self.fault(
                self.clock(),
                FaultKind.RECONNECT,
                1,
                f"reconnected after {self.clock() - lost:.2f} s",
            )
            return True
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                blocks = self.driver.read(0.1)
            except DeviceLostError as exc:
                self._drain_faults(self.driver.faults)
                self.fault(self.clock(), FaultKind.DISCONNECT, 1, str(exc))
                if not self._reconnect():
                    raise
                continue
            if blocks:
                now = self.clock()
                silent = now - self._last_arrival
                if self._last_arrival > 0 and silent > STALL_S:
                    self.fault(
                        now, FaultKind.STALL, 1,
                        f"no data for {silent:.2f} s, then the device went on (samples "
                        f"missing in between are counted as a gap)",
                    )  # fmt: skip
                self._last_arrival = now
            for block in blocks:
                self.signals.append(
                    self.name, block.first_sample, block.data, block.host_time, block.aux
                )
                self.samples += len(block.data)
                self.last_block_time = block.host_time
                self.first_data.set()
                if self.window is not None:
                    self.window.push(block.data, block.host_time)
                if self.live is not None:
                    self._report_edges(block)
            self._drain_faults(self.driver.faults)

    def _report_edges(self, block: SampleBlock) -> None:
        """Trigger edges of this block to the live sync health (device and rough master)."""
        assert self.live is not None
        levels = trigger_levels(block.aux)
        if levels is None:
            return
        idx, self._last_level = new_edges(self._last_level, levels)
        if not len(idx):
            return
        rate = self.driver_rate_hz
        n = len(levels)
        device_t = (block.first_sample + idx) / rate
        approx = block.host_time - (n - 1 - idx) / rate
        self.live.edges(self.name, device_t, levels[idx], approx)
