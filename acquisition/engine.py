"""The headless session engine: connect, pre-flight, record, run the paradigm, stop, finalise.

``SessionEngine`` owns the devices, the trigger bus, the recorders and the session
writer. It has no Qt; the GUI (later) and the CLI drive it through the same few
methods: ``connect``, ``start``, ``space``/``rate`` (participant input),
``remind``/``mark`` (experimenter), ``stop``, ``close``, ``telemetry``.

Threads: the caller's thread is the control thread (everything here), plus one
recorder thread per device, the trigger-bus thread and the signal-writer thread.
``stop`` takes well under 2 s whatever the session length: nothing in it waits
on the amount of data recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import platform
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.acquisition.camera_pipeline import TELEMETRY_DTYPE, CameraPipeline
from mmmelab.acquisition.diskcheck import check_volumes
from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.paradigm import Paradigm, Phase, Rating, TrialResult
from mmmelab.acquisition.participant import SimulatedParticipant
from mmmelab.acquisition.preview import Preview
from mmmelab.acquisition.recorders import Recorder, RecorderState, SignalRecorder
from mmmelab.acquisition.stimuli import ensure_demo_clips, missing_clips, stimuli_folder
from mmmelab.config import (
    DEMO_STIMULI,
    LabConfig,
    Protocol,
    check_participant_id,
    check_session_number,
)
from mmmelab.drivers.base import SignalDriver
from mmmelab.drivers.biopac import BiopacNdt
from mmmelab.drivers.lsl import LslInlet, MarkerOutlet, local_clock
from mmmelab.drivers.neuroscan import AcquireClient, make_eeg_driver
from mmmelab.drivers.triggerbox import TriggerBox
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import DeviceTimeoutError, LabError
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import (
    DISPLAY_DTYPE,
    SESSION_LOGS,
    TRIAL_DTYPE,
    SessionWriter,
    check_output_root,
)
from mmmelab.storage.signals import SignalSpec
from mmmelab.streams import SignalLayout
from mmmelab.sync.bus import MarkerRecord, TriggerBus
from mmmelab.sync.codes import EventCode
from mmmelab.sync.live import LiveSync, StreamHealth

logger = logging.getLogger(__name__)

LAST_PULSE_WAIT_S = 0.6  # at the stop: how long the last trigger pulse may take to show
RECORDER_STOP_S = 0.6  # all recorder threads together; a hung device call is left behind
DEVICE_CLOSE_S = 0.8  # every device's close together, likewise
SIGNALS_BYTES_PER_S = 64 * 1000 * 6 + 13 * 1000 * 5  # EEG + physio on disk, generous


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
    consent_level: int = 2
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
        self.simlab: Any = None
        self.triggerbox: TriggerBox | None = None
        self.outlet: MarkerOutlet | None = None
        self.camera: XimeaCamera | None = None
        self.signal_drivers: dict[str, SignalDriver] = {}
        self.layouts: dict[str, SignalLayout] = {}
        self.device_info: dict[str, Any] = {}
        self.writer: SessionWriter | None = None
        self.bus: TriggerBus | None = None
        self.recorders: dict[str, Recorder] = {}
        self.windows: dict[str, SignalWindow] = {}
        self.pipeline: CameraPipeline | None = None
        self.live = LiveSync(
            box_latency_s=lab.triggerbox.latency_ms / 1000.0,
            lost_after_s=max(15.0, 3 * lab.sync_interval_s),
        )
        self._sync_state: dict[str, str] = {}
        self._next_sync_check = 0.0
        self._ttl_ok = True
        self.paradigm = Paradigm(protocol, self._emit)
        self.participant_sim: SimulatedParticipant | None = None
        self.on_marker: list[Callable[[MarkerRecord], None]] = []
        self.problems: list[str] = []
        self.disk: dict[str, Any] = {}  # the pre-flight's disk figures (free, rate, speed)
        self.disk_warning = ""  # the pre-flight's disk-speed warning, a fault row at the start
        #: why the session had to be stopped (disk full, a writer died), else None
        self.fatal: str | None = None
        self._listener_errors_seen = 0
        self.t_start = float("nan")
        self.preview_state: Preview | None = None
        self._streaming: set[str] = set()  # signal drivers already started
        #: the set-up checks run before Start (``rigcheck``), kept in the manifest
        self.setup_record: dict[str, Any] = {}
        self.camera_changes: list[dict[str, Any]] = []  # adjustments made in preview
        self.setup_events: list[dict[str, Any]] = []  # e.g. the amplifier's impedance mode
        self.display_record: dict[str, Any] = {}  # the GUI's clip and display check

    # ------------------------------------------------------------ connect

    def connect(self) -> None:
        """Start simulators where configured, open every device, run the pre-flight checks."""
        if self.state is not EngineState.IDLE:
            raise LabError(f"connect() in state {self.state.value}")
        for root in self.volume_roots():  # before any device: a bad --out costs nothing
            check_output_root(root)
        simulated = self.lab.simulated_devices()
        if simulated:
            from mmmelab.acquisition.simulation import start_simulated_lab

            logger.warning("SIMULATED DEVICES: %s", ", ".join(simulated))
            self.simlab = start_simulated_lab(
                self.lab, self.clock, seed=self.seed, clocks=self.sim_clocks
            )
            self.lab = self.simlab.configured(self.lab)
        try:
            self._prepare_stimuli()
            self._open_devices()
            self._check_disk()
        except BaseException:
            self._close_devices()
            raise
        self.state = EngineState.CONNECTED

    def _prepare_stimuli(self) -> None:
        folder = stimuli_folder(self.protocol, self.lab)
        if self.protocol.stimuli_dir == DEMO_STIMULI:
            ensure_demo_clips(self.protocol, folder)
        missing = missing_clips(self.protocol, folder)
        if missing:
            shown = ", ".join(str(m) for m in missing[:3])
            raise LabError(
                f"{len(missing)} stimulus clip(s) of protocol "
                f"{self.protocol.name!r} are missing, e.g. {shown}; put the licensed "
                f"clips there or point stimuli_dir/stimuli_root at them"
            )
        self.stimuli_dir = folder

    def _open_devices(self) -> None:
        lab = self.lab
        self.triggerbox = TriggerBox(lab.triggerbox, self.clock)
        self.triggerbox.open()
        self.device_info["triggerbox"] = self.triggerbox.info()
        self.outlet = MarkerOutlet(lab.marker_stream, session_id="pending")
        self.device_info["lsl"] = self.outlet.info()
        self.camera = XimeaCamera(lab.camera, self.clock)
        self.device_info["camera"] = self.camera.open()
        drivers: list[SignalDriver] = [
            make_eeg_driver(lab.eeg, self.clock),
            BiopacNdt(lab.physio, self.clock),
        ]
        drivers += [LslInlet(stream, self.clock) for stream in lab.lsl_streams]
        for driver in drivers:
            self.layouts[driver.name] = driver.connect()
            self.signal_drivers[driver.name] = driver
            self.device_info[driver.name] = driver.info()

    def _check_disk(self) -> None:
        cam = self.lab.camera
        check = check_volumes(
            self.volume_roots(),
            FrameGeometry(cam.width, cam.height).stride * cam.fps,
            SIGNALS_BYTES_PER_S,
            self.protocol.planned_duration_s(),
        )
        self.disk, self.disk_warning = check.figures, check.warning

    def volume_roots(self) -> list[Path]:
        """The folders the camera frames go to: the sessions' root, then the lab's other
        ``[storage] volumes``."""
        return [self.out_root, *self.lab.volumes[1:]]

    # ------------------------------------------------------------ preview

    def preview(self, face_box: tuple[int, int, int, int] | None = None) -> Preview:
        """Every device live, nothing written (state CONNECTED). Start ends it."""
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"preview() in state {self.state.value}")
        if self.preview_state is not None:
            return self.preview_state
        for name, driver in self.signal_drivers.items():
            if name not in self._streaming:
                driver.start()
                self._streaming.add(name)
            layout = self.layouts[name]
            self.windows.setdefault(name, SignalWindow(len(layout.channels), layout.rate_hz))
        assert self.triggerbox is not None and self.outlet is not None
        bus = TriggerBus(
            self.triggerbox,
            self.outlet,
            self.clock,
            pulse_s=self.lab.triggerbox.pulse_ms / 1000.0,
            gap_s=self.lab.triggerbox.gap_ms / 1000.0,
            sync_interval_s=3600.0,  # no sync pulses: the loop-back code is alone
        )
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
        self.camera_changes.append({"t_master": self.clock(), **settings})
        return settings

    @property
    def eeg_in_impedance_mode(self) -> bool:
        """The amplifier is in its impedance mode (no EEG data flows)."""
        driver = self.signal_drivers.get("eeg")
        return isinstance(driver, AcquireClient) and driver.impedance_mode

    def eeg_impedance_mode(self, on: bool) -> bool:
        """Switch the amplifier into (or out of) its impedance mode before Start, where
        its protocol has one (Acquire's StartImpedance). Returns whether it has one;
        EEG data pauses meanwhile; Start ends it (and logs that it did)."""
        driver = self.signal_drivers.get("eeg")
        if self.state is not EngineState.CONNECTED:
            raise LabError(f"impedance mode only before Start (now {self.state.value})")
        if not isinstance(driver, AcquireClient):  # Curry sends its impedances as data
            return False
        active = driver.impedance_mode
        if on and not active:
            driver.start_impedance()
            self.setup_events.append({"t_master": self.clock(), "event": "impedance mode on"})
        elif not on and active:
            driver.end_impedance()
            self.setup_events.append({"t_master": self.clock(), "event": "impedance mode off"})
        return True

    def _setup_for_manifest(self) -> dict[str, Any]:
        """The set-up record with the camera settings the recording started with and
        every change made in preview (also those after the checks ran)."""
        record = dict(self.setup_record) if self.setup_record else {"checks_run": False}
        return record | {"camera_final": self.lab.camera.settings(),
                         "camera_changes": list(self.camera_changes),
                         "events": list(self.setup_events),
                         "display": self.display_record or {"run": False}}  # fmt: skip

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
        assert self.camera is not None and self.triggerbox is not None
        assert self.outlet is not None
        self.writer = SessionWriter(
            self.out_root, self._manifest_fields(), self.participant.id, self.participant.session
        )
        cam = self.lab.camera
        specs = [SignalSpec.of(n, lay, self.device_info[n]) for n, lay in self.layouts.items()]
        geometry = FrameGeometry(
            cam.width,
            cam.height,
            white_balance=cam.white_balance,
            frames_per_chunk=self.lab.frames_per_chunk,
        )
        self.writer.open_streams(
            geometry,
            specs,
            camera_info=self.device_info["camera"],
            logs={"telemetry": TELEMETRY_DTYPE, **SESSION_LOGS},
        )
        signals = self.writer.signals
        assert signals is not None
        self.pipeline = CameraPipeline(
            self.camera,
            self.writer.camera_folder,
            geometry,
            self.clock,
            signals.fault,
            telemetry_sink=lambda row: signals.log("telemetry", row),
            live=self.live,
            planned_end=self.clock() + self.protocol.planned_duration_s(),
            volumes=[v / self.writer.folder.name / "camera" for v in self.volume_roots()[1:]],
        )
        self.recorders["camera"] = self.pipeline.grabber
        for name, driver in self.signal_drivers.items():
            if name not in self._streaming:  # the preview started it already
                driver.start()
                self._streaming.add(name)
            layout = self.layouts[name]
            self.windows.setdefault(name, SignalWindow(len(layout.channels), layout.rate_hz))
            self.recorders[name] = SignalRecorder(
                driver,
                signals,
                self.clock,
                live=self.live,
                rate_hz=layout.rate_hz,
                window=self.windows[name],
            )
        self.state = EngineState.RECORDING
        self.pipeline.start()
        for rec in self.recorders.values():
            if rec is not self.pipeline.grabber:
                rec.start()
        deadline = time.monotonic() + first_data_timeout_s
        for name, rec in self.recorders.items():
            if not rec.first_data.wait(max(0.0, deadline - time.monotonic())):
                self.stop(SessionStatus.FAILED)
                raise DeviceTimeoutError(
                    name,
                    f"no data within {first_data_timeout_s:g} s of "
                    f"the start ({rec.error or 'silent'})",
                )
        self.bus = TriggerBus(
            self.triggerbox,
            self.outlet,
            self.clock,
            pulse_s=self.lab.triggerbox.pulse_ms / 1000.0,
            gap_s=self.lab.triggerbox.gap_ms / 1000.0,
            sync_interval_s=self.lab.sync_interval_s,
        )
        self.bus.listeners.append(self._on_marker)
        self.bus.start()
        self.paradigm.on_trial_done.append(self._on_trial_done)
        if simulate_participant:
            self.participant_sim = SimulatedParticipant(self.paradigm, seed=self.seed)
        self.t_start = self.clock()
        self.paradigm.start(self.t_start)
        if self.disk_warning:
            self.fault("disk", "warning", 1, self.disk_warning, log=False)
        return self.writer.folder

    def _manifest_fields(self) -> dict[str, Any]:
        import h5py
        import pylsl

        return {
            "participant": {
                "id": self.participant.id,
                "session": self.participant.session,
                "consent_level": self.participant.consent_level,
                "notes": self.participant.notes,
            },
            "simulated": self.lab.simulated_devices(),
            "clock": {
                "master": "pylsl.local_clock",
                "start_master_s": self.clock(),
                "start_unix_s": time.time(),
                "host": socket.gethostname(),
            },
            "lab": self.lab.to_dict(),
            "lab_requested": self.lab_requested.to_dict(),
            "protocol": self.protocol.to_dict(),
            "devices": self.device_info,
            "disk_check": getattr(self, "disk", {}),
            "setup": self._setup_for_manifest(),
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "h5py": h5py.__version__,
                "pylsl": pylsl.__version__,
                "mmme_lab": __version__,
                "platform": platform.platform(),
            },
        }

    # ------------------------------------------------------------ inputs

    def _emit(self, code: EventCode, label: str, t: float | None = None) -> None:
        if self.bus is None:
            raise LabError("the trigger bus is not running")
        self.bus.emit(code, label, t)

    def _on_marker(self, rec: MarkerRecord) -> None:
        if rec.ttl_ok:
            self.live.marker(rec.t_on, int(rec.code), rec.t_off)
        if rec.ttl_ok != self._ttl_ok and self.writer is not None and self.writer.signals:
            kind, detail = (
                ("recovered", "TTL pulses work again")
                if rec.ttl_ok
                else (
                    "lost",
                    "trigger box write failed: TTL pulses are missing from "
                    "the devices; LSL markers continue",
                )
            )
            self.writer.signals.fault(rec.t_on, "triggerbox", kind, 1, detail)
            self._ttl_ok = rec.ttl_ok
        physio = self.signal_drivers.get("physio")
        mark = getattr(physio, "mark", None)
        if mark is not None:  # the code also goes into the AcqKnowledge graph
            mark(f"{int(rec.code)} {rec.code.name} {rec.label}".strip())
        if self.writer is not None and self.writer.signals is not None:
            self.writer.signals.marker(
                rec.seq, int(rec.code), rec.label, rec.t_request, rec.t_on, rec.t_off, rec.ttl_ok
            )
        for cb in self.on_marker:
            cb(rec)

    def _on_trial_done(self, trial: TrialResult) -> None:
        assert self.writer is not None and self.writer.signals is not None
        r = trial.rating
        row = np.array(
            [
                (
                    trial.index,
                    trial.practice,
                    trial.clip.id.encode(),
                    (trial.clip.emotion.value if trial.clip.emotion else "").encode(),
                    (r.emotion.value if r else "").encode(),
                    r.valence if r else 0,
                    r.arousal if r else 0,
                    trial.missed,
                    trial.response_time_s,
                    trial.clip_onset,
                    trial.rating_onset,
                )
            ],
            dtype=TRIAL_DTYPE,
        )
        self.writer.signals.log("trials", row)

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

    def log(self, name: str, rows: np.ndarray) -> None:
        """Append rows to one of the session's logs (``SESSION_LOGS``)."""
        if self.writer is not None and self.writer.signals is not None:
            self.writer.signals.log(name, rows)

    def log_display(self, code: EventCode, t_input: float, t_display: float, label: str) -> None:
        row = np.array([(int(code), t_input, t_display, label[:48].encode())], DISPLAY_DTYPE)
        self.log("display", row)

    def fault(self, stream: str, kind: str, count: int, detail: str, log: bool = True) -> None:
        """Record a fault found outside the recorders (the GUI: audio, screens)."""
        if log:
            logger.warning("%s: %s", stream, detail)
        if self.writer is not None and self.writer.signals is not None:
            self.writer.signals.fault(self.clock(), stream, kind, count, detail)

    # ------------------------------------------------------------ running

    def advance(self) -> float | None:
        """Run what is due now (paradigm timers, the simulated participant, the once-a-second
        health checks); returns when something is next due (master clock), or None."""
        now = self.clock()
        self.paradigm.tick(now)
        if self.participant_sim is not None:
            self.participant_sim.act(now)
        self._check_sync()
        self._watch_workers(now)
        due = [
            d
            for d in (
                self.paradigm.next_deadline(),
                self.participant_sim.next_action(now) if self.participant_sim else None,
            )
            if d is not None
        ]
        return min(due) if due else None

    def _watch_workers(self, now: float) -> None:
        """Every call (at least 20 times a second while recording): a worker that failed
        becomes a problem and a fault; one the session cannot go on without (the frame
        writer, the signal writer, the trigger bus) stops the session as failed."""
        for name, rec in self.recorders.items():
            if rec.state is RecorderState.FAILED:
                self._problem(f"{name} stopped during the session: {rec.error}")
        pipeline, writer = self.pipeline, self.writer
        failed, disk_full, why = pipeline.writer_status() if pipeline else (False, False, "")
        if failed:
            why = why or "its process is gone"
            if disk_full:
                self._fatal(f"disk full: camera frames could not be written to {self.out_root}")
            else:
                self._fatal(f"the frame writer failed ({why}); camera frames are not saved")
        signals = writer.signals if writer is not None else None
        if signals is not None and (signals.error is not None or not signals.writer_alive):
            self._fatal(
                f"the signal writer failed ({signals.error or 'its process is gone'}); "
                f"EEG, physiology and markers are not saved"
            )
        bus = self.bus
        if bus is not None:
            while len(bus.listener_errors) > self._listener_errors_seen:
                detail = bus.listener_errors[self._listener_errors_seen]
                self._listener_errors_seen += 1
                self.fault("markers", "listener_error", 1, f"a marker listener failed: {detail}")
                self._problem(f"a marker listener failed: {detail}")
            if bus.error is not None:
                self._fatal(f"{bus.error}; no more event codes can be sent")

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def _fatal(self, message: str) -> None:
        """Stop the session now as failed (the run loop and the GUI see the abort)."""
        if self.fatal is not None:
            return
        self.fatal = message
        logger.error("stopping the session: %s", message)
        self._problem(message)
        try:
            self.fault("session", "fatal", 1, message, log=False)
        except Exception:  # the signal writer may be what failed
            logger.exception("could not record the fault")
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

    def _check_sync(self) -> None:
        """Once a second: report streams that lost their triggers or drifted off."""
        now = self.clock()
        if now < self._next_sync_check or self.writer is None or self.writer.signals is None:
            return
        self._next_sync_check = now + 1.0
        for name, health in self.sync_health().items():
            before = self._sync_state.get(name, "waiting")
            if health.state != before:
                self._sync_state[name] = health.state
                if health.state in ("no_triggers", "residual_high"):
                    logger.warning("sync: %s", health.message)
                    self.writer.signals.fault(now, name, "sync", 1, health.message)
                elif before in ("no_triggers", "residual_high"):
                    self.writer.signals.fault(now, name, "sync", 0, "triggers seen again")

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
        if status is None:
            status = (
                SessionStatus.COMPLETE
                if self.paradigm.phase is Phase.DONE
                else SessionStatus.ABORTED
            )
        if self.fatal is not None:
            status = SessionStatus.FAILED
        self._safely("ending the paradigm", self._end_paradigm)
        if self.bus is not None:
            self._safely("closing the trigger bus", self.bus.close, 1.0)
            self._safely("waiting for the last pulse", self._await_last_pulse)
        for rec in self.recorders.values():
            rec.request_stop()
        deadline = time.monotonic() + RECORDER_STOP_S
        for name, rec in self.recorders.items():
            if self.pipeline is not None and rec is self.pipeline.grabber:
                continue
            if not rec.stop(max(0.05, deadline - time.monotonic())):
                self._problem(f"the {name} recorder did not stop (its device hangs)")
        if self.pipeline is not None:
            clean = self._safely("stopping the camera", self.pipeline.stop)
            if clean is False and self.fatal is None:
                self._problem("the frame writer did not finish cleanly; see the faults")
        if self.bus is not None and self.bus.ttl_failures:
            self._problem(f"{self.bus.ttl_failures} trigger-box writes failed")
        if self.fatal is None:
            self._watch_workers(self.clock())  # a failure in the last moments
        if (
            any(r.state is RecorderState.FAILED for r in self.recorders.values())
            and status is SessionStatus.COMPLETE
        ) or self.fatal is not None:
            status = SessionStatus.FAILED
        truth = self._safely("reading the simulators' truth", self._ground_truth)
        self._safely("closing the devices", self._close_devices)
        folder = None
        if self.writer is not None:
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
            try:
                self.writer.finalize(status, extra)
            finally:
                self.state = EngineState.FINISHED
            folder = self.writer.folder
        self.state = EngineState.FINISHED
        return folder

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

    def _end_paradigm(self) -> None:
        if self.paradigm.phase not in (Phase.IDLE, Phase.DONE, Phase.ABORTED):
            self.paradigm.abort(self.clock())

    def _ground_truth(self) -> Any:
        return self.simlab.ground_truth() if self.simlab is not None else None

    def _safely(self, what: str, step: Callable[..., Any], *args: Any) -> Any:
        """Run one step of the stop; a failure is logged and becomes a problem."""
        try:
            return step(*args)
        except Exception as exc:  # the next steps and the manifest must run
            logger.exception("%s failed", what)
            self._problem(f"{what} failed: {exc!r}")
            return None

    def _close_devices(self) -> None:
        """Close every device at once, each in its own thread, with one deadline
        (``DEVICE_CLOSE_S``): a device that hangs in its close is left to finish in
        the background and named as a problem, so the save is not held."""
        closers = [(name, d.close) for name, d in self.signal_drivers.items()] + [
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
        for (name, _), t in zip(closers, threads, strict=True):
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                self._problem(
                    f"closing the {name} did not finish within {DEVICE_CLOSE_S:g} s "
                    f"(it hangs; left to finish in the background)"
                )
            elif name in errors and self.state is EngineState.STOPPING:
                self._problem(f"closing the {name}: {errors[name]}")
        if self.simlab is not None:
            simlab, self.simlab = self.simlab, None
            try:
                simlab.close()
            except Exception:
                logger.exception("closing the simulated lab")

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
