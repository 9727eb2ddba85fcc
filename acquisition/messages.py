"""What the engine and its consoles say to each other: the session's states and
commands, the events a console is told (frozen values, small; frames and samples
travel in shared memory, never here), the messages on the service's connection,
and where the running service is.

Events go from :class:`~mmmelab.acquisition.control.EngineRunner` to a console in
its own process or over the connection of :mod:`mmmelab.acquisition.service`;
their classes must stay importable under these names (they are pickled).
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmmelab.acquisition.livewindow import WindowRef
from mmmelab.acquisition.paradigm import Phase, TrialResult
from mmmelab.acquisition.telemetry import EngineTelemetry
from mmmelab.config import LabConfig
from mmmelab.protocol import Clip, Protocol


class ControllerState(enum.StrEnum):
    """Where the session is as the console shows it (the control thread sets it; events
    carry it)."""

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


LIVE_STATES = (ControllerState.READY, ControllerState.CHECKING_RIG)


class Command(enum.Enum):
    """What the console asks of the control thread (queued, done in order)."""

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
    """A finished session: its folder, its status, the integrity check and the alignment
    summary (made in a separate process after the stop)."""

    folder: Path | None
    status: str
    check: dict[str, Any] = field(default_factory=dict)
    alignment: list[str] = field(default_factory=list)
    error: str = ""
    stop_s: float = float("nan")  # how long the stop and save took
    failure: str | None = None  # the fault that ended the session, if one did


# ------------------------------------------------------------ events (runner -> console)


@dataclass(frozen=True)
class StateChanged:
    """Event: the controller's state changed (with the session's folder once it exists)."""

    state: ControllerState
    folder: Path | None = None  # the session's folder, once started


@dataclass(frozen=True)
class Connected:
    """The devices are open: what the console lays out its views with."""

    streams: dict[str, list[str]]  # signal stream -> channel names
    camera_limits: dict[str, tuple[float, float]]
    stimuli_dir: Path | None
    windows: dict[str, WindowRef | None]  # where each live window is (None: this process)


@dataclass(frozen=True)
class PhaseChanged:
    """Event: the paradigm entered a phase (what the participant's screens show next)."""

    info: PhaseInfo


@dataclass(frozen=True)
class TrialDone:
    """Event: a trial ended (its clip onset, rating and timing)."""

    trial: TrialResult


@dataclass(frozen=True)
class MarkerMade:
    """Event: the trigger bus sent a marker (its code, label and master-clock times)."""

    record: Any  # MarkerRecord


@dataclass(frozen=True)
class Failed:
    """Event: the session or the connection failed; ``message`` says what, for the
    experimenter."""

    message: str


@dataclass(frozen=True)
class Finished:
    """Event: the session is saved, checked and aligned."""

    result: SessionResult


@dataclass(frozen=True)
class RigChecked:
    """Event: the set-up checks ran; ``record`` holds every check's verdict, reason and
    figures."""

    record: dict[str, Any]


@dataclass(frozen=True)
class CameraAdjusted:
    """Event: camera settings were changed from the console (or why they could not be)."""

    settings: dict[str, Any]  # the settings in force, or {"error": ...}


@dataclass(frozen=True)
class ImpedanceChanged:
    """Event: the amplifier entered (``on``) or left impedance mode."""

    on: bool


@dataclass(frozen=True)
class Telemetry:
    """Event: every stream's figures
    (:class:`~mmmelab.acquisition.telemetry.EngineTelemetry`), twice a second."""

    values: EngineTelemetry  # every stream's figures, twice a second


@dataclass(frozen=True)
class CameraLive:
    """Event: the camera's live checks before Start (focus, exposure, flicker in the face
    box), for the set-up view."""

    values: dict[str, Any]  # the live camera figures in preview


@dataclass(frozen=True)
class PreviewAt:
    """The camera preview's shared buffer (None: no preview in shared memory now)."""

    name: str | None


Event = (
    StateChanged
    | Connected
    | PhaseChanged
    | TrialDone
    | MarkerMade
    | Failed
    | Finished
    | RigChecked
    | CameraAdjusted
    | ImpedanceChanged
    | Telemetry
    | CameraLive
    | PreviewAt
)
Emit = Callable[[Event], None]


def clip_file(stimuli_dir: Path | None, clip: Clip | None) -> Path | None:
    """The file of ``clip`` in the session's clip folder (None before connecting)."""
    return stimuli_dir / clip.file if (clip is not None and stimuli_dir is not None) else None


# ------------------------------------------------------------ messages (console -> service)


@dataclass(frozen=True)
class Setup:
    """The session to run (the first message to a new service)."""

    lab: LabConfig
    protocol: Protocol
    out_root: Path | None = None
    run_checks: bool = True
    seed: int = 0
    orphan_timeout_s: float | None = None  # None: the lab's [screens] console_lost_stop_s


class Role(enum.StrEnum):
    """Who is on a connection to the service: the experimenter's console, or the
    participant's windows (a process of their own). One of each at a time."""

    CONSOLE = "console"
    PARTICIPANT = "participant"


@dataclass(frozen=True)
class Join:
    """The first message on a connection: who joins, and for a new service its session."""

    role: Role
    setup: Setup | None = None


@dataclass(frozen=True)
class Put:
    """Wire message: a console's command for the control thread (queued, answered by
    events)."""

    command: Command
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Call:
    """Wire message: a console's direct call of one of the runner's methods (``CALLS``)."""

    method: str  # one of CALLS
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Detach:
    """The client leaves; the session goes on (the orphan rule applies to consoles)."""


# ------------------------------------------------------------ messages (service -> console)


@dataclass(frozen=True)
class Hello:
    """The session as it is when a console attaches."""

    pid: int
    lab: LabConfig
    protocol: Protocol
    state: ControllerState
    folder: Path | None
    connected: Connected | None
    phase: PhaseInfo | None
    telemetry: EngineTelemetry
    camera_live: dict[str, Any]
    preview: str | None
    result: SessionResult | None
    error: str = ""


@dataclass(frozen=True)
class Bye:
    """The service ends (or another console took over); no more messages follow."""

    reason: str


# ------------------------------------------------------------ where the service is


def run_dir() -> Path:
    """The folder of the socket and the service file (made, mode 0700)."""
    env = os.environ.get("MMME_RUN_DIR")
    if env:
        folder = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "mmme-lab"
    else:
        folder = Path(tempfile.gettempdir()) / f"mmme-lab-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class ServiceInfo:
    """Where a process listens (a Unix socket), its key and its id, kept in the run
    folder as ``<name>.json``: ``engine`` (the session service), ``participant``
    (the participant's windows)."""

    address: str
    key: bytes
    pid: int

    @classmethod
    def read(cls, folder: Path | None = None, name: str = "engine") -> ServiceInfo | None:
        """The running process's address, or None when there is none."""
        path = (folder or run_dir()) / f"{name}.json"
        try:
            raw = json.loads(path.read_text())
            info = cls(str(raw["address"]), bytes.fromhex(raw["key"]), int(raw["pid"]))
        except (OSError, ValueError, KeyError):
            return None
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None  # left by a service that was killed
        except PermissionError:
            pass
        return info

    def write(self, folder: Path, name: str = "engine") -> None:
        path = folder / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"address": self.address, "key": self.key.hex(), "pid": self.pid}, f)
        os.replace(tmp, path)
