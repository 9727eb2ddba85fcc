"""The simulated lab: every simulated device of a lab configuration, on one trigger wire.

``SimulatedLab(lab, clock)`` starts a simulator for each device whose config says
``simulate = true`` - a camera behind ``xiapipy``, a Curry NetStreaming server, an
AcqKnowledge NDT stand-in, a trigger box on a pseudo-terminal - all sampling one
:class:`VirtualWire`. ``configured(lab)`` returns the lab configuration with the
simulators' real endpoints (ports, pty path, camera serial) filled in, so the
drivers connect to them exactly as they would to the rig. ``ground_truth()``
gives what the simulators know and the recording must recover.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from mmmelab.config import EegProtocol, LabConfig
from mmmelab.hardware_mocks.acqknowledge import AcqKnowledgeServer
from mmmelab.hardware_mocks.acquire import AcquireServer
from mmmelab.hardware_mocks.curry import CurryServer
from mmmelab.hardware_mocks.triggerbox import TriggerBoxSimulator
from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire
from mmmelab.hardware_mocks.ximea import SimulatedCamera, install
from mmmelab.hardware_mocks.ximea.scene import MotionSchedule

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClockModel:
    offset_s: float = 0.0
    drift_ppm: float = 0.0


class SimulatedLab:
    """Context manager; ``close`` stops every simulator (idempotent)."""

    def __init__(
        self,
        lab: LabConfig,
        clock: Callable[[], float],
        clocks: dict[str, ClockModel] | None = None,
        seed: int = 0,
        camera_sensor_limited: bool = True,
    ) -> None:
        self.clock = clock
        self.wire = VirtualWire()
        clocks = clocks or {}
        epoch = clock()

        def dev_clock(name: str) -> DeviceClock:
            model = clocks.get(name, ClockModel())
            return DeviceClock(epoch=epoch, offset_s=model.offset_s, drift_ppm=model.drift_ppm)

        self.device_clocks = {n: dev_clock(n) for n in ("camera", "eeg", "physio")}
        self.triggerbox: TriggerBoxSimulator | None = None
        self.eeg_server: CurryServer | AcquireServer | None = None
        self.acq: AcqKnowledgeServer | None = None
        self.camera: SimulatedCamera | None = None
        try:
            if lab.triggerbox.simulate:
                self.triggerbox = TriggerBoxSimulator(
                    self.wire,
                    clock,
                    box=lab.triggerbox.box.value,
                    seed=seed,
                    latency_s=lab.triggerbox.latency_ms / 1000.0,
                )
            if lab.eeg.simulate:
                server = AcquireServer if lab.eeg.protocol is EegProtocol.ACQUIRE else CurryServer
                self.eeg_server = server(
                    self.wire,
                    clock,
                    n_channels=lab.eeg.channels,
                    rate_hz=lab.eeg.rate_hz,
                    device_clock=self.device_clocks["eeg"],
                    latency_s=lab.eeg.trigger_latency_ms / 1000.0,
                    seed=seed + 1,
                )
                if isinstance(self.eeg_server, CurryServer):
                    self.eeg_server.set_impedances()  # the operator ran Curry's check: all fine
            if lab.physio.simulate:
                schedule = MotionSchedule()
                self.acq = AcqKnowledgeServer(
                    self.wire,
                    clock,
                    channels=lab.physio.channels,
                    digital=lab.physio.digital_channels,
                    rate_hz=lab.physio.rate_hz,
                    device_clock=self.device_clocks["physio"],
                    latency_s=lab.physio.trigger_latency_ms / 1000.0,
                    me_onsets=tuple(o for o, _ in schedule.events[:50]),
                    seed=seed + 2,
                )
            if lab.camera.simulate:
                library = install()
                self.camera = SimulatedCamera(
                    self.wire,
                    clock,
                    serial=f"SIM22CG{seed:02d}",
                    device_clock=self.device_clocks["camera"],
                    gpi_latency_s=lab.camera.trigger_latency_ms / 1000.0,
                    sensor_limited=camera_sensor_limited,
                )
                library.cameras.append(self.camera)
        except BaseException:
            self.close()
            raise

    def configured(self, lab: LabConfig) -> LabConfig:
        """``lab`` with the simulators' endpoints in place of the configured ones."""
        out = lab
        if self.triggerbox is not None:
            out = dataclasses.replace(
                out, triggerbox=dataclasses.replace(out.triggerbox, port=self.triggerbox.port)
            )
        if self.eeg_server is not None:
            out = dataclasses.replace(
                out, eeg=dataclasses.replace(out.eeg, host="127.0.0.1", port=self.eeg_server.port)
            )
        if self.acq is not None:
            out = dataclasses.replace(
                out,
                physio=dataclasses.replace(
                    out.physio, host="127.0.0.1", control_port=self.acq.port, data_port=0
                ),
            )
        if self.camera is not None:
            out = dataclasses.replace(
                out, camera=dataclasses.replace(out.camera, serial=self.camera.serial)
            )
        return out

    def ground_truth(self) -> dict[str, Any]:
        from mmmelab.hardware_mocks import synth

        truth: dict[str, Any] = {
            "epoch_master_s": self.device_clocks["camera"].epoch,
            "micro_expressions_s": [list(e) for e in MotionSchedule().events[:50]],
            "heart_rate": {
                "base_bpm": 70.0,
                "rise_bpm": synth.ME_HR_RISE_BPM,
                "delay_s": synth.ME_HR_DELAY_S,
                "width_s": synth.ME_HR_WIDTH_S,
                "pulse_transit_s": synth.PULSE_TRANSIT_S,
                "loop_s": 70.0,
            },
            "clocks": {
                n: {"offset_s": c.offset_s, "drift_ppm": c.drift_ppm, "epoch": c.epoch}
                for n, c in self.device_clocks.items()
            },
            "trigger_wire": self.wire.history(),
        }
        if self.camera is not None:
            truth["camera"] = self.camera.truth()
        if self.eeg_server is not None:
            truth["eeg"] = {
                "stream_start_sample": self.eeg_server.stream_start_sample,
                "rate_hz": self.eeg_server.rate_hz,
                "sample_index": "absolute"
                if isinstance(self.eeg_server, CurryServer)
                else "counted",
            }
        if self.acq is not None:
            truth["physio"] = {
                "start_device_s": self.acq.start_device_s,
                "rate_hz": self.acq.rate_hz,
            }
        return truth

    def close(self) -> None:
        for sim in (self.triggerbox, self.eeg_server, self.acq):
            if sim is not None:
                sim.close()
        if self.camera is not None:
            self.camera.unplug()
            library = install()
            if self.camera in library.cameras:
                library.cameras.remove(self.camera)
            self.camera = None

    def __enter__(self) -> SimulatedLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
