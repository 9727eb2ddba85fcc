"""The session as it is written: its manifest, its rows and the markers' fan-out.

``SessionRecord`` wraps the session writer once Start has created it. Every
marker the trigger bus sends reaches, in order: the live sync check, the
session's marker log, the AcqKnowledge graph (where the physiology device takes
notes) and the GUI's listeners; a TTL that stops (or starts again) working
becomes a fault row. ``fault`` and ``log`` may be called from any thread: they
only queue rows for the signal writer's process. ``marker`` runs on the trigger
bus's thread.
"""

from __future__ import annotations

import logging
import platform
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.acquisition.camera_pipeline import TELEMETRY_DTYPE
from mmmelab.acquisition.devices import DeviceSet
from mmmelab.acquisition.paradigm import TrialResult
from mmmelab.config import LabConfig
from mmmelab.protocol import Protocol
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import DISPLAY_DTYPE, SESSION_LOGS, TRIAL_DTYPE
from mmmelab.storage.sessionwriter import SessionWriter
from mmmelab.storage.signals import SignalFile, SignalSpec
from mmmelab.streams import FaultKind, StreamHealth, SyncState
from mmmelab.sync.bus import MarkerRecord
from mmmelab.sync.codes import EventCode
from mmmelab.sync.live import LiveSync

logger = logging.getLogger(__name__)


def environment() -> dict[str, str]:
    """The software a session was recorded with, for its manifest."""
    import h5py
    import pylsl

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "pylsl": pylsl.__version__,
        "mmme_lab": __version__,
        "platform": platform.platform(),
    }


def clock_info(master_now: float) -> dict[str, Any]:
    """The master clock at the session's start, with the wall clock beside it."""
    return {
        "master": "pylsl.local_clock",
        "start_master_s": master_now,
        "start_unix_s": time.time(),
        "host": socket.gethostname(),
    }


def manifest_fields(
    participant: Any,
    lab: LabConfig,
    lab_requested: LabConfig,
    protocol: Protocol,
    devices: dict[str, Any],
    disk: dict[str, Any],
    setup: dict[str, Any],
    master_now: float,
) -> dict[str, Any]:
    """The manifest of a session as Start writes it (the stop adds its outcome)."""
    return {
        "participant": {
            "id": participant.id,
            "session": participant.session,
            "consent_level": participant.consent_level,
            "notes": participant.notes,
        },
        "simulated": lab.simulated_devices(),
        "clock": clock_info(master_now),
        "lab": lab.to_dict(),
        "lab_requested": lab_requested.to_dict(),
        "protocol": protocol.to_dict(),
        "devices": devices,
        "disk_check": disk,
        "setup": setup,
        "environment": environment(),
    }


def trial_row(trial: TrialResult) -> np.ndarray:
    """One row of the session's ``trials`` log."""
    r = trial.rating
    return np.array(
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


class SessionRecord:
    """The rows and markers of one session; ``writer`` is None until Start."""

    def __init__(self, clock: Callable[[], float], live: LiveSync) -> None:
        self.clock = clock
        self.live = live
        self.writer: SessionWriter | None = None
        #: called with every marker, after it is recorded (the GUI's listeners)
        self.on_marker: list[Callable[[MarkerRecord], None]] = []
        #: where the physiology device takes a note of each marker (AcqKnowledge), if anywhere
        self.device_note: Callable[[str], Any] | None = None
        self._ttl_ok = True
        self._sync_state: dict[str, SyncState] = {}
        self._next_sync_check = 0.0

    def open(
        self,
        out_root: Path,
        fields: dict[str, Any],
        participant: str,
        session: int,
        devices: DeviceSet,
        geometry: FrameGeometry,
    ) -> SessionWriter:
        """Create the session folder (its manifest from ``fields``) and its signal file,
        with a stream per signal device and the frames' geometry."""
        writer = SessionWriter(out_root, fields, participant, session)
        self.writer = writer
        specs = [SignalSpec.of(n, lay, devices.info[n]) for n, lay in devices.layouts.items()]
        logs = {"telemetry": TELEMETRY_DTYPE, **SESSION_LOGS}
        writer.open_streams(geometry, specs, camera_info=devices.info["camera"], logs=logs)
        return writer

    def finalize(self, status: SessionStatus, extra: dict[str, Any]) -> Path | None:
        """The manifest's last fields and the session's status; its folder (None when
        the session never started)."""
        if self.writer is None:
            return None
        self.writer.finalize(status, extra)
        return self.writer.folder

    @property
    def signals(self) -> SignalFile | None:
        return self.writer.signals if self.writer is not None else None

    def marker(self, rec: MarkerRecord) -> None:
        """A marker the trigger bus sent (on the bus's thread)."""
        if rec.ttl_ok:
            self.live.marker(rec.t_on, int(rec.code), rec.t_off)
        signals = self.signals
        if rec.ttl_ok != self._ttl_ok and signals is not None:
            if rec.ttl_ok:
                kind, detail = FaultKind.RECOVERED, "TTL pulses work again"
            else:
                kind, detail = FaultKind.LOST, ("trigger box write failed: TTL pulses are missing "
                                        "from the devices; LSL markers continue")  # fmt: skip
            signals.fault(rec.t_on, "triggerbox", kind, 1, detail)
            self._ttl_ok = rec.ttl_ok
        if self.device_note is not None:  # the code also goes into the AcqKnowledge graph
            self.device_note(f"{int(rec.code)} {rec.code.name} {rec.label}".strip())
        if signals is not None:
            signals.marker(
                rec.seq, int(rec.code), rec.label, rec.t_request, rec.t_on, rec.t_off, rec.ttl_ok
            )
        for cb in self.on_marker:
            cb(rec)

    def trial_done(self, trial: TrialResult) -> None:
        self.log("trials", trial_row(trial))

    def log(self, name: str, rows: np.ndarray) -> None:
        """Append rows to one of the session's logs (``SESSION_LOGS``); any thread."""
        signals = self.signals
        if signals is not None:
            signals.log(name, rows)

    def log_display(self, code: EventCode, t_input: float, t_display: float, label: str) -> None:
        """When an input (``t_input``) reached the screen (``t_display``), master clock."""
        row = np.array([(int(code), t_input, t_display, label[:48].encode())], DISPLAY_DTYPE)
        self.log("display", row)

    def fault(self, stream: str, kind: FaultKind, count: int, detail: str) -> None:
        """A fault row in the session (dropped before Start: nothing is recorded yet)."""
        signals = self.signals
        if signals is not None:
            signals.fault(self.clock(), stream, kind, count, detail)

    def sync_states(self, health: Callable[[], dict[str, StreamHealth]]) -> None:
        """Once a second: a stream that lost its triggers or drifted off becomes a
        fault row, and one that recovers another."""
        now = self.clock()
        if now < self._next_sync_check or self.signals is None:
            return
        self._next_sync_check = now + 1.0
        for name, h in health().items():
            before = self._sync_state.get(name, SyncState.WAITING)
            if h.state == before:
                continue
            self._sync_state[name] = h.state
            if h.state.bad:
                logger.warning("sync: %s", h.message)
                self.fault(name, FaultKind.SYNC, 1, h.message)
            elif before.bad:
                self.fault(name, FaultKind.SYNC, 0, "triggers seen again")
