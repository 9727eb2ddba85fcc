"""Neuroscan SynAmps RT through Curry 8/9 NetStreaming (TCP client).

Protocol facts: ../shared/reference/devices.md section 1b. The client reads
exact byte counts, resynchronises on garbage by searching for the next
``DATA``/``CTRL`` id, keeps the absolute sample index of every block so gaps
are visible (and recorded as faults), and keeps the whole 16-bit event word of
the trigger channel; the stimulus code is its low byte.

Threads: ``connect``/``start`` run on the engine's control thread, ``read`` on
the EEG recorder thread, ``close`` on the control thread after that thread stopped.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable

import numpy as np

from mmmelab.config import EegConfig
from mmmelab.drivers.base import AuxLayout, DeviceFault, SampleBlock, SignalLayout, recv_exact
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">4sHHIII")
IDS = (b"DATA", b"CTRL")
MAX_BODY = 16 * 1024 * 1024

REQ_VERSION, REQ_CHANNEL_INFO, REQ_BASIC_INFO = 1, 3, 6
REQ_STREAM_START, REQ_STREAM_STOP = 8, 9
DATA_INFO, DATA_EEG, DATA_EVENTS = 1, 2, 3
INFO_VERSION, INFO_BASIC, INFO_CHANNELS = 1, 2, 4
TRIGGER_LABELS = ("TRIGGER", "TRIG", "EVENT", "STATUS")


class CurryClient:
    """Client of Curry's NetStreaming server. Implements ``drivers.base.SignalDriver``."""

    name = "eeg"

    def __init__(self, config: EegConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.faults: list[DeviceFault] = []
        self._sock: socket.socket | None = None
        self.labels: list[str] = []
        self.trigger_index: int | None = None
        self.rate_hz = config.rate_hz
        self.version = 0
        self._next_sample: int | None = None
        self.events: list[tuple[int, int]] = []  # (sample index, code) from event packets
        self.skipped_bytes = 0

    # -------------------------------------------------------------- packets

    def _send(self, request: int) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(HEADER.pack(b"CTRL", 2, request, 0, 0, 0))
        except OSError as exc:
            raise DeviceLostError(self.name, f"send failed ({exc})") from None

    def _read_packet(self) -> tuple[int, int, int, bytes]:
        """One packet (code, request, sample, body); skips garbage until a valid header."""
        assert self._sock is not None
        head = recv_exact(self._sock, HEADER.size, self.name)
        skipped = 0
        while head[:4] not in IDS:
            # Resynchronise: slide forward to the next packet id.
            pos = min((p for p in (head.find(i, 1) for i in IDS) if p > 0), default=-1)
            drop = pos if pos > 0 else len(head) - 3
            skipped += drop
            head = head[drop:] + recv_exact(self._sock, drop, self.name)
        if skipped:
            self.skipped_bytes += skipped
            self.faults.append(
                DeviceFault(
                    self.clock(),
                    "resync",
                    skipped,
                    f"skipped {skipped} bytes of garbage before a header",
                )
            )
        chan, code, request, sample, size, _ = HEADER.unpack(head)
        if size > MAX_BODY:
            raise DeviceError(
                self.name,
                f"packet announces {size} bytes (limit {MAX_BODY}); the stream is corrupt",
            )
        body = recv_exact(self._sock, size, self.name) if size else b""
        return code, request, sample, body

    def _expect_info(self, info_type: int) -> bytes:
        for _ in range(100):
            code, request, _, body = self._read_packet()
            if code == DATA_INFO and request == info_type:
                return body
        raise DeviceError(self.name, f"no info packet of type {info_type} in the answer")

    # -------------------------------------------------------------- lifecycle

    def connect(self) -> SignalLayout:
        cfg = self.config
        try:
            self._sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
        except TimeoutError:
            raise DeviceTimeoutError(
                self.name,
                f"Curry at {cfg.host}:{cfg.port} did not answer within {cfg.timeout_s:g} s",
            ) from None
        except OSError as exc:
            raise DeviceError(
                self.name,
                f"cannot reach Curry at {cfg.host}:{cfg.port} ({exc}); is NetStreaming enabled?",
            ) from None
        self._send(REQ_VERSION)
        body = self._expect_info(INFO_VERSION)
        self.version = struct.unpack_from("<I", body)[0] if len(body) >= 4 else 0
        self._send(REQ_BASIC_INFO)
        body = self._expect_info(INFO_BASIC)
        _, n_chan, rate, data_size, _, _ = struct.unpack_from("<6I", body)
        if not 0 < n_chan < 300 or data_size not in (2, 4):
            raise DeviceError(
                self.name, f"implausible basic info: {n_chan} channels, {data_size}-byte samples"
            )
        self.rate_hz = float(rate)
        self._send(REQ_CHANNEL_INFO)
        body = self._expect_info(INFO_CHANNELS)
        self.labels = self._parse_channels(body, n_chan)
        upper = [lab.upper() for lab in self.labels]
        hits = [i for i, lab in enumerate(upper) if lab in TRIGGER_LABELS]
        self.trigger_index = hits[-1] if hits else None
        eeg = tuple(lab for i, lab in enumerate(self.labels) if i != self.trigger_index)
        if abs(self.rate_hz - cfg.rate_hz) > 1e-6:
            raise DeviceError(
                self.name,
                f"Curry streams at {self.rate_hz:g} Hz but the lab "
                f"config expects {cfg.rate_hz:g} Hz",
            )
        if len(eeg) != cfg.channels:
            raise DeviceError(
                self.name,
                f"Curry streams {len(eeg)} EEG channels but the lab config expects {cfg.channels}",
            )
        logger.info(
            "Curry %s: %d channels at %g Hz, trigger channel %s",
            self.version,
            len(eeg),
            self.rate_hz,
            self.trigger_index,
        )
        return SignalLayout(
            channels=eeg, units="uV", rate_hz=self.rate_hz, aux=(AuxLayout("trigger", "<u2"),)
        )

    @staticmethod
    def _parse_channels(body: bytes, n_chan: int) -> list[str]:
        size = len(body) // n_chan if n_chan else 0
        if size < 84:
            raise DeviceError("eeg", f"channel info of {len(body)} bytes for {n_chan} channels")
        labels = []
        for i in range(n_chan):
            raw = body[i * size + 4 : i * size + 84]
            labels.append(raw.decode("utf-16-le", "replace").split("\0", 1)[0].strip())
        return labels

    def start(self) -> None:
        self._send(REQ_STREAM_START)

    def read(self, timeout_s: float) -> list[SampleBlock]:
        """The next data block (or none within ``timeout_s``); event packets are kept aside."""
        assert self._sock is not None
        self._sock.settimeout(timeout_s)
        try:
            code, request, sample, body = self._read_packet()
        except DeviceTimeoutError:
            return []
        now = self.clock()
        if code == DATA_EVENTS:
            for off in range(0, len(body) - 15, 536):
                ev_type, _, start, _ = struct.unpack_from("<iiii", body, off)
                self.events.append((start, ev_type))
            return []
        if code != DATA_EEG:
            return []
        if request != 1:
            raise DeviceError(
                self.name,
                f"unsupported block type {request} (only float32 "
                f"blocks are supported; switch off compression)",
            )
        n_all = len(self.labels)
        values = np.frombuffer(body, dtype="<f4")
        if values.size % n_all:
            self.faults.append(
                DeviceFault(
                    now,
                    "malformed",
                    1,
                    f"block of {len(body)} bytes is not a whole number "
                    f"of {n_all}-channel samples; dropped",
                )
            )
            return []
        block = values.reshape(-1, n_all)
        if self._next_sample is not None and sample != self._next_sample:
            missing = sample - self._next_sample
            self.faults.append(
                DeviceFault(
                    now, "gap", missing, f"sample index jumped from {self._next_sample} to {sample}"
                )
            )
        self._next_sample = sample + len(block)
        aux = {}
        if self.trigger_index is not None:
            word = np.rint(block[:, self.trigger_index]).astype(np.int64) & 0xFFFF
            aux["trigger"] = word.astype(np.uint16)
            data = np.delete(block, self.trigger_index, axis=1)
        else:
            aux["trigger"] = np.zeros(len(block), np.uint16)
            data = block
        return [SampleBlock(sample, np.ascontiguousarray(data, dtype=np.float32), now, aux)]

    def info(self) -> dict[str, object]:
        return {
            "protocol": "curry",
            "host": self.config.host,
            "port": self.config.port,
            "server_version": self.version,
            "channels": len(self.labels) - (self.trigger_index is not None),
            "rate_hz": self.rate_hz,
            "trigger_channel": None
            if self.trigger_index is None
            else self.labels[self.trigger_index],
        }

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._send(REQ_STREAM_STOP)
        except DeviceError:
            pass
        self._sock.close()
        self._sock = None
