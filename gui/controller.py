"""The one door from the GUI to the engine.

``EngineController`` turns the engine's events into Qt signals and the windows'
calls into commands. The engine runs either in the session service, another
process (:meth:`EngineController.attach`; how ``mmme demo``/``mmme attach`` run a
session: a console that dies leaves the recording going), or in this process
around a runner thread (the constructor; tests and developer tools that reach
into the simulated devices). The windows cannot tell which.

Commands return at once (the control thread does the work); state comes back as
Qt signals (small objects, never bulk data); frames and samples are pulled by the
GUI on its own timers through ``preview`` and ``snapshot`` (shared memory when the
engine is in the service).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from mmmelab.acquisition.consolelink import LocalLink, ServiceClient
from mmmelab.acquisition.control import EngineRunner
from mmmelab.acquisition.engine import SessionEngine
from mmmelab.acquisition.livewindow import Snapshot
from mmmelab.acquisition.messages import (
    CameraAdjusted,
    CameraLive,
    Command,
    Connected,
    ControllerState,
    Failed,
    Finished,
    ImpedanceChanged,
    MarkerMade,
    PhaseChanged,
    PhaseInfo,
    RigChecked,
    Role,
    ServiceInfo,
    SessionResult,
    Setup,
    StateChanged,
    Telemetry,
    TrialDone,
    clip_file,
)
from mmmelab.acquisition.paradigm import Rating
from mmmelab.acquisition.presentation import FrameSchedule
from mmmelab.acquisition.telemetry import EngineTelemetry
from mmmelab.config import LabConfig
from mmmelab.participant import ParticipantInfo
from mmmelab.protocol import Clip, Protocol
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)


class EngineController(QObject):
    """Commands in (any method, GUI thread), state signals out. See the module doc."""

    state_changed = pyqtSignal(object)  # ControllerState
    phase_changed = pyqtSignal(object)  # PhaseInfo
    trial_done = pyqtSignal(object)  # TrialResult
    marker = pyqtSignal(object)  # MarkerRecord
    failed = pyqtSignal(str)  # what went wrong, for the experimenter
    finished = pyqtSignal(object)  # SessionResult
    rig_checked = pyqtSignal(object)  # the set-up record (dict)
    camera_adjusted = pyqtSignal(object)  # the settings now in force, or {"error": ...}
    impedance_changed = pyqtSignal(bool)  # the amplifier's impedance mode is on (True)

    def __init__(
        self,
        lab: LabConfig,
        protocol: Protocol,
        out_root: Path | None = None,
        run_checks: bool = True,
        seed: int = 0,
    ) -> None:
        """The engine in this process, on a runner thread."""
        super().__init__()
        self._fields(lab, protocol)
        self._runner: EngineRunner | None = EngineRunner(
            lab, protocol, self._on_event, out_root=out_root, run_checks=run_checks, seed=seed
        )
        self.link: LocalLink | ServiceClient = LocalLink(self._runner)
        self.clock: Callable[[], float] = self.link.clock

    @classmethod
    def attach(
        cls, info: ServiceInfo, setup: Setup | None = None, role: Role = Role.CONSOLE
    ) -> EngineController:
        """A console (or the participant's windows: ``role``) on the session service at
        ``info``; ``setup`` for a new service (its session), None to attach to a
        running one (it says which session)."""
        self = cls.__new__(cls)
        QObject.__init__(self)
        self._runner = None
        client = ServiceClient(info, self._on_event, self._lost, setup, role)
        hello = client.hello
        self._fields(hello.lab, hello.protocol)
        self.link, self.clock = client, client.clock
        self.state, self.folder, self.result = hello.state, hello.folder, hello.result
        self.error, self.phase = hello.error, hello.phase
        self._telemetry, self._camera_live = hello.telemetry, hello.camera_live
        if hello.connected is not None:
            self._connected(hello.connected)
        client.start()
        return self

    def _fields(self, lab: LabConfig, protocol: Protocol) -> None:
        self.lab = lab
        self.protocol = protocol
        self.state = ControllerState.IDLE
        self.folder: Path | None = None
        self.result: SessionResult | None = None
        self.error = ""  # the last failure, as told to the experimenter
        self.setup: dict[str, Any] | None = None  # the last set-up check's record
        self.phase: PhaseInfo | None = None
        self.camera_limits: dict[str, tuple[float, float]] = {}  # known once connected
        self._streams: dict[str, list[str]] = {}
        self._stimuli_dir: Path | None = None
        self._telemetry = EngineTelemetry()
        self._camera_live: dict[str, Any] = {}

    @property
    def engine(self) -> SessionEngine:
        """The engine itself, when it runs in this process (tests reach the simulators)."""
        if self._runner is None:
            raise AttributeError("the engine runs in the session service, not here")
        return self._runner.engine

    @property
    def in_service(self) -> bool:
        return self._runner is None

    # ------------------------------------------------------------ commands (GUI thread)

    def connect_devices(self) -> None:
        self.link.put(Command.CONNECT)

    def check_rig(self, face_box: tuple[int, int, int, int] | None = None) -> None:
        """Run every set-up check (face box in sensor pixels); ``rig_checked`` follows."""
        self.link.put(Command.CHECK_RIG, face_box)

    def adjust_camera(
        self,
        exposure_us: float | None = None,
        gain_db: float | None = None,
        white_balance: tuple[float, float, float] | None = None,
    ) -> None:
        """Change the camera's settings in preview; ``camera_adjusted`` follows."""
        self.link.put(Command.ADJUST_CAMERA, exposure_us, gain_db, white_balance)

    def loopback(self) -> None:
        """The trigger loop-back alone; ``rig_checked`` follows with the updated record."""
        self.link.put(Command.LOOPBACK)

    def impedance_mode(self, on: bool) -> None:
        """Acquire's impedance mode before Start; ``impedance_changed`` follows."""
        self.link.put(Command.IMPEDANCE, on)

    def set_face_box(self, box: tuple[int, int, int, int] | None) -> None:
        """The face box (sensor pixels) the live camera figures are computed on."""
        self.link.call("set_face_box", box)

    def camera_live(self) -> dict[str, Any]:
        """The live camera figures in preview (focus with its best, exposure, flicker),
        refreshed twice a second by the control thread; empty while recording."""
        return self._camera_live

    def override_checks(self, reason: str) -> None:
        """Start without (passing) set-up checks: the override and its reason are kept."""
        self.link.put(Command.OVERRIDE, reason)

    def start(self, participant: ParticipantInfo) -> None:
        self._camera_live = {}
        self.link.put(Command.START, participant, False)  # the participant is a person

    def clip_onset(self, t_display: float) -> None:
        """The first frame of the emotional clip was shown at ``t_display``."""
        self.link.put(Command.ONSET, t_display)

    def rate(self, rating: Rating, t: float) -> None:
        self.link.put(Command.RATE, rating, t)

    def pause(self) -> None:
        self.link.put(Command.PAUSE, self.clock())

    def resume(self) -> None:
        self.link.put(Command.RESUME, self.clock())

    def remind(self, on: bool, t_display: float, label: str = "") -> None:
        self.link.put(Command.REMIND, on, t_display, label)

    def mark(self, note: str, t: float) -> None:
        self.link.put(Command.MARK, note, t)

    def abort(self) -> None:
        self.link.put(Command.ABORT, self.clock())

    # ------------------------------------------------------------ logs (any thread)

    def log_frames(self, schedule: FrameSchedule, final: bool) -> None:
        """The frames shown since the last call; with ``final``, the presentation summary."""
        rows = schedule.rows()
        if len(rows):
            self.link.call("log", "stimulus_frames", rows)
        if final and schedule.started:
            self.link.call("log", "presentations", schedule.summary())

    def log_display(self, code: Any, t_input: float, t_display: float, label: str = "") -> None:
        self.link.call("log_display", code, t_input, t_display, label)

    def fault(self, stream: str, kind: FaultKind, detail: str, log: bool = True) -> None:
        """Record a GUI-side fault in the session (and the log, unless shown already)."""
        self.link.call("fault", stream, kind, detail, log)

    def record_display_check(self, record: dict[str, Any]) -> None:
        """The clip and display check's record, kept in the manifest's set-up record."""
        self.link.call("record_display_check", record)

    # ------------------------------------------------------------ data (GUI thread)

    def telemetry(self) -> EngineTelemetry:
        """The newest device telemetry (refreshed twice a second by the control thread;
        empty before the first)."""
        return self._telemetry

    def preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        """The newest camera preview (seq, frame number, RGB) if newer than ``after_seq``."""
        if self.state not in (
            ControllerState.READY, ControllerState.CHECKING_RIG, ControllerState.RECORDING
        ):  # fmt: skip
            return None
        return self.link.preview(after_seq)

    def snapshot(self, stream: str, seconds: float, channels: list[int] | None = None) -> Snapshot:
        return self.link.snapshot(stream, seconds, channels)

    def clip_path(self, clip: Clip | None) -> Path | None:
        """The file of ``clip`` (known once the devices are connected)."""
        return clip_file(self._stimuli_dir, clip)

    def test_clip_path(self) -> Path | None:
        """The clip the display check plays: the first practice clip, else the neutral
        clip, else the first trial clip."""
        p = self.protocol
        clip = (
            (p.practice[0] if p.practice else None)
            or p.neutral
            or (p.clips[0] if p.clips else None)
        )
        return self.clip_path(clip)

    def neutral_path(self) -> Path | None:
        return self.clip_path(self.protocol.neutral)

    def streams(self) -> dict[str, list[str]]:
        """Signal streams and their channel names (after connecting)."""
        return {name: list(channels) for name, channels in self._streams.items()}

    # ------------------------------------------------------------ shutdown

    def close(self, timeout_s: float = 15.0) -> None:
        """Abort a running session (it is saved), close the devices, end the engine."""
        self.link.close(timeout_s)

    def detach(self) -> None:
        """Leave the session running in the service (``mmme attach`` comes back to it)."""
        if isinstance(self.link, ServiceClient):
            self.link.detach()

    # ------------------------------------------------------------ events (engine's thread)

    def _connected(self, event: Connected) -> None:
        self.camera_limits = dict(event.camera_limits)
        self._streams = dict(event.streams)
        self._stimuli_dir = event.stimuli_dir

    def _on_event(self, event: Any) -> None:
        if isinstance(event, StateChanged):
            self.state = event.state
            if event.folder is not None:
                self.folder = event.folder
            self.state_changed.emit(event.state)
            if event.state is ControllerState.FINISHED:
                self.finished.emit(self.result)
        elif isinstance(event, Telemetry):
            self._telemetry = event.values
        elif isinstance(event, CameraLive):
            self._camera_live = event.values
        elif isinstance(event, PhaseChanged):
            self.phase = event.info
            self.phase_changed.emit(event.info)
        elif isinstance(event, TrialDone):
            self.trial_done.emit(event.trial)
        elif isinstance(event, MarkerMade):
            self.marker.emit(event.record)
        elif isinstance(event, Connected):
            self._connected(event)
        elif isinstance(event, Finished):
            self.result = event.result  # signalled with the FINISHED state that follows
        elif isinstance(event, Failed):
            self.error = event.message
            self.failed.emit(event.message)
        elif isinstance(event, RigChecked):
            self.setup = event.record
            self.rig_checked.emit(event.record)
        elif isinstance(event, CameraAdjusted):
            self.camera_adjusted.emit(event.settings)
        elif isinstance(event, ImpedanceChanged):
            self.impedance_changed.emit(event.on)

    def _lost(self, message: str) -> None:
        """The service went away: said at once; the session on disk stays readable."""
        logger.error("%s", message)
        self.error = message
        self.failed.emit(message)
        self.state = ControllerState.FAILED
        self.state_changed.emit(ControllerState.FAILED)
