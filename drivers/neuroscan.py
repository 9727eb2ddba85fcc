"""Neuroscan SynAmps RT over TCP: Curry 8/9 NetStreaming or the Acquire (Scan 4.x) server.

One client, two framings, chosen by ``devices.eeg.protocol`` (facts:
../shared/reference/devices.md section 1b):

* **curry** - 20-byte big-endian header with the block's absolute start sample;
  basic and channel info; float32 microvolt blocks, channel-fastest; event
  packets with sample indices; the trigger is the channel labelled "Trigger".
* **acquire** - 12-byte big-endian header, little-endian bodies; BasicInfo with
  the microvolts per count; 16- or 32-bit blocks, sample-major, the event
  channel last. It has no sample index: samples are counted, and a gap across a
  reconnect is estimated from the host clock (and recorded as estimated).

Both read exact byte counts, resynchronise on garbage by searching for the next
``DATA``/``CTRL`` id, keep absolute sample indices so gaps are visible (and
recorded as faults), and keep the whole 16-bit event word: the stimulus code is
its low byte, the high byte is kept apart (it idles at 0xFF on some setups).
``reconnect()`` re-runs the handshake after a lost connection.

Threads: ``connect``/``start``/``close`` on the control thread, ``read`` and
``reconnect`` on the EEG recorder thread.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from mmmelab.config import EegConfig, EegProtocol
from mmmelab.drivers.base import DeviceFault, SignalDriver, recv_exact
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError
from mmmelab.streams import FaultKind, SignalLayout

logger = logging.getLogger(__name__)

IDS = (b"DATA", b"CTRL")
MAX_BODY = 16 * 1024 * 1024
TRIGGER_LABELS = ("TRIGGER", "TRIG", "EVENT", "STATUS")


class NeuroscanClient:
    """Socket, exact reads, resynchronisation and gap bookkeeping shared by both framings."""

    name = "eeg"
    header: struct.Struct
    protocol = ""
    display = ""

    def __init__(self, config: EegConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.faults: list[DeviceFault] = []
        self._sock: socket.socket | None = None
        self.labels: list[str] = []
        self.rate_hz = config.rate_hz
        self._next_sample: int | None = None
        self.skipped_bytes = 0
        self.layout: SignalLayout | None = None
        # the latest impedance check, kOhm per EEG channel (None: the protocol or the
        # operator gave none; the set-up check then judges the signal itself)
        self.impedances_kohm: np.ndarray | None = None
        self.impedance_time = 0.0

    def _open_socket(self) -> None:
        cfg = self.config
        try:
            self._sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
        except TimeoutError:
            raise DeviceTimeoutError(
                self.name,
                f"{self.display} at {cfg.host}:{cfg.port} did "
                f"not answer within {cfg.timeout_s:g} s",
            ) from None
        except OSError as exc:
            raise DeviceError(
                self.name,
                f"cannot reach {self.display} at {cfg.host}:"
                f"{cfg.port} ({exc}); is its TCP server enabled?",
            ) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, packet: bytes) -> None:
        if self._sock is None:
            raise DeviceLostError(self.name, "not connected")
        try:
            self._sock.sendall(packet)
        except OSError as exc:
            raise DeviceLostError(self.name, f"send failed ({exc})") from None

    def _read_packet(self) -> tuple[tuple[Any, ...], bytes]:
        """One packet (header fields, body), skipping garbage until a valid header."""
        if self._sock is None:
            raise DeviceLostError(self.name, "not connected")
        size = self.header.size
        head = recv_exact(self._sock, size, self.name)
        skipped = 0
        while head[:4] not in IDS:
            pos = min((p for p in (head.find(i, 1) for i in IDS) if p > 0), default=-1)
            drop = pos if pos > 0 else size - 3
            skipped += drop
            head = head[drop:] + recv_exact(self._sock, drop, self.name)
        fields = self.header.unpack(head)
        body_size = fields[-1] if self.protocol == "acquire" else fields[4]
        if skipped:
            self.skipped_bytes += skipped
            self.faults.append(
                DeviceFault(
                    self.clock(),
                    FaultKind.RESYNC,
                    skipped,
                    f"skipped {skipped} bytes of garbage before a header",
                )
            )
        if body_size > MAX_BODY:
            raise DeviceLostError(
                self.name,
                f"packet announces {body_size} bytes (limit {MAX_BODY}); the stream is corrupt",
            )
        body = recv_exact(self._sock, body_size, self.name) if body_size else b""
        return fields, body

    def _check_layout(self, n_eeg: int, rate: float) -> None:
        cfg = self.config
        if abs(rate - cfg.rate_hz) > 1e-6:
            raise DeviceError(
                self.name,
                f"the amplifier streams at {rate:g} Hz but the lab "
                f"config expects {cfg.rate_hz:g} Hz",
            )
        if n_eeg != cfg.channels:
            raise DeviceError(
                self.name,
                f"the amplifier streams {n_eeg} EEG channels but the "
                f"lab config expects {cfg.channels}",
            )

    def _record_gap(self, now: float, sample: int) -> None:
        if self._next_sample is not None and sample != self._next_sample:
            self.faults.append(
                DeviceFault(
                    now,
                    FaultKind.GAP,
                    sample - self._next_sample,
                    f"sample index jumped from {self._next_sample} to {sample}",
                )
            )

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def connect(self) -> SignalLayout:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def reconnect(self) -> None:
        """After a lost connection: connect, check the layout did not change, start again."""
        self._drop_socket()
        before = self.layout
        layout = self.connect()
        if before is not None and layout != before:
            raise DeviceError(
                self.name,
                "the amplifier came back with a different channel "
                "layout; the stream cannot continue",
            )
        self.start()

    def info(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "host": self.config.host,
            "port": self.config.port,
            "channels": len(self.layout.channels) if self.layout else 0,
            "rate_hz": self.rate_hz,
        }


def make_eeg_driver(config: EegConfig, clock: Callable[[], float]) -> SignalDriver:
    """The client for the configured framing (each in its module; they build on
    :class:`NeuroscanClient`)."""
    from mmmelab.drivers.neuroscan_acquire import AcquireClient
    from mmmelab.drivers.neuroscan_curry import CurryClient

    if config.protocol is EegProtocol.ACQUIRE:
        return AcquireClient(config, clock)
    return CurryClient(config, clock)
