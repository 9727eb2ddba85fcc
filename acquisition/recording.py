"""The recorders of one session, from Start until they have stopped.

``Recording`` holds the camera pipeline (grabber thread, shared-memory ring, one
frame-writer process per volume) and one ``SignalRecorder`` thread per signal
device, each writing into the session as it receives. Its methods run on the
engine's control thread; the recorders run on their own threads and processes.
Stopping asks every recorder at once and waits for them with one deadline, so a
hung device call cannot hold the save.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mmmelab.acquisition.camera_pipeline import CameraPipeline
from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.recorders import Recorder, RecorderState, SignalRecorder
from mmmelab.acquisition.telemetry import StreamTelemetry
from mmmelab.config import LabConfig
from mmmelab.drivers.base import SignalDriver
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.signals import SignalFile
from mmmelab.sync.live import LiveSync

logger = logging.getLogger(__name__)

LAST_PULSE_WAIT_S = 0.6  # at the stop: how long the last trigger pulse may take to show
RECORDER_STOP_S = 0.6  # all recorder threads together; a hung device call is left behind
#: how soon a waiting thread of the engine's process gets the interpreter back (Python's
#: default is 5 ms): the recorders, the trigger bus and, in the simulated lab, the
#: devices' simulators are threads of one interpreter, and a serial write to the trigger
#: box or a device's socket must not wait on the others for tens of milliseconds. 1 ms,
#: not less: each switch costs CPU the console's process needs on a two-core PC (at
#: 0.5 ms two of five 60 s GUI benchmark runs missed their event-loop targets)
SWITCH_INTERVAL_S = 0.001


def frame_geometry(lab: LabConfig) -> FrameGeometry:
    """How the lab's camera frames lie on disk (size, white balance, chunk length)."""
    cam = lab.camera
    return FrameGeometry(cam.width, cam.height, white_balance=cam.white_balance,
                         frames_per_chunk=lab.frames_per_chunk)  # fmt: skip


class Recording:
    """Every recorder of one session (``recorders`` by stream name; the camera's is the
    pipeline's grabber)."""

    def __init__(self, clock: Callable[[], float], live: LiveSync) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.clock = clock
        self.live = live
        self.recorders: dict[str, Recorder] = {}
        self.pipeline: CameraPipeline | None = None

    def make(
        self,
        camera: XimeaCamera,
        drivers: Mapping[str, SignalDriver],
        windows: Mapping[str, SignalWindow],
        signals: SignalFile,
        frames: tuple[Path, list[Path]],
        lab: LabConfig,
        planned_end: float,
    ) -> None:
        """The camera pipeline writing to ``frames`` (the session's camera folder, then
        the other volumes' folders) until ``planned_end`` (master clock, for the disk
        telemetry), and a recorder per signal driver (each already streaming)."""
        self.pipeline = CameraPipeline(
            camera,
            frames[0],
            frame_geometry(lab),
            self.clock,
            signals.fault,
            telemetry_sink=lambda row: signals.log("telemetry", row),
            live=self.live,
            planned_end=planned_end,
            volumes=frames[1],
        )
        self.recorders["camera"] = self.pipeline.grabber
        for name, driver in drivers.items():
            self.recorders[name] = SignalRecorder(
                driver, signals, self.clock, live=self.live,
                rate_hz=windows[name].rate_hz, window=windows[name],
            )  # fmt: skip

    def start(self) -> None:
        """The camera pipeline first (its writers take a moment), then every recorder."""
        assert self.pipeline is not None
        self.pipeline.start()
        for rec in self.recorders.values():
            if rec is not self.pipeline.grabber:
                rec.start()

    def silent(self, timeout_s: float) -> tuple[str, str] | None:
        """Wait up to ``timeout_s`` for every recorder's first data; the first one that
        delivered none (its name and why), or None when all did."""
        deadline = time.monotonic() + timeout_s
        for name, rec in self.recorders.items():
            if not rec.first_data.wait(max(0.0, deadline - time.monotonic())):
                return name, rec.error or "silent"
        return None

    @property
    def any_failed(self) -> bool:
        return any(r.state is RecorderState.FAILED for r in self.recorders.values())

    def delivering(self, name: str) -> bool:
        """Whether stream ``name`` still delivers (not failed, a block in the last 0.5 s)."""
        rec = self.recorders.get(name)
        if rec is None or rec.state is RecorderState.FAILED:
            return False
        last = getattr(rec, "last_block_time", None)
        return last is None or self.clock() - float(last) < 0.5

    def await_pulse(self, t_on: float) -> None:
        """Wait until every stream that still delivers and reports trigger edges has
        shown the pulse sent at ``t_on`` (master clock): a condition, not a fixed pause,
        since a loaded machine delivers the devices' blocks later. At most
        ``LAST_PULSE_WAIT_S``; a stream that has not shown it by then is said in the log
        (the check then counts the code it missed)."""
        t_on -= 0.005
        deadline = time.monotonic() + LAST_PULSE_WAIT_S
        while True:
            seen = self.live.seen().items()
            late = [n for n, t in seen if t < t_on and self.delivering(n)]
            if not late or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if late:
            logger.warning("the last pulse had not reached %s after %.1f s", ", ".join(late),
                           LAST_PULSE_WAIT_S)  # fmt: skip

    def stop(self, problem: Callable[[str], None]) -> None:
        """Ask every recorder to stop and wait for the signal recorders with one
        deadline; one that does not stop (its device hangs) is a ``problem``."""
        for rec in self.recorders.values():
            rec.request_stop()
        deadline = time.monotonic() + RECORDER_STOP_S
        grabber = self.pipeline.grabber if self.pipeline is not None else None
        for name, rec in self.recorders.items():
            if rec is not grabber and not rec.stop(max(0.05, deadline - time.monotonic())):
                problem(f"the {name} recorder did not stop (its device hangs)")

    def stop_camera(self) -> bool | None:
        """Stop the camera pipeline (its writers drain what the ring holds); whether they
        finished cleanly (None without a pipeline)."""
        return self.pipeline.stop() if self.pipeline is not None else None

    def telemetry(self, disk_probe_mb_s: float) -> dict[str, StreamTelemetry]:
        """Per stream: its recorder's state and faults; samples, rate and how far behind
        live (ms) for a signal; the pipeline's figures for the camera."""
        out: dict[str, StreamTelemetry] = {}
        for name, rec in self.recorders.items():
            state, faults = rec.state.value, rec.faults_recorded
            if isinstance(rec, SignalRecorder):
                out[name] = StreamTelemetry(
                    state,
                    faults,
                    samples=rec.samples,
                    rate_hz=rec.driver_rate_hz,
                    # age of the newest block: how far behind live the stream is
                    latency_ms=(self.clock() - rec.last_block_time) * 1000.0,
                )
            elif self.pipeline is not None:
                out[name] = StreamTelemetry(
                    state, faults, camera=self.pipeline.telemetry(),
                    disk_probe_mb_s=disk_probe_mb_s,
                )  # fmt: skip
            else:
                out[name] = StreamTelemetry(state, faults)
        return out
