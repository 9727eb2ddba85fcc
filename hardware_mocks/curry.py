"""A Curry 8/9 NetStreaming server on 127.0.0.1 with a simulated SynAmps RT behind it.

Wire format (../shared/reference/devices.md 1b): every packet starts with a
20-byte big-endian header ``chanID[4] code:u16 request:u16 sample:u32 size:u32
size_uncompressed:u32``; bodies are little-endian. The client sends
``CTRL 2 <request>``; the server answers with ``DATA 1 <info type>`` packets
(version, basic info, channel info) and, once streaming starts, ``DATA 2 1``
float32 microvolt blocks (channel-fastest, absolute start sample in the header)
and ``DATA 3 3`` event packets at trigger edges.

The EEG channels are followed by a ``Trigger`` channel carrying the 16-bit event
word (``idle_word`` in the high byte, the wire's code in the low byte), sampled
from the shared :class:`VirtualWire` at each sample's time on the amplifier clock.
Faults: see :class:`~mmmelab.hardware_mocks.tcpserver.FaultPlan`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from mmmelab.hardware_mocks.synth import eeg_background, eeg_labels
from mmmelab.hardware_mocks.tcpserver import FaultPlan, StreamingServer
from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire
from mmmelab.sync.codes import code_onsets

HEADER = struct.Struct(">4sHHIII")
EVENT = struct.Struct("<iiii520s")


def _packet(chan: bytes, code: int, request: int, sample: int, body: bytes) -> bytes:
    return HEADER.pack(chan, code, request, sample & 0xFFFFFFFF, len(body), len(body)) + body


class CurryServer(StreamingServer):
    """Curry NetStreaming on ``127.0.0.1:self.port``."""

    name = "curry"

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        n_channels: int = 64,
        rate_hz: float = 1000.0,
        block_samples: int = 40,
        idle_word: int = 0,
        device_clock: DeviceClock | None = None,
        latency_s: float = 0.0005,
        faults: FaultPlan | None = None,
        seed: int = 1,
    ) -> None:
        self.n_channels = n_channels
        self.idle_word = idle_word
        self.labels = [*eeg_labels(n_channels), "Trigger"]
        self._signal = eeg_background(n_channels, rate_hz, 10.0, seed)
        self._last_code = 0
        # Curry's impedance check, when the operator runs it: kOhm per EEG channel, sent
        # as Data_Impedance packets (DATA, 4) about once a second while streaming. The
        # body layout is our reading (float32 ohms per EEG channel, little-endian):
        # devices.md names only the code; check it against a real Curry.
        self.impedance_kohm: np.ndarray | None = None
        self.impedance_every_blocks = 25
        super().__init__(wire, clock, rate_hz, block_samples, device_clock, latency_s, faults, seed)

    @property
    def drop_blocks(self) -> set[int]:
        return self.faults.drop_blocks

    @drop_blocks.setter
    def drop_blocks(self, blocks: set[int]) -> None:
        self.faults.drop_blocks = blocks

    def handle(self, conn: socket.socket, state: dict[str, Any], data: bytes) -> bytes:
        while len(data) >= HEADER.size:
            chan, code, request, _, size, _ = HEADER.unpack_from(data)
            if len(data) < HEADER.size + size:
                break
            data = data[HEADER.size + size :]
            if chan != b"CTRL" or code != 2:
                raise ConnectionError(f"unexpected packet {chan!r} {code}")
            if request == 8:
                self.start_stream(conn, state)
            elif request == 9:
                self.stop_stream(state)
            elif request == 1:  # version
                self.send(conn, _packet(b"DATA", 1, 1, 0, struct.pack("<I", 900)))
            elif request == 6:  # basic info: size, channels, rate, data size, amp, rec
                body = struct.pack("<6I", 24, len(self.labels), int(self.rate_hz), 4, 0, 0)
                self.send(conn, _packet(b"DATA", 1, 2, 0, body))
            elif request == 3:  # channel info, 136 bytes per channel
                body = b"".join(self._channel_info(i, lab) for i, lab in enumerate(self.labels))
                self.send(conn, _packet(b"DATA", 1, 4, 0, body))
        return data

    @staticmethod
    def _channel_info(index: int, label: str) -> bytes:
        name = label.encode("utf-16-le")[:78].ljust(80, b"\0")
        chan_type = 2 if label == "Trigger" else 1
        return struct.pack(
            "<I80sIII3dIIfI", index + 1, name, chan_type, 1, 0, 0.0, 0.0, 0.0, 0, 0, 1.0, 0
        )

    def signal(self, first_sample: int, n: int) -> np.ndarray:
        return self._signal[(first_sample + np.arange(n)) % len(self._signal)]

    def block(self, first_sample: int, data: np.ndarray, codes: np.ndarray) -> bytes:
        words = (self.idle_word & 0xFF00) | (codes & 0xFF)
        values = np.empty((len(data), len(self.labels)), np.float32)
        values[:, :-1] = data
        values[:, -1] = words
        body = values.astype("<f4").tobytes()
        out = _packet(b"DATA", 2, 1, first_sample, body[:-3] if self.malformed() else body)
        for k in code_onsets(codes, prev_level=self._last_code):
            ev = EVENT.pack(
                int(codes[k]), 0, first_sample + int(k), first_sample + int(k), b"\0" * 520
            )
            out += _packet(b"DATA", 3, 3, first_sample, ev)
        self._last_code = int(codes[-1])
        if self.impedance_kohm is not None and self.blocks_sent % self.impedance_every_blocks == 0:
            ohm = (np.asarray(self.impedance_kohm, np.float64) * 1000.0).astype("<f4")
            out += _packet(b"DATA", 4, 0, first_sample, ohm.tobytes())
        return out

    def set_impedances(self, kohm: dict[str, float] | None = None, base: float = 4.0) -> None:
        """Start the impedance check: every electrode near ``base`` kOhm (seeded
        spread), those in ``kohm`` as given (a badly gelled electrode)."""
        rng = np.random.default_rng(7)
        z = base * rng.uniform(0.6, 1.4, self.n_channels)
        for name, value in (kohm or {}).items():
            z[self.labels.index(name)] = value
        self.impedance_kohm = z
