"""Curry 8/9 NetStreaming (the ``curry`` framing of :mod:`mmmelab.drivers.neuroscan`):
a 20-byte big-endian header with the block's absolute start sample; basic and
channel info; float32 microvolt blocks, channel-fastest; event packets with sample
indices; the trigger is the channel labelled "Trigger"."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

import numpy as np

from mmmelab.config import EegConfig
from mmmelab.drivers.base import (
    DeviceFault,
    SampleBlock,
)
from mmmelab.drivers.neuroscan import TRIGGER_LABELS, NeuroscanClient
from mmmelab.drivers.neuroscan_codes import (
    CURRY_FLOAT32,
    CURRY_FROM_CLIENT,
    CurryData,
    CurryInfo,
    CurryRequest,
)
from mmmelab.errors import DeviceError, DeviceTimeoutError
from mmmelab.streams import AuxSpec, FaultKind, SignalLayout

logger = logging.getLogger(__name__)


class CurryClient(NeuroscanClient):
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
                data: bytes = body
                return data
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
