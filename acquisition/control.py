"""The session's control loop: :class:`EngineRunner` owns a
:class:`~mmmelab.acquisition.engine.SessionEngine` and one control thread
(``engine-control``) that does every blocking engine call (connect, check, start,
stop) and runs the paradigm's timers. Commands come in
through ``put`` (queued, any thread) or the immediate calls (logs, face box; any
thread); what happens goes out as events (:mod:`mmmelab.acquisition.messages`)
through one ``emit`` callback, called on the control thread.

The console gets those events either in its own process (the runner in a thread
there, for tests and developer tools) or over a connection from the engine
service (:mod:`mmmelab.acquisition.service`), which is how a session is run. The
events are small frozen values; frames and samples never travel as events: the
camera preview and the live signal windows are in shared memory when the runner
is made with ``share=True``, and the events say where (:class:`PreviewAt`,
:class:`Connected`).

After the session stops, the session check and the alignment run in a separate
process (``python -m mmmelab check/align``), as an analyst would run them.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.acquisition.engine import EngineState, SessionEngine
from mmmelab.acquisition.messages import (
    LIVE_STATES,
    CameraAdjusted,
    CameraLive,
    Command,
    Connected,
    ControllerState,
    Emit,
    Failed,
    Finished,
    ImpedanceChanged,
    MarkerMade,
    PhaseChanged,
    PhaseInfo,
    PreviewAt,
    RigChecked,
    SessionResult,
    StateChanged,
    Telemetry,
    TrialDone,
    clip_file,
)
from mmmelab.acquisition.paradigm import ParadigmError, Phase, TrialResult
from mmmelab.acquisition.postcheck import check_and_align
from mmmelab.acquisition.telemetry import EngineTelemetry
from mmmelab.config import LabConfig
from mmmelab.errors import LabError
from mmmelab.participant import ParticipantInfo
from mmmelab.protocol import Protocol
from mmmelab.storage.preview import PreviewBuffer
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

IDLE_POLL_S = 0.2
CAMERA_LIVE_S = 0.5  # how often the live camera figures are recomputed in preview
RECORDING_POLL_S = 0.02
TELEMETRY_PERIOD_S = 0.5
SHARED_PREVIEW_HZ = 30.0  # the set-up preview published to shared memory


class EngineRunner:
    """The control thread around one engine. See the module doc."""

    def __init__(
        self,
        lab: LabConfig,
        protocol: Protocol,
        emit: Emit,
        out_root: Path | None = None,
        run_checks: bool = True,
        seed: int = 0,
        share: bool = False,
    ) -> None:
        self.protocol = protocol
        self.engine = SessionEngine(
            lab, protocol, ParticipantInfo("pending"), out_root=out_root, seed=seed
        )
        self.engine.share_windows = share
        self.share = share
        self.clock = self.engine.clock
        self.emit = emit
        self.run_checks = run_checks
        self.state = ControllerState.IDLE
        self.folder: Path | None = None
        self.result: SessionResult | None = None
        self.connected: Connected | None = None
        self.phase: PhaseInfo | None = None
        self.telemetry = EngineTelemetry()
        self.camera_live: dict[str, Any] = {}
        self.preview_lock = threading.Lock()  # held while the recording's preview goes away
        self._camera_live_due = 0.0
        self._queue: queue.Queue[tuple[Command, tuple[Any, ...]]] = queue.Queue()
        self._shared_preview: PreviewBuffer | None = None
        self._publisher: threading.Thread | None = None
        self._closing = threading.Event()
        self.engine.paradigm.on_phase.append(self._on_phase)
        self.engine.paradigm.on_trial_done.append(lambda t: self.emit(TrialDone(t)))
        self.engine.record.on_marker.append(lambda m: self.emit(MarkerMade(m)))
        self._thread = threading.Thread(target=self._run, name="engine-control", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ commands (any thread)

    def put(self, command: Command, *args: Any) -> None:
        self._queue.put((command, args))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 15.0) -> None:
        """Abort a running session (it is saved), close the devices, end the thread."""
        if self._thread.is_alive():
            self.put(Command.CLOSE)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("the control thread did not finish within %.0f s", timeout_s)

    # ------------------------------------------------------------ immediate calls (any thread)

    def log(self, table: str, rows: np.ndarray) -> None:
        """Rows for a session log (``stimulus_frames``, ``presentations``)."""
        self.engine.log(table, rows)

    def log_display(self, code: Any, t_input: float, t_display: float, label: str = "") -> None:
        self.engine.log_display(code, t_input, t_display, label)

    def fault(self, stream: str, kind: FaultKind, detail: str, log: bool = True) -> None:
        """Record a console-side fault in the session (and the log, unless shown already)."""
        self.engine.fault(stream, kind, 1, detail, log=log)

    def record_display_check(self, record: dict[str, Any]) -> None:
        """The clip and display check's record, kept in the manifest's set-up record."""
        self.engine.setup.display = record

    def set_face_box(self, box: tuple[int, int, int, int] | None) -> None:
        """The face box (sensor pixels) the live camera figures are computed on."""
        live = self.engine.preview_state
        if live is not None and box is not None and box[2] > 0 and box[3] > 0:
            live.face_box = box

    def preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        """The newest camera preview (seq, frame number, RGB) if newer than ``after_seq``,
        read in this process."""
        if not self.preview_lock.acquire(blocking=False):
            return None
        try:
            if self.state in LIVE_STATES:
                live = self.engine.preview_state
                got = live.latest_rgb(after_seq) if live is not None else None
                return None if got is None else (got[0], 0, got[1])
            pipe = self.engine.recording.pipeline
            if self.state is not ControllerState.RECORDING or pipe is None:
                return None
            if pipe.preview_seq() <= after_seq:
                return None
            return pipe.latest_preview()
        finally:
            self.preview_lock.release()

    @property
    def shared_preview(self) -> str | None:
        """The set-up preview's shared buffer, once published."""
        return self._shared_preview.name if self._shared_preview is not None else None

    # ------------------------------------------------------------ control thread

    def _set_state(self, state: ControllerState) -> None:
        self.state = state
        self.emit(StateChanged(state, self.folder))

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
                    self._live_figures()
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

    def _live_figures(self) -> None:
        live = self.engine.preview_state
        assert live is not None
        self.telemetry = EngineTelemetry(live.telemetry())
        self.emit(Telemetry(self.telemetry))
        if time.monotonic() >= self._camera_live_due:
            self.camera_live = live.camera_figures()
            self._camera_live_due = time.monotonic() + CAMERA_LIVE_S
            self.emit(CameraLive(self.camera_live))

    def _execute(self, command: Command, args: tuple[Any, ...]) -> None:
        engine = self.engine
        if command is Command.CONNECT:
            if self.state is ControllerState.IDLE:
                self._connect()
        elif command is Command.CHECK_RIG:
            if self.state is ControllerState.READY:
                self._check_rig(args[0])
        elif command is Command.ADJUST_CAMERA:
            if self.state is ControllerState.READY:
                try:
                    settings = engine.adjust_camera(*args)
                except LabError as exc:  # out of range: refused, nothing changed
                    settings = {"error": str(exc)}
                self.emit(CameraAdjusted(settings))
        elif command is Command.LOOPBACK:
            if self.state is ControllerState.READY:
                self._check_rig(None, loopback_only=True)
        elif command is Command.IMPEDANCE:
            if self.state is ControllerState.READY and engine.eeg_impedance_mode(args[0]):
                self.emit(ImpedanceChanged(bool(args[0])))
        elif command is Command.OVERRIDE:
            record = dict(engine.setup.checks or {"checks_run": False})
            engine.setup.checks = record | {"overridden": True, "override_reason": args[0]}
            logger.warning("set-up checks overridden: %s", args[0])
        elif command is Command.START:  # (participant, simulate the participant?)
            if self.state is ControllerState.READY:
                self._start(args[0], bool(args[1]))
        elif self.state is not ControllerState.RECORDING:
            logger.info("ignored %s: not recording", command.name.lower())
        else:
            self._execute_recording(command, args)

    def _connect(self) -> None:
        engine = self.engine
        self._set_state(ControllerState.CONNECTING)
        engine.connect()
        engine.preview()  # every device live before Start, nothing written
        limits = engine.camera_limits() if engine.devices.camera is not None else {}
        self.connected = Connected(
            streams={n: list(lay.channels) for n, lay in engine.devices.layouts.items()},
            camera_limits=limits,
            stimuli_dir=engine.stimuli_dir,
            windows={name: window.ref for name, window in engine.windows.items()},
        )
        self.emit(self.connected)
        if self.share and engine.devices.camera is not None:
            self._publisher = threading.Thread(
                target=self._publish_preview, name="preview-share", daemon=True
            )
            self._publisher.start()
        self._set_state(ControllerState.READY)

    def _start(self, participant: ParticipantInfo, simulate_participant: bool) -> None:
        self.engine.participant = participant
        self._set_state(ControllerState.STARTING)
        self.camera_live = {}
        self.folder = self.engine.start(simulate_participant=simulate_participant)
        pipe = self.engine.recording.pipeline
        if self.share and pipe is not None and pipe.preview is not None:
            self.emit(PreviewAt(pipe.preview.name))
        self._set_state(ControllerState.RECORDING)
        self._refresh_telemetry(force=True)

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
        self.emit(RigChecked(record))

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
        if not force and now - self.telemetry.t < TELEMETRY_PERIOD_S:
            return
        paradigm = self.engine.paradigm
        self.telemetry = dataclasses.replace(
            self.engine.telemetry(), t=now, paused=paradigm.paused or paradigm.pause_pending
        )
        self.emit(Telemetry(self.telemetry))

    def _on_phase(self, phase: Phase, trial: TrialResult | None) -> None:
        paradigm = self.engine.paradigm
        clip = None
        if phase is Phase.CLIP and trial is not None:
            clip = trial.clip
        elif phase is Phase.NEUTRAL:
            clip = self.protocol.neutral
        elif phase is Phase.WAIT_SPACE and trial is not None:
            clip = trial.clip  # preloaded while the participant reads the screen
        self.phase = PhaseInfo(
            phase=phase,
            position=paradigm.position,
            total=len(paradigm.schedule),
            practice=bool(trial and trial.practice),
            index=trial.index if trial else -1,
            clip_id=clip.id if clip else "",
            clip_path=clip_file(self.engine.stimuli_dir, clip),
            deadline=paradigm.deadline,
            paused=paradigm.paused,
        )
        self.emit(PhaseChanged(self.phase))

    def _finish(self) -> None:
        """Stop (under 2 s), then check and align the session in a separate process."""
        self._set_state(ControllerState.STOPPING)
        t0 = time.monotonic()
        with self.preview_lock:
            self.emit(PreviewAt(None))
            folder = self.engine.stop()
        stop_s = time.monotonic() - t0
        self.telemetry = dataclasses.replace(self.engine.telemetry(), t=self.clock())  # final
        self.emit(Telemetry(self.telemetry))
        writer = self.engine.record.writer
        status = str(writer.manifest["status"] if writer else "unknown")
        result = SessionResult(folder, status, stop_s=stop_s, failure=self.engine.health.fatal)
        if folder is not None and self.run_checks:
            self._set_state(ControllerState.CHECKING)
            check_and_align(result, folder)
        self.result = result
        self.emit(Finished(result))  # before the state: a console that sees FINISHED has it
        self._set_state(ControllerState.FINISHED)

    def _fail(self, message: str) -> None:
        logger.error("%s", message)
        if self.engine.state is EngineState.RECORDING:
            with self.preview_lock:
                self.emit(PreviewAt(None))
                self.engine.stop()
        self.emit(Failed(message))
        self._set_state(ControllerState.FAILED)

    def _shutdown(self) -> None:
        self._closing.set()
        try:
            if self.state is ControllerState.RECORDING:
                self.engine.paradigm.abort(self.clock())
                self._finish()
            if self._publisher is not None:
                self._publisher.join(2.0)
            with self.preview_lock:
                self.engine.close()
        except LabError as exc:
            logger.error("closing: %s", exc)
        finally:
            if self._shared_preview is not None:
                self._shared_preview.close()

    # ------------------------------------------------------------ shared set-up preview

    def _publish_preview(self) -> None:
        """Before Start: the preview's newest frame, debayered as in a recording, into
        a shared buffer the console reads (the recording's own buffer replaces it)."""
        seq = 0
        over = (ControllerState.RECORDING, ControllerState.STOPPING, ControllerState.FAILED)
        while not self._closing.wait(1.0 / SHARED_PREVIEW_HZ):
            if self.state in over:
                return  # the set-up preview is over
            if self.state not in LIVE_STATES:
                continue
            live = self.engine.preview_state
            got = live.latest_rgb(seq) if live is not None else None
            if got is None:
                continue
            seq, rgb = got
            if self._shared_preview is None:
                self._shared_preview = PreviewBuffer.create(rgb.shape[0], rgb.shape[1])
                self.emit(PreviewAt(self._shared_preview.name))
            self._shared_preview.put(rgb, 0)
