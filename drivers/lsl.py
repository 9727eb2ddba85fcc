"""Lab Streaming Layer: the session's marker outlet.

Markers follow the LSL convention (type ``Markers``, one string channel,
irregular rate) with a stable ``source_id`` so that a recorder that loses the
stream can find it again. Each marker is stamped with the moment its code byte
went to the trigger box, on the master clock (``pylsl.local_clock``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import numpy as np
import pylsl
from pylsl.util import LostError as LslLostError
from pylsl.util import TimeoutError as LslTimeoutError

from mmmelab.config import LslStreamConfig
from mmmelab.drivers.base import DeviceFault, SampleBlock
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError
from mmmelab.streams import AuxSpec, FaultKind, SignalLayout

logger = logging.getLogger(__name__)


def local_clock() -> float:
    """The master clock of the lab: LSL's monotonic clock, seconds."""
    return float(pylsl.local_clock())


class MarkerOutlet:
    """One LSL string-marker outlet. ``push`` is called from the trigger-bus thread."""

    name = "lsl"

    def __init__(self, stream_name: str, session_id: str) -> None:
        self.stream_name = stream_name
        self.source_id = f"mmme-lab@{socket.gethostname()}:{stream_name}"
        info = pylsl.StreamInfo(
            stream_name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("session", session_id)
        desc.append_child_value("software", "mmme-lab")
        try:
            self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        except (RuntimeError, OSError) as exc:
            raise DeviceError(self.name, f"cannot create the LSL marker outlet ({exc})") from None
        self.pushed = 0

    def push(self, text: str, timestamp: float) -> None:
        if self._outlet is None:
            return
        try:
            self._outlet.push_sample([text], timestamp)
        except (RuntimeError, OSError, ValueError) as exc:
            raise DeviceError(self.name, f"pushing a marker failed ({exc})") from None
        self.pushed += 1

    def info(self) -> dict[str, object]:
        return {"stream": self.stream_name, "source_id": self.source_id, "type": "Markers"}

    def close(self) -> None:
        self._outlet = None


class LslInlet:
    """Record any numeric LSL stream a lab already has (an amplifier's LSL app, an eye
    tracker) as one more stream of the session. Implements ``drivers.base.SignalDriver``.

    Every sample keeps its LSL timestamp (the sender's clock) in the ``lsl_time`` aux
    array, and the clock offset to the master clock measured by LSL
    (``time_correction``, refreshed every ``offset_interval_s``) in ``lsl_offset``:
    ``lsl_time + lsl_offset`` is the sample's time on the master clock. For
    regular-rate streams a jump in the timestamps is recorded as a gap. LSL's own
    recovery reconnects to a restarted sender (same source_id) by itself.
    """

    def __init__(
        self,
        stream: LslStreamConfig,
        clock: Callable[[], float],
        timeout_s: float = 5.0,
        offset_interval_s: float = 5.0,
    ) -> None:
        self.stream = stream
        self.name = stream.label
        self.clock = clock
        self.timeout_s = timeout_s
        self.offset_interval_s = offset_interval_s
        self.faults: list[DeviceFault] = []
        self._inlet: pylsl.StreamInlet | None = None
        self.rate_hz = 0.0
        self._count = 0
        self._offset = 0.0
        self._next_offset = 0.0
        self._last_ts: float | None = None
        self.source_id = ""

    def connect(self) -> SignalLayout:
        prop, value = (
            ("source_id", self.stream.source_id)
            if self.stream.source_id
            else ("name", self.stream.name)
        )
        try:
            found = pylsl.resolve_byprop(prop, value, timeout=self.timeout_s)
        except (RuntimeError, OSError, ValueError) as exc:
            raise DeviceError(self.name, f"resolving LSL streams failed ({exc})") from None
        if self.stream.type:
            found = [f for f in found if f.type() == self.stream.type]
        if not found:
            kind = f" and type {self.stream.type!r}" if self.stream.type else ""
            raise DeviceTimeoutError(
                self.name,
                f"no LSL stream with {prop} {value!r}{kind} found within {self.timeout_s:g} s",
            )
        info = found[0]
        if info.channel_format() in (pylsl.cf_string,):
            raise DeviceError(
                self.name,
                f"LSL stream {info.name()!r} carries strings; record "
                f"numeric streams here (markers go through the "
                f"trigger bus)",
            )
        self.rate_hz = float(info.nominal_srate())
        self.source_id = info.source_id()
        self._inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True)
        full = self._inlet.info(timeout=self.timeout_s)
        labels: list[str] = []
        ch = full.desc().child("channels").child("channel")
        while not ch.empty() and len(labels) < info.channel_count():
            labels.append(ch.child_value("label") or f"ch{len(labels) + 1}")
            ch = ch.next_sibling()
        if len(labels) != info.channel_count():
            labels = [f"ch{i + 1}" for i in range(info.channel_count())]
        return SignalLayout(
            channels=tuple(labels),
            units="",
            rate_hz=self.rate_hz,
            aux=(AuxSpec("lsl_time", "<f8"), AuxSpec("lsl_offset", "<f8")),
        )

    def start(self) -> None:
        assert self._inlet is not None
        try:
            self._inlet.open_stream(timeout=self.timeout_s)
        except LslTimeoutError:
            raise DeviceTimeoutError(self.name, "the LSL stream did not open in time") from None
        except (RuntimeError, OSError, ValueError) as exc:
            raise DeviceError(self.name, f"opening the LSL stream failed ({exc})") from None
        self._refresh_offset(self.clock())

    def _refresh_offset(self, now: float) -> None:
        assert self._inlet is not None
        try:
            self._offset = float(self._inlet.time_correction(timeout=1.0))
        except (LslTimeoutError, LslLostError, RuntimeError) as exc:
            self.faults.append(
                DeviceFault(
                    now,
                    FaultKind.CLOCK,
                    1,
                    f"LSL time correction failed ({type(exc).__name__}); the previous "
                    f"offset is kept",
                )
            )
        self._next_offset = now + self.offset_interval_s

    def read(self, timeout_s: float) -> list[SampleBlock]:
        assert self._inlet is not None
        try:
            samples, stamps = self._inlet.pull_chunk(timeout=timeout_s)
        except LslLostError:
            raise DeviceLostError(self.name, "the LSL stream is gone") from None
        except (RuntimeError, OSError, ValueError) as exc:
            raise DeviceLostError(self.name, f"reading the LSL stream failed ({exc})") from None
        now = self.clock()
        if now >= self._next_offset:
            self._refresh_offset(now)
        if not stamps:
            return []
        ts = np.asarray(stamps, dtype=np.float64)
        if self.rate_hz > 0 and self._last_ts is not None:
            jump = ts[0] - self._last_ts
            missing = int(round(jump * self.rate_hz)) - 1
            if missing > 0:
                self.faults.append(
                    DeviceFault(
                        now,
                        FaultKind.GAP,
                        missing,
                        f"LSL timestamps jumped by {jump * 1000:.1f} ms",
                    )
                )
                self._count += missing
        self._last_ts = float(ts[-1])
        first = self._count
        self._count += len(ts)
        data = np.asarray(samples, dtype=np.float32).reshape(len(ts), -1)
        return [
            SampleBlock(
                first, data, now, {"lsl_time": ts, "lsl_offset": np.full(len(ts), self._offset)}
            )
        ]

    def info(self) -> dict[str, object]:
        return {"lsl_name": self.stream.name, "source_id": self.source_id, "rate_hz": self.rate_hz}

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
