"""One recorder thread per device: read from the driver, hand to the session writers.

A recorder never touches another device. When its device fails it records the
fault in the session, moves to ``FAILED`` and stops; the other recorders keep
recording. ``stop()`` returns within the driver's read timeout plus a join.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

import numpy as np

from mmmelab.drivers.base import DeviceFault, SignalDriver
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import LabError
from mmmelab.storage.frames import JOURNAL_DTYPE, FrameWriter, aligned_buffer
from mmmelab.storage.signals import SignalFile

logger = logging.getLogger(__name__)


class RecorderState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Recorder:
    """Base: the thread, its state, and fault reporting into ``signals.h5``."""

    def __init__(self, name: str, signals: SignalFile, clock: Callable[[], float]) -> None:
        self.name = name
        self.signals = signals
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
            self.error = str(exc)
            self.state = RecorderState.FAILED
            logger.error("%s recorder stopped: %s", self.name, exc)
            self.signals.fault(self.clock(), self.name, "lost", 1, str(exc))

    def _loop(self) -> None:
        raise NotImplementedError

    def _drain_faults(self, faults: list[DeviceFault]) -> None:
        while faults:
            f = faults.pop(0)
            self.faults_recorded += 1
            logger.warning("%s: %s (%d): %s", self.name, f.kind, f.count, f.detail)
            self.signals.fault(f.host_time, self.name, f.kind, f.count, f.detail)

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("%s recorder did not stop within %.1f s", self.name, timeout_s)


class SignalRecorder(Recorder):
    """Reads sample blocks from an EEG or physiology driver into ``signals.h5``."""

    def __init__(
        self, driver: SignalDriver, signals: SignalFile, clock: Callable[[], float]
    ) -> None:
        super().__init__(driver.name, signals, clock)
        self.driver = driver
        self.samples = 0
        self.last_block_time = float("nan")

    def _loop(self) -> None:
        while not self._stop.is_set():
            blocks = self.driver.read(0.1)
            for block in blocks:
                self.signals.append(
                    self.name, block.first_sample, block.data, block.host_time, block.aux
                )
                self.samples += len(block.data)
                self.last_block_time = block.host_time
                self.first_data.set()
            self._drain_faults(self.driver.faults)


class CameraRecorder(Recorder):
    """Grabs frames from the camera and appends them with their journal records.

    The API's own frame queue (``queue_frames``) absorbs short disk stalls; the
    skipped-frame counters are read once a second and any increase is recorded.
    """

    def __init__(
        self,
        camera: XimeaCamera,
        frames: FrameWriter,
        signals: SignalFile,
        clock: Callable[[], float],
    ) -> None:
        super().__init__("camera", signals, clock)
        self.camera = camera
        self.frames = frames
        geo = frames.geometry
        self._buf = aligned_buffer(geo.stride)
        self._pixels = self._buf[: geo.width * geo.height]
        self.api_skipped = 0
        self.transport_skipped = 0
        self.last_gpi = 0

    def _loop(self) -> None:
        cam = self.camera
        cam.start()
        record = np.zeros(1, JOURNAL_DTYPE)
        next_check = self.clock() + 1.0
        try:
            while not self._stop.is_set():
                info = cam.read_into(self._pixels)
                now = self.clock()
                if now >= next_check:
                    self._check_counters()
                    next_check = now + 1.0
                if info is None:
                    continue
                record["acq_nframe"] = info.acq_nframe
                record["nframe"] = info.nframe
                record["gpi_level"] = info.gpi_level
                record["ts_us"] = info.ts_us
                record["exposure_us"] = info.exposure_us
                record["host_time"] = info.host_time
                record["api_skipped"] = self.api_skipped
                record["transport_skipped"] = self.transport_skipped
                record["gain_db"] = info.gain_db
                self.frames.append(self._buf, record)
                self.last_gpi = info.gpi_level
                self.first_data.set()
                self._drain_faults(cam.faults)
        finally:
            cam.stop()
            self._drain_faults(cam.faults)

    def _check_counters(self) -> None:
        api, transport = self.camera.skipped_counters()
        for kind, new, old in (
            ("api_skipped", api, self.api_skipped),
            ("transport_skipped", transport, self.transport_skipped),
        ):
            if new > old:
                self.signals.fault(
                    self.clock(),
                    "camera",
                    kind,
                    new - old,
                    f"the camera API reports {new - old} more skipped frames",
                )
        self.api_skipped, self.transport_skipped = api, transport
