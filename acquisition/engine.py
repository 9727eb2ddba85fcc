"""The headless session engine: its lifecycle from Connect to the saved session.

``SessionEngine`` drives one session through its states (idle -> connected, with
the live preview -> recording -> stopping -> finished) over four parts, each in
its own module:

* the devices (``devices.DeviceSet``: open together, closed in bounded time);
* the pre-flight (``preflight``: stimuli, disks, the set-up record);
* the recorders and the camera pipeline (``recorders``, ``camera_pipeline``);
* the session record (``record.SessionRecord``: manifest, rows, marker fan-out).

It has no Qt; the GUI (through its controller) and the CLI drive it through the
same few methods: ``connect``, ``preview``, ``start``, ``space``/``rate``
(participant input), ``remind``/``mark`` (experimenter), ``advance``, ``stop``,
``close``, ``telemetry``.

Threads: the caller's thread is the control thread (everything here), plus one
recorder thread per device, the trigger-bus thread and the signal-writer thread.
``stop`` takes well under 2 s whatever the session length: nothing in it waits
on the amount of data recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmmelab.acquisition.camera_pipeline import TELEMETRY_DTYPE, CameraPipeline
from mmmelab.acquisition.devices import DeviceSet
from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.paradigm import Paradigm, Phase, Rating, TrialResult
from mmmelab.acquisition.participant import SimulatedParticipant
from mmmelab.acquisition.preflight import SetupRecord, check_disks, prepare_stimuli
from mmmelab.acquisition.preview import Preview
from mmmelab.acquisition.record import SessionRecord, clock_info, environment
from mmmelab.acquisition.recorders import Recorder, RecorderState, SignalRecorder
from mmmelab.acquisition.supervision import Supervisor
from mmmelab.config import LabConfig
from mmmelab.drivers.base import SignalDriver
from mmmelab.drivers.lsl import local_clock
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import DeviceTimeoutError, LabError
from mmmelab.participant import check_participant_id, check_session_number
from mmmelab.protocol import Protocol
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import SESSION_LOGS, SessionWriter, check_output_root
from mmmelab.storage.signals import SignalSpec
from mmmelab.streams import ConsentLevel, FaultKind, SignalLayout
from mmmelab.sync.bus import MarkerRecord, TriggerBus
from mmmelab.sync.codes import EventCode
from mmmelab.sync.live import LiveSync, StreamHealth

logger = logging.getLogger(__name__)

LAST_PULSE_WAIT_S = 0.6  # at the stop: how long the last trigger pulse may take to show
RECORDER_STOP_S = 0.6  # all recorder threads together; a hung device call is left behind


class EngineState(enum.StrEnum):
    IDLE = "idle"
    CONNECTED = "connected"
    RECORDING = "recording"
    STOPPING = "stopping"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
class ParticipantInfo:
    id: str
    session: int = 1
    consent_level: ConsentLevel = ConsentLevel.RESEARCH_ONLY
    notes: str = ""


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
        self.recorders: dict[str, Recorder] = {}
        self.windows: dict[str, SignalWindow] = {}
        self.pipeline: CameraPipeline | None = None
        self.live = LiveSync(
            box_latency_s=lab.triggerbox.latency_ms / 1000.0,
            lost_after_s=max(15.0, 3 * lab.sync_interval_s),
        )
        self.record = SessionRecord(clock, self.live)
        self.paradigm = Paradigm(protocol, self._emit)
        self.participant_sim: SimulatedParticipant | None = None
        self.health = Supervisor(self.record.fault, self._abort_paradigm)
        self.disk: dict[str, Any] = {}  # the pre-flight's disk figures (free, rate, speed)
        self.disk_warning = ""  # the pre-flight's disk-speed warning, a fault row at the start
        self.t_start = float("nan")
        self.preview_state: Preview | None = None
        self._streaming: set[str] = set()  # signal drivers already started
        self.setup = SetupRecord()

    # The devices and the record, as the console, the rig checks and the tests see them.

    @property
    def problems(self) -> list[str]:
        """What went wrong, as sentences (the manifest's ``problems``)."""
        return self.health.problems

    @property
    def fatal(self) -> str | None:
        """Why the session had to be stopped (disk full, a writer died), else None."""
        return self.health.fatal

    @property
    def simlab(self) -> Any:
        return self.devices.simlab

    @property
    def camera(self) -> XimeaCamera | None:
        return self.devices.camera

    @property
    def signal_drivers(self) -> dict[str, SignalDriver]:
        return self.devices.signal_drivers

    @property
    def layouts(self) -> dict[str, SignalLayout]:
        return self.devices.layouts

    @property
    def device_info(self) -> dict[str, Any]:
        return self.devices.info

    @property
    def writer(self) -> SessionWriter | None:
        return self.record.writer

    @property
    def on_marker(self) -> list[Callable[[MarkerRecord], None]]:
        return self.record.on_marker

    @property
    def setup_record(self) -> dict[str, Any]:
        """The set-up checks run before Start (``rigcheck``), kept in the manifest."""
        return self.setup.checks

    @setup_record.setter
    def setup_record(self, record: dict[str, Any]) -> None:
        self.setup.checks = record

    @property
    def display_record(self) -> dict[str, Any]:
        """The GUI's clip and display check, kept in the manifest."""
        return self.setup.display

    @display_record.setter
    def display_record(self, record: dict[str, Any]) -> None:
        self.setup.display = record

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
        for name, driver in self.signal_drivers.items():
            if name not in self._streaming:
                driver.start()
                self._streaming.add(name)
            layout = self.layouts[name]
            self.windows.setdefault(name, SignalWindow(len(layout.channels), layout.rate_hz))

    def preview(self, face_box: tuple[int, int, int, int] | None = None) -> Preview:
        """Every device live, nothing written (state CONNECTED). Start ends it."""
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"preview() in state {self.state.value}")
        if self.preview_state is not None:
            return self.preview_state
        self._stream_signals()
        # no sync pulses in preview: the loop-back code is alone
        bus = self.devices.trigger_bus(self.lab, sync_interval_s=3600.0)
        self.preview_state = Preview(
            self.camera, self.signal_drivers, self.layouts, self.windows, bus, self.clock,
            face_box=face_box,
        )  # fmt: skip
        self.preview_state.start()
        return self.preview_state

    def camera_limits(self) -> dict[str, tuple[float, float]]:
        """The range of each camera setting the console may change (see adjust_camera)."""
        if self.camera is None:
            raise LabError("the camera is not connected")
        return self.camera.limits()

    def adjust_camera(
        self,
        exposure_us: float | None = None,
        gain_db: float | None = None,
        white_balance: tuple[float, float, float] | None = None,
    ) -> dict[str, Any]:
        """Set exposure, gain or white balance before Start, within the camera's limits
        (DeviceError otherwise, nothing changed). The lab configuration follows, so the
        recording, its frame file and the manifest keep the final settings."""
        if self.state is not EngineState.CONNECTED or self.camera is None:
            raise LabError(f"the camera can be adjusted only before Start (now {self.state.value})")
        cam = self.camera.adjust(exposure_us, gain_db, white_balance)
        self.lab = dataclasses.replace(self.lab, camera=cam)
        self.device_info["camera"] = self.camera.info()
        settings = cam.settings()
        self.setup.camera_changes.append({"t_master": self.clock(), **settings})
        return settings

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
        driver = self.devices.acquire
        if driver is None:  # Curry sends its impedances as data
            return False
        active = driver.impedance_mode
        if on and not active:
            driver.start_impedance()
            self.setup.events.append({"t_master": self.clock(), "event": "impedance mode on"})
        elif not on and active:
            driver.end_impedance()
            self.setup.events.append({"t_master": self.clock(), "event": "impedance mode off"})
        return True

    def end_preview(self) -> None:
        if self.preview_state is not None:
            preview, self.preview_state = self.preview_state, None
            self._safely("ending the preview", preview.stop)

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
        self._make_recorders(writer)
        self.state = EngineState.RECORDING
        assert self.pipeline is not None
        self.pipeline.start()
        for rec in self.recorders.values():
            if rec is not self.pipeline.grabber:
                rec.start()
        self._await_first_data(first_data_timeout_s)
        self._start_paradigm(simulate_participant)
        if self.disk_warning:
            self.fault("disk", FaultKind.WARNING, 1, self.disk_warning, log=False)
        return writer.folder

    def _open_session(self) -> SessionWriter:
        """The session folder with its manifest, the signal file and the frame geometry."""
        writer = SessionWriter(
            self.out_root, self._manifest_fields(), self.participant.id, self.participant.session
        )
        self.record.writer = writer
        cam = self.lab.camera
        specs = [SignalSpec.of(n, lay, self.device_info[n]) for n, lay in self.layouts.items()]
        geometry = FrameGeometry(
            cam.width,
            cam.height,
            white_balance=cam.white_balance,
            frames_per_chunk=self.lab.frames_per_chunk,
        )
        writer.open_streams(
            geometry,
            specs,
            camera_info=self.device_info["camera"],
            logs={"telemetry": TELEMETRY_DTYPE, **SESSION_LOGS},
        )
        return writer

    def _make_recorders(self, writer: SessionWriter) -> None:
        """The camera pipeline (grabber, ring, frame writers) and a recorder per signal device."""
        signals = writer.signals
        assert signals is not None and self.camera is not None
        cam = self.lab.camera
        self.pipeline = CameraPipeline(
            self.camera,
            writer.camera_folder,
            FrameGeometry(cam.width, cam.height, white_balance=cam.white_balance,
                          frames_per_chunk=self.lab.frames_per_chunk),
            self.clock,
            signals.fault,
            telemetry_sink=lambda row: signals.log("telemetry", row),
            live=self.live,
            planned_end=self.clock() + self.protocol.planned_duration_s(),
            volumes=[v / writer.folder.name / "camera" for v in self.volume_roots()[1:]],
        )  # fmt: skip
        self.recorders["camera"] = self.pipeline.grabber
        self._stream_signals()  # the preview started them already, if it ran
        for name, driver in self.signal_drivers.items():
            self.recorders[name] = SignalRecorder(
                driver,
                signals,
                self.clock,
                live=self.live,
                rate_hz=self.layouts[name].rate_hz,
                window=self.windows[name],
            )

    def _await_first_data(self, timeout_s: float) -> None:
        """Every recorder has delivered data within ``timeout_s``, or the session is
        stopped as failed and DeviceTimeoutError names the silent device."""
        deadline = time.monotonic() + timeout_s
        for name, rec in self.recorders.items():
            if not rec.first_data.wait(max(0.0, deadline - time.monotonic())):
                self.stop(SessionStatus.FAILED)
                raise DeviceTimeoutError(
                    name, f"no data within {timeout_s:g} s of the start ({rec.error or 'silent'})"
                )

    def _start_paradigm(self, simulate_participant: bool) -> None:
        """The trigger bus with its sync pulses, then the paradigm (and, headless, the
        simulated participant)."""
        self.bus = self.devices.trigger_bus(self.lab, self.lab.sync_interval_s)
        physio = self.signal_drivers.get("physio")
        self.record.device_note = getattr(physio, "mark", None)
        self.bus.listeners.append(self.record.marker)
        self.bus.start()
        self.paradigm.on_trial_done.append(self.record.trial_done)
        if simulate_participant:
            self.participant_sim = SimulatedParticipant(self.paradigm, seed=self.seed)
        self.t_start = self.clock()
        self.paradigm.start(self.t_start)

    def _manifest_fields(self) -> dict[str, Any]:
        return {
            "participant": {
                "id": self.participant.id,
                "session": self.participant.session,
                "consent_level": self.participant.consent_level,
                "notes": self.participant.notes,
            },
            "simulated": self.lab.simulated_devices(),
            "clock": clock_info(self.clock()),
            "lab": self.lab.to_dict(),
            "lab_requested": self.lab_requested.to_dict(),
            "protocol": self.protocol.to_dict(),
            "devices": self.device_info,
            "disk_check": self.disk,
            "setup": self.setup.for_manifest(self.lab.camera.settings()),
            "environment": environment(),
        }

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
        self.health.watch(self.recorders, self.pipeline, self.record.signals, self.bus,
                          self.out_root)  # fmt: skip

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
        names = [n for n in ("camera", *self.signal_drivers) if not n.startswith("lsl")]
        return self.live.status(self.clock(), names)

    def telemetry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state.value, "phase": self.paradigm.phase.value}
        for name, rec in self.recorders.items():
            entry: dict[str, Any] = {"state": rec.state.value, "faults": rec.faults_recorded}
            if isinstance(rec, SignalRecorder):
                entry["samples"] = rec.samples
                entry["rate_hz"] = self.layouts[name].rate_hz
                # age of the newest block: how far behind live the stream is
                entry["latency_ms"] = (self.clock() - rec.last_block_time) * 1000.0
            elif self.pipeline is not None:
                entry.update(self.pipeline.telemetry())
                entry["disk_probe_mb_s"] = float(self.disk.get("write_mb_s", float("nan")))
            out[name] = entry
        if self.state is EngineState.RECORDING:
            out["sync"] = {n: dataclasses.asdict(h) for n, h in self.sync_health().items()}
        return out

    # ------------------------------------------------------------ stop

    def stop(self, status: SessionStatus | None = None) -> Path | None:
        """Stop recording and finalise the session folder (under 2 s). Idempotent.

        Every step runs whatever the ones before did (each failure becomes a problem
        in the manifest), recorder threads are asked to stop together and waited for
        with one deadline, so a hung device cannot hold the save; the manifest is
        always written last.
        """
        if self.state not in (EngineState.RECORDING, EngineState.CONNECTED):
            return self.writer.folder if self.writer else None
        self.state = EngineState.STOPPING
        complete = self.paradigm.phase is Phase.DONE
        self._safely("ending the paradigm", self._abort_paradigm)
        if self.bus is not None:
            self._safely("closing the trigger bus", self.bus.close, 1.0)
            self._safely("waiting for the last pulse", self._await_last_pulse)
        self._stop_recorders()
        if self.bus is not None and self.bus.ttl_failures:
            self.health.problem(f"{self.bus.ttl_failures} trigger-box writes failed")
        if self.fatal is None:
            self._watch_workers()  # a failure in the last moments
        failed = self.fatal is not None or (
            any(r.state is RecorderState.FAILED for r in self.recorders.values())
            and (status is SessionStatus.COMPLETE or (status is None and complete))
        )
        if failed:
            status = SessionStatus.FAILED
        elif status is None:
            status = SessionStatus.COMPLETE if complete else SessionStatus.ABORTED
        truth = self._safely("reading the simulators' truth", self.devices.ground_truth)
        self._safely("closing the devices", self._close_devices)
        try:
            return self._finalize(status, truth)
        finally:
            self.state = EngineState.FINISHED

    def _stop_recorders(self) -> None:
        """Ask every recorder to stop, wait for them with one deadline, then the camera."""
        for rec in self.recorders.values():
            rec.request_stop()
        deadline = time.monotonic() + RECORDER_STOP_S
        grabber = self.pipeline.grabber if self.pipeline is not None else None
        for name, rec in self.recorders.items():
            if rec is not grabber and not rec.stop(max(0.05, deadline - time.monotonic())):
                self.health.problem(f"the {name} recorder did not stop (its device hangs)")
        if self.pipeline is not None:
            clean = self._safely("stopping the camera", self.pipeline.stop)
            if clean is False and self.fatal is None:
                self.health.problem("the frame writer did not finish cleanly; see the faults")

    def _finalize(self, status: SessionStatus, truth: Any) -> Path | None:
        """Write the manifest's last fields and the status (the session's last write)."""
        writer = self.writer
        if writer is None:
            return None
        extra = {
            "problems": self.problems,
            "telemetry": self._safely("final telemetry", self.telemetry) or {},
            "markers_emitted": len(self.bus.records) if self.bus else 0,
            "duration_s": self.clock() - self.t_start,
        }
        if self.fatal is not None:
            extra["failure"] = self.fatal
        if truth is not None:
            extra["simulation_truth"] = truth
        writer.finalize(status, extra)
        return writer.folder

    def _await_last_pulse(self) -> None:
        """Wait until every stream that reports trigger edges has shown the last pulse
        sent (a condition, not a fixed pause: a loaded machine delivers the devices'
        blocks later), at most ``LAST_PULSE_WAIT_S``; a stream that has not shown it by
        then is said in the log (the check then counts the code it missed)."""
        assert self.bus is not None
        if not self.bus.records:
            return
        t_on = float(self.bus.records[-1].t_on) - 0.005
        deadline = time.monotonic() + LAST_PULSE_WAIT_S
        while True:
            late = [n for n, t in self.live.seen().items() if t < t_on and self._delivering(n)]
            if not late or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if late:
            logger.warning("the last pulse had not reached %s after %.1f s", ", ".join(late),
                           LAST_PULSE_WAIT_S)  # fmt: skip

    def _delivering(self, name: str) -> bool:
        """Whether stream ``name`` still delivers (not failed, a block in the last 0.5 s)."""
        rec = self.recorders.get(name)
        if rec is None or rec.state is RecorderState.FAILED:
            return False
        last = getattr(rec, "last_block_time", None)
        return last is None or self.clock() - float(last) < 0.5

    def _safely(self, what: str, step: Callable[..., Any], *args: Any) -> Any:
        """Run one step of the stop; a failure is logged and becomes a problem."""
        try:
            return step(*args)
        except Exception as exc:  # the next steps and the manifest must run
            logger.exception("%s failed", what)
            self.health.problem(f"{what} failed: {exc!r}")
            return None

    def _close_devices(self) -> None:
        """Close every device in bounded time (``DeviceSet.close``); a device that hangs
        is named as a problem, and so is one whose close fails during a stop."""
        hung, failed = self.devices.close()
        for message in hung:
            self.health.problem(message)
        if self.state is EngineState.STOPPING:
            for message in failed:
                self.health.problem(message)

    def close(self) -> None:
        self.end_preview()
        if self.state in (EngineState.RECORDING, EngineState.CONNECTED):
            self.stop()
        self._close_devices()

    def __enter__(self) -> SessionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.state is EngineState.RECORDING:
            self.stop(SessionStatus.FAILED)
        self.close()
