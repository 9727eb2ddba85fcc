"""The Acquire (Scan 4.x) server (the ``acquire`` framing of
:mod:`mmmelab.drivers.neuroscan`): a 12-byte big-endian header, little-endian
bodies; BasicInfo with the microvolts per count; 16- or 32-bit blocks, sample-major,
the event channel last. It has no sample index: samples are counted, and a gap
across a reconnect is estimated from the host clock (and recorded as estimated)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

import numpy as np

from mmmelab.config import EegConfig
from mmmelab.drivers.base import (
    DeviceFault,
    EstimatedGaps,
    SampleBlock,
)
from mmmelab.drivers.neuroscan import NeuroscanClient
from mmmelab.drivers.neuroscan_codes import (
    ACQUIRE_32_BIT,
    ACQUIRE_BASIC_INFO,
    AcquireClientRequest,
    AcquireCode,
    AcquireData,
    AcquireGeneral,
    AcquireServer,
)
from mmmelab.errors import DeviceError, DeviceTimeoutError
from mmmelab.streams import AuxSpec, FaultKind, SignalLayout

logger = logging.getLogger(__name__)


class AcquireClient(NeuroscanClient):
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
