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
