"""Lab Streaming Layer: the session's marker outlet.

Markers follow the LSL convention (type ``Markers``, one string channel,
irregular rate) with a stable ``source_id`` so that a recorder that loses the
stream can find it again. Each marker is stamped with the moment its code byte
went to the trigger box, on the master clock (``pylsl.local_clock``).
"""

from __future__ import annotations

import logging
import socket

import pylsl

from mmmelab.errors import DeviceError

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
        self._outlet.push_sample([text], timestamp)
        self.pushed += 1

    def info(self) -> dict[str, object]:
        return {"stream": self.stream_name, "source_id": self.source_id, "type": "Markers"}

    def close(self) -> None:
        self._outlet = None
