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

import numpy as np

from mmmelab.config import EegConfig, EegProtocol
from mmmelab.drivers.base import (
    DeviceFault,
    EstimatedGaps,
    SampleBlock,
    recv_exact,
)
from mmmelab.drivers.neuroscan_codes import (
    ACQUIRE_32_BIT,
    ACQUIRE_BASIC_INFO,
    CURRY_FLOAT32,
    CURRY_FROM_CLIENT,
    AcquireClientRequest,
    AcquireCode,
    AcquireData,
    AcquireGeneral,
    AcquireServer,
    CurryData,
    CurryInfo,
    CurryRequest,
)
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError
from mmmelab.streams import AuxSpec, FaultKind, SignalLayout

logger = logging.getLogger(__name__)

IDS = (b"DATA", b"CTRL")
MAX_BODY = 16 * 1024 * 1024
TRIGGER_LABELS = ("TRIGGER", "TRIG", "EVENT", "STATUS")


class _NeuroscanClient:
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

    def _read_packet(self) -> tuple[tuple, bytes]:
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


class CurryClient(_NeuroscanClient):
    """Client of Curry's NetStreaming server. Implements ``drivers.base.SignalDriver``."""

    header = struct.Struct(">4sHHIII")
    protocol = "curry"
    display = "Curry"

    def __init__(self, config: EegConfig, clock: Callable[[], float]) -> None:
        super().__init__(config, clock)
        self.trigger_index: int | None = None
        self.version = 0
        self.events: list[tuple[int, int]] = []  # (sample index, code) from event packets

    def _request(self, request: CurryRequest) -> None:
        self._send(self.header.pack(b"CTRL", CURRY_FROM_CLIENT, request, 0, 0, 0))

    def _expect_info(self, info_type: CurryInfo) -> bytes:
        for _ in range(100):
            (_, code, request, _, _, _), body = self._read_packet()
            if code == CurryData.INFO and request == info_type:
                return body
        raise DeviceError(self.name, f"no info packet of type {info_type} in the answer")

    def connect(self) -> SignalLayout:
        self._open_socket()
        self._request(CurryRequest.VERSION)
        body = self._expect_info(CurryInfo.VERSION)
        self.version = struct.unpack_from("<I", body)[0] if len(body) >= 4 else 0
        self._request(CurryRequest.BASIC_INFO_ACQ)
        info = self._expect_info(CurryInfo.BASIC_INFO)
        _, n_chan, rate, data_size, _, _ = struct.unpack_from("<6I", info)
        if not 0 < n_chan < 300 or data_size not in (2, 4):
            raise DeviceError(
                self.name, f"implausible basic info: {n_chan} channels, {data_size}-byte samples"
            )
        self.rate_hz = float(rate)
        self._request(CurryRequest.CHANNEL_INFO)
        self.labels = self._parse_channels(self._expect_info(CurryInfo.CHANNEL_INFO), n_chan)
        hits = [i for i, lab in enumerate(self.labels) if lab.upper() in TRIGGER_LABELS]
        self.trigger_index = hits[-1] if hits else None
        eeg = tuple(lab for i, lab in enumerate(self.labels) if i != self.trigger_index)
        self._check_layout(len(eeg), self.rate_hz)
        self.layout = SignalLayout(
            channels=eeg, units="uV", rate_hz=self.rate_hz, aux=(AuxSpec("trigger", "<u2"),)
        )
        logger.info(
            "Curry %s: %d channels at %g Hz, trigger channel %s",
            self.version,
            len(eeg),
            self.rate_hz,
            self.trigger_index,
        )
        return self.layout

    @staticmethod
    def _parse_channels(body: bytes, n_chan: int) -> list[str]:
        size = len(body) // n_chan if n_chan else 0
        if size < 84:
            raise DeviceError("eeg", f"channel info of {len(body)} bytes for {n_chan} channels")
        return [
            body[i * size + 4 : i * size + 84]
            .decode("utf-16-le", "replace")
            .split("\0", 1)[0]
            .strip()
            for i in range(n_chan)
        ]

    def start(self) -> None:
        self._request(CurryRequest.STREAMING_START)

    def read(self, timeout_s: float) -> list[SampleBlock]:
        """The next data block (or none within ``timeout_s``); event packets are kept aside."""
        assert self._sock is not None
        self._sock.settimeout(timeout_s)
        try:
            (_, code, request, sample, _, _), body = self._read_packet()
        except DeviceTimeoutError:
            return []
        now = self.clock()
        if code == CurryData.EVENTS:
            for off in range(0, len(body) - 15, 536):
                ev_type, _, start, _ = struct.unpack_from("<iiii", body, off)
                self.events.append((start, ev_type))
            return []
        if code == CurryData.IMPEDANCE:
            self._impedance(body, now)
            return []
        if code != CurryData.EEG:
            return []
        if request != CURRY_FLOAT32:
            raise DeviceError(
                self.name,
                f"unsupported block type {request} (only float32 "
                f"blocks are supported; switch off compression)",
            )
        n_all = len(self.labels)
        if len(body) % (4 * n_all):
            self.faults.append(
                DeviceFault(
                    now,
                    FaultKind.MALFORMED,
                    1,
                    f"block of {len(body)} bytes is not a whole number "
                    f"of {n_all}-channel samples; dropped",
                )
            )
            return []
        values = np.frombuffer(body, dtype="<f4")
        block = values.reshape(-1, n_all)
        self._record_gap(now, sample)
        self._next_sample = sample + len(block)
        if self.trigger_index is not None:
            word = np.rint(block[:, self.trigger_index]).astype(np.int64) & 0xFFFF
            data = np.delete(block, self.trigger_index, axis=1)
        else:
            word = np.zeros(len(block), np.int64)
            data = block
        return [
            SampleBlock(
                sample,
                np.ascontiguousarray(data, dtype=np.float32),
                now,
                {"trigger": word.astype(np.uint16)},
            )
        ]

    def _impedance(self, body: bytes, now: float) -> None:
        """A Data_Impedance packet: float32 ohms per EEG channel (our reading of the
        format; devices.md names only the code)."""
        n_eeg = len(self.labels) - (self.trigger_index is not None)
        if len(body) != 4 * n_eeg:
            detail = f"impedance packet of {len(body)} bytes for {n_eeg} EEG channels; ignored"
            self.faults.append(DeviceFault(now, FaultKind.MALFORMED, 1, detail))
            return
        self.impedances_kohm = np.frombuffer(body, dtype="<f4").astype(np.float64) / 1000.0
        self.impedance_time = now

    def info(self) -> dict[str, object]:
        return super().info() | {
            "server_version": self.version,
            "trigger_channel": None
            if self.trigger_index is None
            else self.labels[self.trigger_index],
        }

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._request(CurryRequest.STREAMING_STOP)
        except DeviceError:
            pass
        self._drop_socket()


class AcquireClient(_NeuroscanClient):
    """Client of Neuroscan Acquire's TCP server. Implements ``drivers.base.SignalDriver``."""

    header = struct.Struct(">4sHHI")
    basic = struct.Struct("<Iiiiiif")
    protocol = "acquire"
    display = "Acquire"

    def __init__(self, config: EegConfig, clock: Callable[[], float]) -> None:
        super().__init__(config, clock)
        self.n_eeg = self.n_evt = self.block_pts = self.data_size = 0
        self.resolution_uv = 0.0
        self._count = 0  # samples counted since the first block
        self._gaps = EstimatedGaps(config.rate_hz, 0.03, "Acquire carries no sample index")
        self.impedance_mode = False
        self._paused_at: float | None = None  # host time impedance mode began

    def _ctrl(self, code: AcquireCode, request: int) -> None:
        self._send(self.header.pack(b"CTRL", code, request, 0))

    def connect(self) -> SignalLayout:
        self._open_socket()
        self._ctrl(AcquireCode.CLIENT, AcquireClientRequest.REQUEST_BASIC_INFO)
        for _ in range(100):
            (ident, code, request, _), body = self._read_packet()
            if (ident, code, request) == (b"DATA", AcquireData.INFO, ACQUIRE_BASIC_INFO):
                break
        else:
            raise DeviceError(self.name, "Acquire sent no basic info")
        if len(body) < self.basic.size:
            raise DeviceError(self.name, f"basic info of {len(body)} bytes (28 expected)")
        size, n_eeg, n_evt, pts, rate, dsize, res = self.basic.unpack_from(body)
        if size != 28 or not 0 < n_eeg < 300 or n_evt < 0 or pts <= 0 or dsize not in (2, 4):
            raise DeviceError(
                self.name,
                f"implausible basic info (size {size}, {n_eeg} EEG + "
                f"{n_evt} event channels, block {pts}, {dsize}-byte "
                f"samples)",
            )
        self.n_eeg, self.n_evt, self.block_pts, self.data_size = n_eeg, n_evt, pts, dsize
        self.resolution_uv = float(res)
        self.rate_hz = float(rate)
        self._check_layout(n_eeg, self.rate_hz)
        self.labels = [f"E{i + 1}" for i in range(n_eeg)]
        self.layout = SignalLayout(
            channels=tuple(self.labels),
            units="uV",
            rate_hz=self.rate_hz,
            aux=(AuxSpec("trigger", "<u2"),),
        )
        logger.info(
            "Acquire: %d EEG + %d event channels at %g Hz, %d-bit, %g uV/count",
            n_eeg,
            n_evt,
            self.rate_hz,
            8 * dsize,
            self.resolution_uv,
        )
        return self.layout

    def start(self) -> None:
        self._ctrl(AcquireCode.SERVER, AcquireServer.START_ACQUISITION)
        self._ctrl(AcquireCode.CLIENT, AcquireClientRequest.REQUEST_START_DATA)

    def start_impedance(self) -> None:
        """Acquire's impedance mode (ServerControlCode StartImpedance): the amplifier
        measures the electrodes and Acquire shows the values on its own screen (its
        protocol carries none); EEG data stops until :meth:`end_impedance`. Only
        before a recording: the pause is not counted as lost samples."""
        self._paused_at = self.clock()
        self.impedance_mode = True
        self._ctrl(AcquireCode.SERVER, AcquireServer.START_IMPEDANCE)

    def end_impedance(self) -> None:
        """Back to acquisition (StartAcquisition); data resumes."""
        self.impedance_mode = False
        self._ctrl(AcquireCode.SERVER, AcquireServer.START_ACQUISITION)

    def read(self, timeout_s: float) -> list[SampleBlock]:
        assert self._sock is not None
        self._sock.settimeout(timeout_s)
        try:
            (ident, code, request, _), body = self._read_packet()
        except DeviceTimeoutError:
            return []
        now = self.clock()
        if ident != b"DATA" or code != AcquireData.EEG:
            return []  # CTRL in the stream: tolerated
        n_all = self.n_eeg + self.n_evt
        dsize = 4 if request == ACQUIRE_32_BIT else 2
        if len(body) % (n_all * dsize):
            self.faults.append(
                DeviceFault(
                    now,
                    FaultKind.MALFORMED,
                    1,
                    f"block of {len(body)} bytes does not hold whole "
                    f"{n_all}-channel {8 * dsize}-bit samples; dropped",
                )
            )
            return []
        counts = np.frombuffer(body, dtype="<i4" if dsize == 4 else "<i2").reshape(-1, n_all)
        n = len(counts)
        if self._paused_at is not None and not self.impedance_mode:
            # the samples during impedance mode were never acquired: the index moves on
            # with the clock (as after a disconnection) but nothing is counted as lost
            skipped = max(0, int(round((now - self._paused_at) * self.rate_hz)) - n)
            self._count += skipped
            self._gaps.resume()
            self._paused_at = None
            logger.info("Acquire: data resumed after impedance mode (%d samples skipped)", skipped)
        missing, fault = self._gaps.account(now, self._count, n)
        if fault is not None:
            self._count += missing
            self.faults.append(fault)
        first = self._count
        self._count += n
        if self.impedance_mode:  # a block still in flight: the pause starts after it
            self._paused_at = now
        data = (counts[:, : self.n_eeg] * self.resolution_uv).astype(np.float32)
        word = (
            counts[:, self.n_eeg].astype(np.int64) & 0xFFFF if self.n_evt else np.zeros(n, np.int64)
        )
        self.last_block_time = now
        return [SampleBlock(first, data, now, {"trigger": word.astype(np.uint16)})]

    def reconnect(self) -> None:
        self._gaps.broken(getattr(self, "last_block_time", self.clock()))
        super().reconnect()

    def info(self) -> dict[str, object]:
        return super().info() | {
            "resolution_uv": self.resolution_uv,
            "data_bits": 8 * self.data_size,
            "block_points": self.block_pts,
            "event_channels": self.n_evt,
        }

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._ctrl(AcquireCode.CLIENT, AcquireClientRequest.REQUEST_STOP_DATA)
            self._ctrl(AcquireCode.GENERAL, AcquireGeneral.CLOSING_UP)
        except DeviceError:
            pass
        self._drop_socket()


def make_eeg_driver(config: EegConfig, clock: Callable[[], float]) -> _NeuroscanClient:
    """The client for the configured framing."""
    if config.protocol is EegProtocol.ACQUIRE:
        return AcquireClient(config, clock)
    return CurryClient(config, clock)
