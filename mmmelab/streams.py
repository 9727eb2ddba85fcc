"""What a recorded stream is: its kind and the shape of its samples.

A base module: the drivers describe their stream with these types when they
connect, storage writes them into the session, the engine passes them from one
to the other unchanged. It imports no layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StreamKind(enum.StrEnum):
    """A stream's kind as the session manifest stores it (``streams.<name>.kind``)."""

    CAMERA = "camera"
    EEG = "eeg"
    PHYSIO = "physio"
    LSL = "lsl"  # any other LSL stream the lab records (an eye tracker, ...)
    MARKERS = "markers"

    @classmethod
    def of_device(cls, name: str) -> StreamKind:
        """The kind of the signal stream a device called ``name`` delivers."""
        return {"eeg": cls.EEG, "physio": cls.PHYSIO, "camera": cls.CAMERA}.get(name, cls.LSL)


@dataclass(frozen=True)
class AuxSpec:
    """A per-sample side array of a signal stream (a trigger word, digital lines, LSL's
    own timestamps): ``width`` values of numpy ``dtype`` per sample."""

    name: str
    dtype: str
    width: int = 1


@dataclass(frozen=True)
class SignalLayout:
    """What a signal device delivers, fixed when it connects: channel names, their
    ``units`` (one unit for all, e.g. ``uV``), the nominal rate in Hz and the side arrays."""

    channels: tuple[str, ...]
    units: str
    rate_hz: float
    aux: tuple[AuxSpec, ...] = ()


class StimulusKind(enum.IntEnum):
    """What the participant's screen presented (the presentation log's ``kind``)."""

    CLIP = 1  # a trial's emotional clip (or a practice clip)
    NEUTRAL = 2  # the neutral clip after the rating
    DISPLAY_CHECK = 3  # the set-up's test clip: not a trial, nothing is logged


class AudioState(enum.IntEnum):
    """What became of a clip's sound (the presentation log's ``audio``)."""

    NONE = 0  # no sound yet (or the clip has none)
    PLAYED = 1
    NO_DEVICE = 2  # no audio output device
    FAILED = 3  # the sound did not start


class FaultKind(enum.StrEnum):
    """What a fault row in the session says happened (``faults.kind``, stored as its
    value). Drivers, recorders, writers, the engine and the GUI report with these;
    ``mmme check`` judges by them."""

    GAP = "gap"  # samples missing (a sample index jumped, or estimated)
    DROPPED = "dropped"  # camera frames the device skipped
    MALFORMED = "malformed"  # a block that could not be decoded, dropped
    RESYNC = "resync"  # garbage bytes skipped to find the next header
    DISCONNECT = "disconnect"  # the connection to a device broke
    RECONNECT = "reconnect"  # ... and was made again
    RESTART = "restart"  # acquisition restarted on the vendor's side
    STALL = "stall"  # a device was silent for a while; nothing need be lost
    LOST = "lost"  # a stream (or the TTL pulses, a clip, its sound) ended or is missing
    RECOVERED = "recovered"  # what was lost works again
    EVENT = "event"  # a marker the device was to note could not be placed
    CLOCK = "clock"  # a clock correction failed
    CLOCK_RESET = "clock_reset"  # the camera's timestamp counter was zeroed
    SYNC = "sync"  # live sync: triggers missing or residuals high (count 0: recovered)
    WARNING = "warning"  # something to know that costs no data (a slow disk, a screen)
    FATAL = "fatal"  # the session had to stop
    LISTENER_ERROR = "listener_error"  # a marker listener raised
    WRITER_LOG = "writer_log"  # a line the frame writer logged
    WRITER_RESTART = "writer_restart"  # a frame writer was replaced
    VOLUME_LOST = "volume_lost"  # a disk left the stripe; the others took its frames

    @property
    def informational(self) -> bool:
        """A fault that, by itself, does not make a session's check fail."""
        return self in _INFORMATIONAL


_INFORMATIONAL = frozenset(
    {FaultKind.WARNING, FaultKind.RECOVERED, FaultKind.SYNC, FaultKind.WRITER_LOG,
     FaultKind.WRITER_RESTART, FaultKind.STALL, FaultKind.VOLUME_LOST}
)  # fmt: skip


class SyncState(enum.StrEnum):
    """A stream's live sync health while recording (:attr:`StreamHealth.state`)."""

    WAITING = "waiting"  # no trigger edge matched yet
    OK = "ok"
    NO_TRIGGERS = "no_triggers"  # markers were sent but no edge arrived: a cable out?
    RESIDUAL_HIGH = "residual_high"  # edges arrive, but off the clock map by too much

    @property
    def bad(self) -> bool:
        """Recorded as a fault when a stream enters it (and again when it leaves)."""
        return self in (SyncState.NO_TRIGGERS, SyncState.RESIDUAL_HIGH)


@dataclass(frozen=True)
class StreamHealth:
    """One stream's live alignment against the markers sent (frozen; part of the
    recording's telemetry)."""

    state: SyncState = SyncState.WAITING
    edges: int = 0
    offset_ms: float = float("nan")  # master minus device time now, ms
    drift_ppm: float = float("nan")
    residual_ms: float = float("nan")
    last_edge_age_s: float = float("nan")
    message: str = ""


class ConsentLevel(enum.IntEnum):
    """What a participant agreed to (the manifest's ``participant.consent_level``)."""

    PUBLIC = 1  # all data may be shared and the face shown
    RESEARCH_ONLY = 2  # data for research; face images and video may not be published
