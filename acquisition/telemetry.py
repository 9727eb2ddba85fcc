"""The live figures of a recording, as frozen values.

The camera's grabber makes a :class:`CameraTelemetry` once a second; the control
thread (:mod:`mmmelab.acquisition.control`) gathers an :class:`EngineTelemetry`
twice a second and sends it to the console (pickled across the process boundary),
which only reads it. Nothing is changed after it is made, so a reader in another
thread never sees half an update.

The manifest keeps the final figures as :meth:`EngineTelemetry.as_dict`: the same
keys the session format has always had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmmelab.streams import StreamHealth


@dataclass(frozen=True)
class VolumeTelemetry:
    """One volume of a (striped) camera recording."""

    volume: int
    folder: str
    bytes: int  # written to it so far
    writer_mb_s: float | None  # None in the first second (no rate yet)
    free_bytes: int
    time_to_full_s: float | None  # None when the volume is out of the stripe
    in_stripe: bool
    error: str | None


@dataclass(frozen=True)
class CameraTelemetry:
    """The camera pipeline's figures (the grabber thread makes one a second)."""

    fps: float = 0.0  # frames per second grabbed over the last second
    writer_mb_s: float = 0.0  # MB/s the writers put on disk over the last second
    ring_fill: float = 0.0  # 0-1, the fullest lossless writer's share of the ring
    ring_high_water: float = 0.0  # 0-1, the highest fill so far
    frames: int = 0  # grabbed
    written: int = 0
    dropped: int = 0  # lost by the camera or to a full ring
    ring_overflow: int = 0
    api_skipped: int = 0  # the camera API's own skipped-frame counters
    transport_skipped: int = 0
    free_disk_bytes: int = 0  # on the volumes in the stripe
    time_to_full_s: float = float("inf")
    warning: str = ""
    volumes: tuple[VolumeTelemetry, ...] = ()


@dataclass(frozen=True)
class StreamTelemetry:
    """One stream's figures: a signal's sample count, nominal rate and how far behind
    live it is, or the camera's pipeline figures; before Start (the preview) the
    state, the counts and the rate (fps for the camera)."""

    state: str  # the recorder's state ("running", ...), or "live"/"failed" in the preview
    faults: int | None = None  # faults recorded (None in the preview)
    samples: int | None = None  # a signal's samples so far
    rate_hz: float | None = None  # a signal's nominal rate
    latency_ms: float | None = None  # age of a signal's newest block
    dropped: int | None = None  # samples or frames lost (the preview counts none)
    fps: float | None = None  # the preview camera's measured frame rate
    frames: int | None = None  # the preview camera's frames so far
    camera: CameraTelemetry | None = None  # the recording camera's pipeline figures
    disk_probe_mb_s: float | None = None  # the pre-flight's measured disk write rate

    @property
    def lost(self) -> int:
        """Frames or samples lost so far."""
        if self.camera is not None:
            return self.camera.dropped
        return self.dropped or 0

    def as_dict(self) -> dict[str, Any]:
        """The session format's dict (the camera's figures flattened into it)."""
        out: dict[str, Any] = {"state": self.state}
        for name in ("faults", "samples", "rate_hz", "latency_ms", "fps", "frames", "dropped"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.camera is not None:
            out |= dataclasses.asdict(self.camera)
            out["volumes"] = [dataclasses.asdict(v) for v in self.camera.volumes]
        if self.disk_probe_mb_s is not None:
            out["disk_probe_mb_s"] = self.disk_probe_mb_s
        return out


@dataclass(frozen=True)
class EngineTelemetry:
    """Every stream's figures, the live sync health while recording, and where the
    session is. ``t`` is the master-clock time (s) it was taken at."""

    streams: Mapping[str, StreamTelemetry] = field(default_factory=dict)
    state: str | None = None  # the engine's state (None in the preview)
    phase: str | None = None  # the paradigm's phase
    sync: Mapping[str, StreamHealth] = field(default_factory=dict)
    t: float = 0.0
    paused: bool = False  # the paradigm is paused, or will pause after this trial

    def stream(self, name: str) -> StreamTelemetry | None:
        return self.streams.get(name)

    @property
    def camera(self) -> CameraTelemetry | None:
        """The camera pipeline's figures (None before recording or without a camera)."""
        entry = self.streams.get("camera")
        return entry.camera if entry is not None else None

    def as_dict(self) -> dict[str, Any]:
        """The session format's dict (the manifest's ``telemetry``)."""
        out: dict[str, Any] = {}
        if self.state is not None:
            out |= {"state": self.state, "phase": self.phase}
        out |= {name: s.as_dict() for name, s in self.streams.items()}
        if self.sync or self.state == "recording":
            out["sync"] = {n: dataclasses.asdict(h) for n, h in self.sync.items()}
        return out
