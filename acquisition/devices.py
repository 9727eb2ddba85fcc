"""The session's devices: opened together at Connect, closed together in bounded time.

``DeviceSet`` owns the trigger box, the LSL marker outlet, the camera and every
signal driver (EEG, physiology, the lab's other LSL streams), and, in the
simulated lab, the simulators behind them. Its methods run on the engine's
control thread; ``close`` closes each device on a thread of its own so that one
that hangs (a modal dialog in AcqKnowledge blocks every call) cannot hold the save.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mmmelab.config import CameraConfig, LabConfig
from mmmelab.drivers.base import SignalDriver
from mmmelab.drivers.biopac import BiopacNdt
from mmmelab.drivers.lsl import LslInlet, MarkerOutlet
from mmmelab.drivers.neuroscan import make_eeg_driver
from mmmelab.drivers.neuroscan_acquire import AcquireClient
from mmmelab.drivers.triggerbox import TriggerBox
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import LabError
from mmmelab.streams import SignalLayout
from mmmelab.sync.bus import TriggerBus

logger = logging.getLogger(__name__)

DEVICE_CLOSE_S = 0.8  # every device's close together; a hung one is left behind


class DeviceSet:
    """Every device of one session, with what each said about itself when it opened
    (``info``, for the manifest) and the layout of each signal stream."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.simlab: Any = None
        self.triggerbox: TriggerBox | None = None
        self.outlet: MarkerOutlet | None = None
        self.camera: XimeaCamera | None = None
        self.signal_drivers: dict[str, SignalDriver] = {}
        self.layouts: dict[str, SignalLayout] = {}
        self.info: dict[str, Any] = {}

    def start_simulators(
        self, lab: LabConfig, seed: int, clocks: dict[str, Any] | None
    ) -> LabConfig:
        """Start the simulators of the devices ``lab`` marks ``simulate``; returns the
        configuration that points the drivers at them (``lab`` when none is simulated)."""
        simulated = lab.simulated_devices()
        if not simulated:
            return lab
        from mmmelab.acquisition.simulation import start_simulated_lab

        logger.warning("SIMULATED DEVICES: %s", ", ".join(simulated))
        self.simlab = start_simulated_lab(lab, self.clock, seed=seed, clocks=clocks)
        return self.simlab.configured(lab)

    def open(self, lab: LabConfig) -> None:
        """Open every device of ``lab``; a device that does not answer raises (the caller
        closes what opened)."""
        self.triggerbox = TriggerBox(lab.triggerbox, self.clock)
        self.triggerbox.open()
        self.info["triggerbox"] = self.triggerbox.info()
        self.outlet = MarkerOutlet(lab.marker_stream, session_id="pending")
        self.info["lsl"] = self.outlet.info()
        self.camera = XimeaCamera(lab.camera, self.clock)
        self.info["camera"] = self.camera.open()
        drivers: list[SignalDriver] = [
            make_eeg_driver(lab.eeg, self.clock),
            BiopacNdt(lab.physio, self.clock),
        ]
        drivers += [LslInlet(stream, self.clock) for stream in lab.lsl_streams]
        for driver in drivers:
            self.layouts[driver.name] = driver.connect()
            self.signal_drivers[driver.name] = driver
            self.info[driver.name] = driver.info()

    @property
    def acquire(self) -> AcquireClient | None:
        """The EEG driver when it speaks Acquire (the protocol with an impedance mode)."""
        driver = self.signal_drivers.get("eeg")
        return driver if isinstance(driver, AcquireClient) else None

    def camera_limits(self) -> dict[str, tuple[float, float]]:
        """The range of each camera setting that may change in preview."""
        if self.camera is None:
            raise LabError("the camera is not connected")
        return self.camera.limits()

    def adjust_camera(
        self,
        exposure_us: float | None,
        gain_db: float | None,
        white_balance: tuple[float, float, float] | None,
    ) -> CameraConfig:
        """Set what is given within the camera's limits (DeviceError otherwise, nothing
        changed); returns the camera's configuration with the new settings."""
        if self.camera is None:
            raise LabError("the camera is not connected")
        cam = self.camera.adjust(exposure_us, gain_db, white_balance)
        self.info["camera"] = self.camera.info()
        return cam

    def impedance_mode(self, on: bool) -> str:
        """Put the amplifier into (or out of) its impedance mode where its protocol has
        one (Acquire); what changed, for the set-up record ("" when nothing did)."""
        driver = self.acquire
        if driver is None or driver.impedance_mode == on:
            return ""
        if on:
            driver.start_impedance()
        else:
            driver.end_impedance()
        return f"impedance mode {'on' if on else 'off'}"

    def trigger_bus(self, lab: LabConfig, sync_interval_s: float) -> TriggerBus:
        """A trigger bus on the open trigger box and marker outlet (not started)."""
        if self.triggerbox is None or self.outlet is None:
            raise LabError("the trigger box is not connected")
        return TriggerBus(
            self.triggerbox,
            self.outlet,
            self.clock,
            pulse_s=lab.triggerbox.pulse_ms / 1000.0,
            gap_s=lab.triggerbox.gap_ms / 1000.0,
            sync_interval_s=sync_interval_s,
        )

    def ground_truth(self) -> Any:
        """What the simulators know (clocks, the simulated participant), else None."""
        return self.simlab.ground_truth() if self.simlab is not None else None

    def close(self) -> tuple[list[str], list[str]]:
        """Close every device at once, each on its own thread, with one deadline
        (``DEVICE_CLOSE_S``), then the simulators. Returns (the devices still closing at
        the deadline, left to finish in the background; the closes that failed), each
        as a sentence. Idempotent."""
        closers = [(name, d.close) for name, d in self.signal_drivers.items()]
        closers += [
            (name, c.close)
            for name, c in (
                ("camera", self.camera),
                ("trigger box", self.triggerbox),
                ("marker outlet", self.outlet),
            )
            if c is not None
        ]
        errors: dict[str, BaseException] = {}

        def run(name: str, closer: Callable[[], None]) -> None:
            try:
                closer()
            except Exception as exc:  # every device gets its close
                logger.warning(
                    "closing the %s: %s", name, exc, exc_info=not isinstance(exc, LabError)
                )
                errors[name] = exc

        threads = [
            threading.Thread(target=run, args=c, name=f"dev-close-{c[0]}", daemon=True)
            for c in closers
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + DEVICE_CLOSE_S
        hung, failed = [], []
        for (name, _), t in zip(closers, threads, strict=True):
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                hung.append(
                    f"closing the {name} did not finish within {DEVICE_CLOSE_S:g} s "
                    f"(it hangs; left to finish in the background)"
                )
            elif name in errors:
                failed.append(f"closing the {name}: {errors[name]}")
        if self.simlab is not None:
            simlab, self.simlab = self.simlab, None
            try:
                simlab.close()
            except Exception:  # the session is saved whatever the simulators do
                logger.exception("closing the simulated lab")
        return hung, failed
