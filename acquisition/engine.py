"""The headless session engine: one session's lifecycle, from Connect to the saved folder.

States: idle -> connected (the live preview) -> recording -> stopping -> finished,
over the session's parts, a module each: the devices (``devices``), the pre-flight
(``preflight``), the recorders (``recording``), the session record (``record``)
and the workers' health (``supervision``). No Qt: the GUI's controller and the CLI
drive it with the same few calls (``connect``, ``preview``, ``start``, participant
and experimenter inputs, ``advance``, ``stop``, ``close``, ``telemetry``), all on
one control thread; recorders, trigger bus and writers run on threads and
processes of their own. ``stop`` takes well under 2 s whatever the session length.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.acquisition.devices import DeviceSet
from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.paradigm import Paradigm, Phase, Rating, TrialResult
from mmmelab.acquisition.preflight import SetupRecord, check_disks, prepare_stimuli
from mmmelab.acquisition.preview import Preview
from mmmelab.acquisition.record import SessionRecord, manifest_fields
from mmmelab.acquisition.recording import Recording, frame_geometry
from mmmelab.acquisition.simulation import simulated_participant
from mmmelab.acquisition.supervision import Supervisor
from mmmelab.acquisition.telemetry import EngineTelemetry
from mmmelab.config import LabConfig
from mmmelab.drivers.lsl import local_clock
from mmmelab.errors import DeviceTimeoutError, LabError
from mmmelab.participant import ParticipantInfo, check_participant_id, check_session_number
from mmmelab.protocol import Protocol
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.sessionwriter import SessionWriter, check_output_root
from mmmelab.streams import FaultKind, StreamHealth
from mmmelab.sync.bus import TriggerBus
from mmmelab.sync.codes import EventCode
from mmmelab.sync.live import LiveSync

logger = logging.getLogger(__name__)


class EngineState(enum.StrEnum):
    """Where the engine is: idle, connected (devices open, preview), recording, stopping,
    finished, failed."""

    IDLE = "idle"
    CONNECTED = "connected"
    RECORDING = "recording"
    STOPPING = "stopping"
    FINISHED = "finished"
    FAILED = "failed"


class SessionEngine:
    """One session from connection to finalisation. Context manager; ``close`` is idempotent."""

    def __init__(
        self,
        lab: LabConfig,
        protocol: Protocol,
        participant: ParticipantInfo,
        out_root: Path | None = None,
        clock: Callable[[], float] = local_clock,
        seed: int = 0,
        sim_clocks: dict[str, Any] | None = None,
    ) -> None:
        self.lab_requested = lab
        self.lab = lab
        self.protocol = protocol
        self.participant = participant
        self.out_root = Path(out_root) if out_root is not None else lab.data_root
        self.clock = clock
        self.seed = seed
        self.sim_clocks = sim_clocks
        self.state = EngineState.IDLE
        self.devices = DeviceSet(clock)
        self.bus: TriggerBus | None = None
        self.windows: dict[str, SignalWindow] = {}
        self.share_windows = False  # live windows in shared memory (for a console elsewhere)
        self.stimuli_dir: Path | None = None  # the clips' folder, once connected
        self.live = LiveSync(
            box_latency_s=lab.triggerbox.latency_ms / 1000.0,
            lost_after_s=max(15.0, 3 * lab.sync_interval_s),
        )
        self.recording = Recording(clock, self.live)
        self.record = SessionRecord(clock, self.live)
        self.paradigm = Paradigm(protocol, self._emit)
        self.participant_sim: Any = None  # a simulated participant (headless sessions)
        self.health = Supervisor(self.record.fault, self._abort_paradigm)
        self.disk: dict[str, Any] = {}  # the pre-flight's disk figures (free, rate, speed)
        self.disk_warning = ""  # the pre-flight's disk-speed warning, a fault row at the start
        self.t_start = float("nan")
        self.preview_state: Preview | None = None
        self._streaming: set[str] = set()  # signal drivers already started
        self.setup = SetupRecord()

    # ------------------------------------------------------------ connect

    def connect(self) -> None:
        """Start simulators where configured, open every device, run the pre-flight checks."""
        if self.state is not EngineState.IDLE:
            raise LabError(f"connect() in state {self.state.value}")
        for root in self.volume_roots():  # before any device: a bad --out costs nothing
            check_output_root(root)
        self.lab = self.devices.start_simulators(self.lab, self.seed, self.sim_clocks)
        try:
            self.stimuli_dir = prepare_stimuli(self.protocol, self.lab)
            self.devices.open(self.lab)
            check = check_disks(self.volume_roots(), self.lab, self.protocol)
            self.disk, self.disk_warning = check.figures, check.warning
        except BaseException:
            self._close_devices()
            raise
        self.state = EngineState.CONNECTED

    def volume_roots(self) -> list[Path]:
        """The folders the camera frames go to: the sessions' root, then the lab's other
        ``[storage] volumes``."""
        return [self.out_root, *self.lab.volumes[1:]]

    # ------------------------------------------------------------ preview

    def _stream_signals(self) -> None:
        """Start every signal device not yet streaming, each with its live window."""
        for name, driver in self.devices.signal_drivers.items():
            if name not in self._streaming:
                driver.start()
                self._streaming.add(name)
            layout = self.devices.layouts[name]
            if name not in self.windows:
                self.windows[name] = SignalWindow(
                    len(layout.channels), layout.rate_hz, shared=self.share_windows
                )

    def preview(self, face_box: tuple[int, int, int, int] | None = None) -> Preview:
        """Every device live, nothing written (state CONNECTED). Start ends it."""
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"preview() in state {self.state.value}")
        if self.preview_state is not None:
            return self.preview_state
        self._stream_signals()
        # no sync pulses in preview: the loop-back code is alone
        bus = self.devices.trigger_bus(self.lab, sync_interval_s=3600.0)
        d = self.devices
        self.preview_state = Preview(
            d.camera, d.signal_drivers, d.layouts, self.windows, bus, self.clock, face_box=face_box
        )
        self.preview_state.start()
        return self.preview_state

    def camera_limits(self) -> dict[str, tuple[float, float]]:
        """The range of each camera setting the console may change (see adjust_camera)."""
        return self.devices.camera_limits()

    def adjust_camera(
        self,
        exposure_us: float | None = None,
        gain_db: float | None = None,
        white_balance: tuple[float, float, float] | None = None,
    ) -> dict[str, Any]:
        """Set exposure, gain or white balance before Start, within the camera's limits
        (DeviceError otherwise, nothing changed). The lab configuration follows, so the
        recording, its frame file and the manifest keep the final settings."""
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"the camera can be adjusted only before Start (now {self.state.value})")
        cam = self.devices.adjust_camera(exposure_us, gain_db, white_balance)
        self.lab = dataclasses.replace(self.lab, camera=cam)
        self.setup.camera_changes.append({"t_master": self.clock(), **cam.settings()})
        return cam.settings()

    @property
    def eeg_in_impedance_mode(self) -> bool:
        """The amplifier is in its impedance mode (no EEG data flows)."""
        driver = self.devices.acquire
        return driver is not None and driver.impedance_mode

    def eeg_impedance_mode(self, on: bool) -> bool:
        """Switch the amplifier into (or out of) its impedance mode before Start, where
        its protocol has one (Acquire's StartImpedance). Returns whether it has one;
        EEG data pauses meanwhile; Start ends it (and logs that it did)."""
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"impedance mode only before Start (now {self.state.value})")
        event = self.devices.impedance_mode(on)
        if event:
            self.setup.events.append({"t_master": self.clock(), "event": event})
        return self.devices.acquire is not None

    def end_preview(self) -> None:
        if self.preview_state is not None:
            preview, self.preview_state = self.preview_state, None
            self.health.safely("ending the preview", preview.stop)

    # ------------------------------------------------------------ start

    def start(self, simulate_participant: bool = True, first_data_timeout_s: float = 3.0) -> Path:
        """Create the session folder, start every recorder, then the paradigm.

        Returns the session folder. The paradigm starts only once every device
        has delivered data (the "devices answering" pre-flight check).
        """
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"start() in state {self.state.value}")
        check_participant_id(self.participant.id, self.lab.participant_pattern)
        check_session_number(self.participant.session)
        if self.eeg_in_impedance_mode:
            logger.warning("the amplifier was still in impedance mode: ended before Start")
            self.eeg_impedance_mode(False)
        self.end_preview()  # its bus and camera thread go; the signal devices stream on
        writer = self._open_session()
        assert writer.signals is not None and self.devices.camera is not None
        self._stream_signals()  # the preview started them already, if it ran
        frames = [v / writer.folder.name / "camera" for v in self.volume_roots()[1:]]
        self.recording.make(
            self.devices.camera, self.devices.signal_drivers, self.windows, writer.signals,
            (writer.camera_folder, frames), self.lab,
            planned_end=self.clock() + self.protocol.planned_duration_s(),
        )  # fmt: skip
        self.state = EngineState.RECORDING
        self.recording.start()
        silent = self.recording.silent(first_data_timeout_s)
        if silent is not None:
            self.stop(SessionStatus.FAILED)
            raise DeviceTimeoutError(silent[0], f"no data within {first_data_timeout_s:g} s "
                                                f"of the start ({silent[1]})")  # fmt: skip
        self._start_paradigm(simulate_participant)
        if self.disk_warning:
            self.fault("disk", FaultKind.WARNING, 1, self.disk_warning, log=False)
        return writer.folder

    def _open_session(self) -> SessionWriter:
        """The session folder with its manifest, the signal file and the frame geometry."""
        p, setup = self.participant, self.setup.for_manifest(self.lab.camera.settings())
        fields = manifest_fields(p, self.lab, self.lab_requested, self.protocol,
                                 self.devices.info, self.disk, setup, self.clock())  # fmt: skip
        return self.record.open(self.out_root, fields, p.id, p.session, self.devices,
                                frame_geometry(self.lab))  # fmt: skip

    def _start_paradigm(self, simulate_participant: bool) -> None:
        """The trigger bus with its sync pulses, then the paradigm (and, headless, the
        simulated participant)."""
        self.bus = self.devices.trigger_bus(self.lab, self.lab.sync_interval_s)
        physio = self.devices.signal_drivers.get("physio")
        self.record.device_note = getattr(physio, "mark", None)
        self.bus.listeners.append(self.record.marker)
        self.bus.start()
        self.paradigm.on_trial_done.append(self.record.trial_done)
        if simulate_participant:
            self.participant_sim = simulated_participant(self.paradigm, seed=self.seed)
        self.t_start = self.clock()
        self.paradigm.start(self.t_start)

    # ------------------------------------------------------------ inputs

    def _emit(self, code: EventCode, label: str, t: float | None = None) -> None:
        if self.bus is None:
            raise LabError("the trigger bus is not running")
        self.bus.emit(code, label, t)

    # Inputs take the time the event happened (``t``, master clock); default: now.
    # They run on the control thread, like ``advance``.

    def _now(self, t: float | None) -> float:
        return self.clock() if t is None else t

    def space(self, t: float | None = None) -> None:
        """The clip starts; ``t`` is its onset (under the GUI: its first displayed frame)."""
        self.paradigm.space(self._now(t))

    def rate(self, rating: Rating, t: float | None = None) -> None:
        self.paradigm.rate(rating, self._now(t))

    def pause(self, t: float | None = None) -> None:
        self.paradigm.pause(self._now(t))

    def resume(self, t: float | None = None) -> None:
        self.paradigm.resume(self._now(t))

    def remind(self, on: bool, label: str = "", t: float | None = None) -> None:
        """The CMRR reminder was shown (``on``) or hidden at ``t`` (its displayed time)."""
        self._emit(EventCode.REMINDER_ON if on else EventCode.REMINDER_OFF, label, t)

    def mark(self, note: str, t: float | None = None) -> None:
        self._emit(EventCode.NOTE, note[:60], t)

    # Presentation logs (any thread: they only queue rows for the signal writer).

    def log(self, name: str, rows: Any) -> None:
        """Append rows to one of the session's logs (``SESSION_LOGS``)."""
        self.record.log(name, rows)

    def log_display(self, code: EventCode, t_input: float, t_display: float, label: str) -> None:
        self.record.log_display(code, t_input, t_display, label)

    def fault(
        self, stream: str, kind: FaultKind, count: int, detail: str, log: bool = True
    ) -> None:
        """Record a fault found outside the recorders (the GUI: audio, screens)."""
        if log:
            logger.warning("%s: %s", stream, detail)
        self.record.fault(stream, kind, count, detail)

    # ------------------------------------------------------------ running

    def advance(self) -> float | None:
        """Run what is due now (paradigm timers, the simulated participant, the once-a-second
        health checks); returns when something is next due (master clock), or None."""
        now = self.clock()
        self.paradigm.tick(now)
        if self.participant_sim is not None:
            self.participant_sim.act(now)
        self.record.sync_states(self.sync_health)
        self._watch_workers()
        due = [
            d
            for d in (
                self.paradigm.next_deadline(),
                self.participant_sim.next_action(now) if self.participant_sim else None,
            )
            if d is not None
        ]
        return min(due) if due else None

    def _watch_workers(self) -> None:
        rec = self.recording
        self.health.watch(rec.recorders, rec.pipeline, self.record.signals, self.bus, self.out_root)

    def _abort_paradigm(self) -> None:
        if self.paradigm.phase not in (Phase.IDLE, Phase.DONE, Phase.ABORTED):
            self.paradigm.abort(self.clock())

    def step(self, max_wait_s: float = 0.05) -> Phase:
        """``advance``, then sleep until the next due moment (at most ``max_wait_s``)."""
        due = self.advance()
        wait = max_wait_s if due is None else min(max_wait_s, due - self.clock())
        if wait > 0:
            time.sleep(wait)
        return self.paradigm.phase

    def run(
        self,
        progress: Callable[[Phase, TrialResult | None], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        """Run the paradigm to its end (headless), or until ``stop_requested()`` (checked
        20 times a second) or a fatal fault; the caller then calls ``stop``."""
        if progress is not None:
            self.paradigm.on_phase.append(progress)
        while self.paradigm.phase not in (Phase.DONE, Phase.ABORTED):
            if stop_requested is not None and stop_requested():
                self.paradigm.abort(self.clock())
                break
            self.step()

    def sync_health(self) -> dict[str, StreamHealth]:
        """Live sync health of every stream with a trigger input."""
        names = [n for n in ("camera", *self.devices.signal_drivers) if not n.startswith("lsl")]
        return self.live.status(self.clock(), names)

    def telemetry(self) -> EngineTelemetry:
        """Every stream's figures, and the live sync health while recording (frozen;
        taken on the calling thread, the control thread in a session)."""
        streams = self.recording.telemetry(float(self.disk.get("write_mb_s", float("nan"))))
        sync = self.sync_health() if self.state is EngineState.RECORDING else {}
        return EngineTelemetry(streams, self.state.value, self.paradigm.phase.value, sync,
                               t=self.clock())  # fmt: skip

    # ------------------------------------------------------------ stop

    def stop(self, status: SessionStatus | None = None) -> Path | None:
        """Stop recording and finalise the session folder (under 2 s). Idempotent.

        Every step runs whatever the ones before did (each failure becomes a problem
        in the manifest), recorder threads are asked to stop together and waited for
        with one deadline, so a hung device cannot hold the save; the manifest is
        always written last.
        """
        if self.state not in (EngineState.RECORDING, EngineState.CONNECTED):
            return self.record.writer.folder if self.record.writer else None
        self.state = EngineState.STOPPING
        complete = self.paradigm.phase is Phase.DONE
        self.health.safely("ending the paradigm", self._abort_paradigm)
        if self.bus is not None:
            self.health.safely("closing the trigger bus", self.bus.close, 1.0)
            if self.bus.records:  # every stream shows the last pulse sent, or is said
                last = float(self.bus.records[-1].t_on)
                self.health.safely("waiting for the last pulse", self.recording.await_pulse, last)
        self.recording.stop(self.health.problem)
        clean = self.health.safely("stopping the camera", self.recording.stop_camera)
        if clean is False and self.health.fatal is None:
            self.health.problem("the frame writer did not finish cleanly; see the faults")
        if self.bus is not None and self.bus.ttl_failures:
            self.health.problem(f"{self.bus.ttl_failures} trigger-box writes failed")
        if self.health.fatal is None:
            self._watch_workers()  # a failure in the last moments
        status = self.health.outcome(status, complete, self.recording.any_failed)
        truth = self.health.safely("reading the simulators' truth", self.devices.ground_truth)
        self.health.safely("closing the devices", self._close_devices)
        try:
            return self._finalize(status, truth)
        finally:
            self.state = EngineState.FINISHED

    def _finalize(self, status: SessionStatus, truth: Any) -> Path | None:
        """Write the manifest's last fields and the status (the session's last write)."""
        final = self.health.safely("final telemetry", lambda: self.telemetry().as_dict())
        extra = {
            "problems": self.health.problems,
            "telemetry": final or {},
            "markers_emitted": len(self.bus.records) if self.bus else 0,
            "duration_s": self.clock() - self.t_start,
        }
        extra |= {"failure": self.health.fatal} if self.health.fatal is not None else {}
        extra |= {"simulation_truth": truth} if truth is not None else {}
        return self.record.finalize(status, extra)

    def _close_devices(self) -> None:
        """Close every device in bounded time (``DeviceSet.close``); a device that hangs
        is named as a problem, and so is one whose close fails during a stop."""
        hung, failed = self.devices.close()
        for message in [*hung, *(failed if self.state is EngineState.STOPPING else [])]:
            self.health.problem(message)

    def close(self) -> None:
        self.end_preview()
        if self.state in (EngineState.RECORDING, EngineState.CONNECTED):
            self.stop()
        self._close_devices()
        for window in self.windows.values():
            window.close()

    def __enter__(self) -> SessionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.state is EngineState.RECORDING:
            self.stop(SessionStatus.FAILED)
        self.close()
