"""The one door from the GUI to the engine.

``EngineController`` owns a :class:`~mmmelab.acquisition.engine.SessionEngine` and
one control thread (``gui-control``) that does every blocking engine call
(connect, start, stop) and runs the paradigm's timers, so no window ever waits
on a device. The GUI thread calls the few methods here; they queue a command and
return at once. State comes back as Qt signals (small objects, never bulk
data); frames and samples are pulled by the GUI on its own timers through
``preview`` and ``snapshot``.

After the session stops, the session check and the alignment run in a separate
process (``python -m mmmelab check/align``), as an analyst would run them.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from mmmelab.acquisition.engine import EngineState, ParticipantInfo, SessionEngine
from mmmelab.acquisition.livewindow import Snapshot
from mmmelab.acquisition.paradigm import ParadigmError, Phase, Rating, TrialResult
from mmmelab.acquisition.presentation import FrameSchedule
from mmmelab.config import LabConfig
from mmmelab.errors import LabError
from mmmelab.protocol import Clip, Protocol
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.2
CAMERA_LIVE_S = 0.5  # how often the live camera figures are recomputed in preview
RECORDING_POLL_S = 0.02
TELEMETRY_PERIOD_S = 0.5
CHECK_TIMEOUT_S = 300.0


class ControllerState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    READY = "ready"  # devices connected and live (preview), not recording
    CHECKING_RIG = "checking rig"  # the set-up checks are running
    STARTING = "starting"
    RECORDING = "recording"
    STOPPING = "stopping"
    CHECKING = "checking"
    FINISHED = "finished"
    FAILED = "failed"


class Command(enum.Enum):
    CONNECT = enum.auto()
    CHECK_RIG = enum.auto()
    ADJUST_CAMERA = enum.auto()
    IMPEDANCE = enum.auto()
    LOOPBACK = enum.auto()
    OVERRIDE = enum.auto()
    START = enum.auto()
    ONSET = enum.auto()
    RATE = enum.auto()
    PAUSE = enum.auto()
    RESUME = enum.auto()
    REMIND = enum.auto()
    MARK = enum.auto()
    ABORT = enum.auto()
    CLOSE = enum.auto()


@dataclass(frozen=True)
class PhaseInfo:
    """What the windows need to know about the paradigm's current phase."""

    phase: Phase
    position: int  # 0-based over practice + trials
    total: int
    practice: bool
    index: int  # in its block
    clip_id: str
    clip_path: Path | None  # the file to play in this phase, if any
    deadline: float | None  # master clock, s
    paused: bool = False


@dataclass
class SessionResult:
    folder: Path | None
    status: str
    check: dict[str, Any] = field(default_factory=dict)
    alignment: list[str] = field(default_factory=list)
    error: str = ""


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
        super().__init__()
        self.lab = lab
        self.protocol = protocol
        self.engine = SessionEngine(
            lab, protocol, ParticipantInfo("pending"), out_root=out_root, seed=seed
        )
        self.clock: Callable[[], float] = self.engine.clock
        self.run_checks = run_checks
        self.state = ControllerState.IDLE
        self.folder: Path | None = None
        self.result: SessionResult | None = None
        self.error = ""  # the last failure, as told to the experimenter
        self.setup: dict[str, Any] | None = None  # the last set-up check's record
        self._preview_rgb: tuple[int, np.ndarray] | None = None
        self._telemetry: dict[str, Any] = {}
        self._queue: queue.Queue[tuple[Command, tuple[Any, ...]]] = queue.Queue()
        self._preview_lock = threading.Lock()
        self.camera_limits: dict[str, tuple[float, float]] = {}  # known once connected
        self._camera_live: dict[str, Any] = {}
        self._camera_live_due = 0.0
        self._thread = threading.Thread(target=self._run, name="gui-control", daemon=True)
        self._thread.start()
        self.engine.paradigm.on_phase.append(self._on_phase)
        self.engine.paradigm.on_trial_done.append(self.trial_done.emit)
        self.engine.record.on_marker.append(self.marker.emit)

    # ------------------------------------------------------------ commands (GUI thread)

    def connect_devices(self) -> None:
        self._put(Command.CONNECT)

    def check_rig(self, face_box: tuple[int, int, int, int] | None = None) -> None:
        """Run every set-up check (face box in sensor pixels); ``rig_checked`` follows."""
        self._put(Command.CHECK_RIG, face_box)

    def adjust_camera(
        self,
        exposure_us: float | None = None,
        gain_db: float | None = None,
        white_balance: tuple[float, float, float] | None = None,
    ) -> None:
        """Change the camera's settings in preview; ``camera_adjusted`` follows."""
        self._put(Command.ADJUST_CAMERA, exposure_us, gain_db, white_balance)

    def loopback(self) -> None:
        """The trigger loop-back alone; ``rig_checked`` follows with the updated record."""
        self._put(Command.LOOPBACK)

    def impedance_mode(self, on: bool) -> None:
        """Acquire's impedance mode before Start; ``impedance_changed`` follows."""
        self._put(Command.IMPEDANCE, on)

    def set_face_box(self, box: tuple[int, int, int, int] | None) -> None:
        """The face box (sensor pixels) the live camera figures are computed on."""
        live = self.engine.preview_state
        if live is not None and box is not None and box[2] > 0 and box[3] > 0:
            live.face_box = box

    def camera_live(self) -> dict[str, Any]:
        """The live camera figures in preview (focus with its best, exposure, flicker),
        refreshed twice a second by the control thread; empty while recording."""
        return self._camera_live

    def override_checks(self, reason: str) -> None:
        """Start without (passing) set-up checks: the override and its reason are kept."""
        self._put(Command.OVERRIDE, reason)

    def start(self, participant: ParticipantInfo) -> None:
        self._put(Command.START, participant)

    def clip_onset(self, t_display: float) -> None:
        """The first frame of the emotional clip was shown at ``t_display``."""
        self._put(Command.ONSET, t_display)

    def rate(self, rating: Rating, t: float) -> None:
        self._put(Command.RATE, rating, t)

    def pause(self) -> None:
        self._put(Command.PAUSE, self.clock())

    def resume(self) -> None:
        self._put(Command.RESUME, self.clock())

    def remind(self, on: bool, t_display: float, label: str = "") -> None:
        self._put(Command.REMIND, on, t_display, label)

    def mark(self, note: str, t: float) -> None:
        self._put(Command.MARK, note, t)

    def abort(self) -> None:
        self._put(Command.ABORT, self.clock())

    def _put(self, command: Command, *args: Any) -> None:
        self._queue.put((command, args))

    # ------------------------------------------------------------ logs (any thread)

    def log_frames(self, schedule: FrameSchedule, final: bool) -> None:
        """The frames shown since the last call; with ``final``, the presentation summary."""
        rows = schedule.rows()
        if len(rows):
            self.engine.log("stimulus_frames", rows)
        if final and schedule.started:
            self.engine.log("presentations", schedule.summary())

    def log_display(self, code: Any, t_input: float, t_display: float, label: str = "") -> None:
        self.engine.log_display(code, t_input, t_display, label)

    def fault(self, stream: str, kind: FaultKind, detail: str, log: bool = True) -> None:
        """Record a GUI-side fault in the session (and the log, unless shown already)."""
        self.engine.fault(stream, kind, 1, detail, log=log)

    # ------------------------------------------------------------ data (GUI thread)

    def telemetry(self) -> dict[str, Any]:
        """The newest device telemetry (refreshed twice a second by the control thread)."""
        return self._telemetry

    def preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        """The newest camera preview (seq, frame number, RGB) if newer than ``after_seq``."""
        if not self._preview_lock.acquire(blocking=False):
            return None
        try:
            if self.state in (ControllerState.READY, ControllerState.CHECKING_RIG):
                return self._setup_preview(after_seq)
            pipe = self.engine.recording.pipeline
            if self.state is not ControllerState.RECORDING or pipe is None:
                return None
            if pipe.preview_seq() <= after_seq:
                return None
            return pipe.latest_preview()
        finally:
            self._preview_lock.release()

    def _setup_preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        """Before Start: the preview's newest raw frame, debayered as in a recording."""
        live = self.engine.preview_state
        got = live.latest_rgb(after_seq) if live is not None else None
        return None if got is None else (got[0], 0, got[1])

    def snapshot(self, stream: str, seconds: float, channels: list[int] | None = None) -> Snapshot:
        return self.engine.windows[stream].snapshot(seconds, channels)

    def clip_path(self, clip: Clip | None) -> Path | None:
        """The file of ``clip`` (known once the devices are connected)."""
        folder = getattr(self.engine, "stimuli_dir", None)
        return folder / clip.file if (clip is not None and folder is not None) else None

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

    def record_display_check(self, record: dict[str, Any]) -> None:
        """The clip and display check's record, kept in the manifest's set-up record."""
        self.engine.setup.display = record

    def neutral_path(self) -> Path | None:
        return self.clip_path(self.protocol.neutral)

    def streams(self) -> dict[str, list[str]]:
        """Signal streams and their channel names (after connecting)."""
        return {name: list(lay.channels) for name, lay in self.engine.devices.layouts.items()}

    # ------------------------------------------------------------ shutdown

    def close(self, timeout_s: float = 15.0) -> None:
        """Abort a running session (it is saved), close the devices, end the thread."""
        if self._thread.is_alive():
            self._put(Command.CLOSE)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("the control thread did not finish within %.0f s", timeout_s)

    # ------------------------------------------------------------ control thread

    def _set_state(self, state: ControllerState) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _run(self) -> None:
        due: float | None = None
        while True:
            recording = self.state is ControllerState.RECORDING
            wait = RECORDING_POLL_S if recording else IDLE_POLL_S
            if due is not None:
                wait = max(0.0, min(wait, due - self.clock()))
            try:
                command, args = self._queue.get(timeout=wait)
            except queue.Empty:
                command, args = None, ()
            if command is Command.CLOSE:
                self._shutdown()
                return
            try:
                if command is not None:
                    self._execute(command, args)
                if self.state is ControllerState.READY and self.engine.preview_state:
                    self._telemetry = {**self.engine.preview_state.telemetry(), "_t": 0.0}
                    if time.monotonic() >= self._camera_live_due:
                        self._camera_live = self.engine.preview_state.camera_figures()
                        self._camera_live_due = time.monotonic() + CAMERA_LIVE_S
                if self.state is ControllerState.RECORDING:
                    due = self.engine.advance()
                    self._refresh_telemetry()
                    if self.engine.paradigm.phase in (Phase.DONE, Phase.ABORTED):
                        self._finish()
                        due = None
            except LabError as exc:
                self._fail(str(exc))
            except Exception as exc:  # a bug must not kill the thread that saves the session
                logger.exception("control thread: unexpected error")
                self._fail(f"internal error: {exc!r}")

    def _execute(self, command: Command, args: tuple[Any, ...]) -> None:
        engine = self.engine
        if command is Command.CONNECT:
            if self.state is ControllerState.IDLE:
                self._set_state(ControllerState.CONNECTING)
                engine.connect()
                engine.preview()  # every device live before Start, nothing written
                if engine.devices.camera is not None:
                    self.camera_limits = engine.camera_limits()
                self._set_state(ControllerState.READY)
        elif command is Command.CHECK_RIG:
            if self.state is ControllerState.READY:
                self._check_rig(args[0])
        elif command is Command.ADJUST_CAMERA:
            if self.state is ControllerState.READY:
                try:
                    settings = engine.adjust_camera(*args)
                except LabError as exc:  # out of range: refused, nothing changed
                    settings = {"error": str(exc)}
                self.camera_adjusted.emit(settings)
        elif command is Command.LOOPBACK:
            if self.state is ControllerState.READY:
                self._check_rig(None, loopback_only=True)
        elif command is Command.IMPEDANCE:
            if self.state is ControllerState.READY and engine.eeg_impedance_mode(args[0]):
                self.impedance_changed.emit(bool(args[0]))
        elif command is Command.OVERRIDE:
            record = dict(engine.setup.checks or {"checks_run": False})
            engine.setup.checks = record | {"overridden": True, "override_reason": args[0]}
            logger.warning("set-up checks overridden: %s", args[0])
        elif command is Command.START:
            if self.state is ControllerState.READY:
                engine.participant = args[0]
                self._set_state(ControllerState.STARTING)
                self._camera_live = {}
                self.folder = engine.start(simulate_participant=False)
                self._set_state(ControllerState.RECORDING)
                self._refresh_telemetry(force=True)
        elif self.state is not ControllerState.RECORDING:
            logger.info("ignored %s: not recording", command.name.lower())
        else:
            self._execute_recording(command, args)

    def _check_rig(
        self, face_box: tuple[int, int, int, int] | None, loopback_only: bool = False
    ) -> None:
        from mmmelab.acquisition.rigcheck import run_loopback, run_rig_check

        self._set_state(ControllerState.CHECKING_RIG)
        try:
            live = self.engine.preview()
            if face_box is not None and face_box[2] > 0 and face_box[3] > 0:
                live.face_box = face_box
            if loopback_only:
                record = run_loopback(self.engine)
            else:
                record = run_rig_check(self.engine, progress=logger.info)
        except LabError as exc:
            record = {"checks": [], "verdict": "red", "error": str(exc)}
            logger.error("set-up check: %s", exc)
        finally:
            self._set_state(ControllerState.READY)
        self.setup = record
        self.rig_checked.emit(record)

    def _execute_recording(self, command: Command, args: tuple[Any, ...]) -> None:
        engine = self.engine
        try:
            if command is Command.ONSET:
                engine.space(args[0])
            elif command is Command.RATE:
                engine.rate(args[0], args[1])
            elif command is Command.PAUSE:
                engine.pause(args[0])
            elif command is Command.RESUME:
                engine.resume(args[0])
            elif command is Command.REMIND:
                engine.remind(args[0], args[2], args[1])
            elif command is Command.MARK:
                engine.mark(args[0], args[1])
            elif command is Command.ABORT:
                engine.paradigm.abort(args[0])
        except ParadigmError as exc:
            # e.g. a late rating click after the limit ran out: the paradigm already moved on
            logger.info("input not taken (%s): %s", command.name.lower(), exc)

    def _refresh_telemetry(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._telemetry.get("_t", -math.inf) < TELEMETRY_PERIOD_S:
            return
        tel = self.engine.telemetry()
        tel["_t"] = now
        tel["paused"] = self.engine.paradigm.paused or self.engine.paradigm.pause_pending
        self._telemetry = tel

    def _on_phase(self, phase: Phase, trial: TrialResult | None) -> None:
        paradigm = self.engine.paradigm
        clip = None
        if phase is Phase.CLIP and trial is not None:
            clip = trial.clip
        elif phase is Phase.NEUTRAL:
            clip = self.protocol.neutral
        elif phase is Phase.WAIT_SPACE and trial is not None:
            clip = trial.clip  # preloaded while the participant reads the screen
        self.phase_changed.emit(
            PhaseInfo(
                phase=phase,
                position=paradigm.position,
                total=len(paradigm.schedule),
                practice=bool(trial and trial.practice),
                index=trial.index if trial else -1,
                clip_id=clip.id if clip else "",
                clip_path=self.clip_path(clip),
                deadline=paradigm.deadline,
                paused=paradigm.paused,
            )
        )

    def _finish(self) -> None:
        """Stop (under 2 s), then check and align the session in a separate process."""
        self._set_state(ControllerState.STOPPING)
        with self._preview_lock:
            folder = self.engine.stop()
        self._telemetry = {**self.engine.telemetry(), "_t": self.clock()}  # final counts
        status = (
            self.engine.record.writer.manifest["status"] if self.engine.record.writer else "unknown"
        )
        result = SessionResult(folder, str(status))
        if folder is not None and self.run_checks:
            self._set_state(ControllerState.CHECKING)
            result.alignment = _run_cli("align", folder).splitlines()
            try:
                result.check = json.loads(_run_cli("check", folder, "--json") or "{}")
            except ValueError as exc:
                result.error = f"the session check gave no readable report ({exc})"
        self.result = result
        self._set_state(ControllerState.FINISHED)
        self.finished.emit(result)

    def _fail(self, message: str) -> None:
        logger.error("%s", message)
        self.error = message
        if self.engine.state is EngineState.RECORDING:
            with self._preview_lock:
                self.engine.stop()
        self.failed.emit(message)
        self._set_state(ControllerState.FAILED)

    def _shutdown(self) -> None:
        try:
            if self.state is ControllerState.RECORDING:
                self.engine.paradigm.abort(self.clock())
                self._finish()
            with self._preview_lock:
                self.engine.close()
        except LabError as exc:
            logger.error("closing: %s", exc)


def _run_cli(command: str, folder: Path, *extra: str) -> str:
    """Run ``mmme <command> <folder>`` in its own process; its stdout (problems are logged)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mmmelab", command, str(folder), *extra],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        logger.error("mmme %s did not finish within %.0f s", command, CHECK_TIMEOUT_S)
        return ""
    if done.returncode not in (0, 1):
        logger.error("mmme %s failed: %s", command, done.stderr.strip()[-500:])
    return done.stdout
