"""A Neuroscan Acquire (Scan 4.x) server on 127.0.0.1, modelled on BCI2000's NeuroSrv.

Wire format (../shared/reference/devices.md 1b): a 12-byte big-endian header
``id[4] code:u16 request:u16 size:u32``, little-endian bodies. ``CTRL 3/5``
(RequestBasicInfo) -> ``DATA 1/3`` with the 28-byte BasicInfo (size, EEG and
event channels, block points, rate, data size, microvolts per count);
``CTRL 2/1`` StartAcquisition; ``CTRL 2/3`` StartImpedance (the amplifier measures
impedances, which Acquire shows on its own screen: no data is sent until
StartAcquisition); ``CTRL 3/3`` RequestStartData -> ``DATA 2/2``
blocks of int32 counts, sample-major, the event channel last; ``CTRL 3/4`` stops
the data; ``CTRL 1/2`` closes. Any other header closes the connection, as the
BCI2000 reference server does. Acquire carries no sample index: a client can
only tell a gap from timing.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from mmmelab.hardware_mocks.synth import eeg_background
from mmmelab.hardware_mocks.tcpserver import ClientGone, FaultPlan, StreamingServer
from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire

HEADER = struct.Struct(">4sHHI")
BASIC = struct.Struct("<Iiiiiif")


def _packet(ident: bytes, code: int, request: int, body: bytes = b"") -> bytes:
    return HEADER.pack(ident, code, request, len(body)) + body


class AcquireServer(StreamingServer):
    """Acquire's TCP server on ``127.0.0.1:self.port``."""

    name = "acquire"

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        n_channels: int = 64,
        rate_hz: float = 1000.0,
        block_samples: int = 40,
        resolution_uv: float = 0.0298,
        idle_word: int = 0xFF00,
        data_size: int = 4,
        device_clock: DeviceClock | None = None,
        latency_s: float = 0.0005,
        faults: FaultPlan | None = None,
        seed: int = 1,
        start_replies: int = 0,
    ) -> None:
        self.n_channels = n_channels
        self.resolution_uv = resolution_uv
        self.idle_word = idle_word
        self.data_size = data_size
        self.start_replies = start_replies
        self.impedance_mode = False  # CTRL 2/3 received and not yet ended by CTRL 2/1
        self._signal = eeg_background(n_channels, rate_hz, 10.0, seed)
        super().__init__(wire, clock, rate_hz, block_samples, device_clock, latency_s, faults, seed)

    def handle(self, conn: socket.socket, state: dict[str, Any], data: bytes) -> bytes:
        while len(data) >= HEADER.size:
            ident, code, request, size = HEADER.unpack_from(data)
            if len(data) < HEADER.size + size:
                break
            data = data[HEADER.size + size :]
            if ident != b"CTRL":
                raise ClientGone(f"unhandled packet {ident!r}")
            if (code, request) == (3, 5):  # RequestBasicInfo
                body = BASIC.pack(
                    27 if self.faults.bad_basic_info else 28,
                    self.n_channels,
                    1,
                    self.block_samples,
                    int(self.rate_hz),
                    self.data_size,
                    self.resolution_uv,
                )
                self.send(conn, _packet(b"DATA", 1, 3, body))
            elif (code, request) == (2, 1):  # StartAcquisition (also ends impedance mode)
                for _ in range(self.start_replies):
                    self.send(conn, _packet(b"CTRL", 2, 1))
                if state.pop("impedance", False):
                    self.impedance_mode = False
                    if state.get("wants_data"):
                        self.start_stream(conn, state)
            elif (code, request) == (2, 3):  # StartImpedance: the amplifier measures
                # impedances (shown on the Acquire PC); no EEG data until StartAcquisition
                state["impedance"] = True
                self.impedance_mode = True
                self.stop_stream(state)
            elif (code, request) == (2, 2):  # StopAcquisition
                self.stop_stream(state)
            elif (code, request) == (3, 3):  # RequestStartData
                state["wants_data"] = True
                if not state.get("impedance"):
                    self.start_stream(conn, state)
            elif (code, request) == (3, 4):  # RequestStopData
                state["wants_data"] = False
                self.stop_stream(state)
            elif (code, request) == (1, 2):  # ClosingUp
                raise ClientGone("closing up")
            else:
                raise ClientGone(f"unhandled CTRL {code}/{request}")
        return data

    def signal(self, first_sample: int, n: int) -> np.ndarray:
        return self._signal[(first_sample + np.arange(n)) % len(self._signal)]

    def block(self, first_sample: int, data: np.ndarray, codes: np.ndarray) -> bytes:
        counts = np.empty((len(data), self.n_channels + 1), np.int64)
        counts[:, :-1] = np.rint(data / self.resolution_uv)
        counts[:, -1] = (self.idle_word & 0xFF00) | (codes & 0xFF)
        dtype = "<i4" if self.data_size == 4 else "<i2"
        if self.data_size == 2:
            counts[:, :-1] = np.clip(counts[:, :-1], -32768, 32767)
            counts[:, -1] = counts[:, -1].astype(np.uint16).view(np.int16)
        body = counts.astype(dtype).tobytes()
        kind = 2 if self.data_size == 4 else 1
        return _packet(b"DATA", 2, kind, body[:-3] if self.malformed() else body)
