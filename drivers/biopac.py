"""BIOPAC MP160 through AcqKnowledge 5 Network Data Transfer (NDT).

Control is XML-RPC at ``/RPC2`` (``acq.*`` methods, every call with a timeout);
data arrive on a TCP connection that AcqKnowledge opens *to us*, so the driver
listens on the data port before it toggles acquisition on. Single-connection
mode: headerless frames of the delivered channels in order analog, digital;
little-endian doubles (set per channel with ``changeDataType``). NDT carries no
sample index, so samples are counted from the start of delivery.

Threads: ``connect``/``start``/``close`` on the engine's control thread,
``read`` on the physiology recorder thread.
"""

from __future__ import annotations

import http.client
import logging
import socket
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import numpy as np

from mmmelab.config import PhysioConfig
from mmmelab.drivers.base import AuxLayout, DeviceFault, SampleBlock, SignalLayout
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError

logger = logging.getLogger(__name__)


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout_s
        return conn


class BiopacNdt:
    """Client of AcqKnowledge's NDT. Implements ``drivers.base.SignalDriver``."""

    name = "physio"

    def __init__(self, config: PhysioConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.faults: list[DeviceFault] = []
        url = f"http://{config.host}:{config.control_port}/RPC2"
        self._rpc = xmlrpc.client.ServerProxy(
            url, transport=_TimeoutTransport(config.timeout_s), allow_none=True
        )
        self._listener: socket.socket | None = None
        self._data: socket.socket | None = None
        self._buf = bytearray()
        self._sample = 0
        self._started = False
        self.analog: list[dict[str, Any]] = []
        self.digital: list[dict[str, Any]] = []
        self.labels: list[str] = []
        self.unit_type = 0

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._rpc.acq, method)(*args)
        except TimeoutError:
            raise DeviceTimeoutError(
                self.name,
                f"acq.{method} did not return within "
                f"{self.config.timeout_s:g} s (a dialog open "
                f"in AcqKnowledge?)",
            ) from None
        except xmlrpc.client.Fault as exc:
            raise DeviceError(self.name, f"acq.{method} refused: {exc.faultString}") from None
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            raise DeviceError(
                self.name,
                f"cannot reach AcqKnowledge at {self.config.host}:"
                f"{self.config.control_port} ({exc}); is network data "
                f"transfer enabled?",
            ) from None

    def connect(self) -> SignalLayout:
        cfg = self.config
        self.unit_type = int(self._call("getMPUnitType"))
        rate = float(self._call("getSamplingRate"))
        if abs(rate - cfg.rate_hz) > 1e-6:
            raise DeviceError(
                self.name,
                f"AcqKnowledge samples at {rate:g} Hz but the lab "
                f"config expects {cfg.rate_hz:g} Hz",
            )
        if self._call("getAcquisitionInProgress"):
            raise DeviceError(
                self.name,
                "AcqKnowledge is already acquiring; stop it there so "
                "that mmme-lab starts it with data delivery on",
            )
        analog = list(self._call("getEnabledChannels", "analog"))
        labels = {(c["type"], c["index"]): str(self._call("getChannelLabel", c)) for c in analog}
        self.analog = []
        for name in cfg.channels:
            match = [
                c
                for c in analog
                if labels[(c["type"], c["index"])].upper().startswith(name.upper())
            ]
            if not match:
                raise DeviceError(
                    self.name,
                    f"no enabled analog channel labelled {name!r}; "
                    f"AcqKnowledge has: {sorted(labels.values())}",
                )
            self.analog.append(match[0])
        self.digital = list(self._call("getEnabledChannels", "digital"))[: cfg.digital_channels]
        if len(self.digital) < cfg.digital_channels:
            raise DeviceError(
                self.name,
                f"{cfg.digital_channels} digital channels configured "
                f"but AcqKnowledge has {len(self.digital)} enabled",
            )
        wanted = [*self.analog, *self.digital]
        for ch in wanted:
            divider = int(self._call("getDownsamplingDivider", ch))
            if divider != 1:
                raise DeviceError(
                    self.name,
                    f"channel {ch} is downsampled by {divider}; set it "
                    f"to the full {rate:g} Hz in AcqKnowledge",
                )
        self._call("changeDataConnectionMethod", "single")
        self._call("changeTransportType", "tcp")
        for ch in [*analog, *self._call("getEnabledChannels", "digital")]:
            self._call("changeDataDeliveryEnabled", ch, ch in wanted)
        for ch in wanted:
            self._call("changeDataType", ch, {"type": "double", "endian": "little"})
        self._call("setDataConnectionTimeoutSec", 2)
        self._listener = socket.create_server(("", cfg.data_port))
        port = self._listener.getsockname()[1]
        self._call("changeSingleConnectionModePort", port)
        self._call("changeDataConnectionHostname", "")
        self.labels = [labels[(c["type"], c["index"])] for c in self.analog]
        return SignalLayout(
            channels=tuple(cfg.channels),
            units="device units",
            rate_hz=rate,
            aux=(AuxLayout("digital", "u1", len(self.digital)),),
        )

    def start(self) -> None:
        assert self._listener is not None
        self._call("toggleAcquisition")
        self._started = True
        self._listener.settimeout(self.config.timeout_s)
        try:
            self._data, _ = self._listener.accept()
        except TimeoutError:
            raise DeviceTimeoutError(
                self.name, "AcqKnowledge started but did not open the data connection"
            ) from None
        self._data.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def frame_bytes(self) -> int:
        return 8 * (len(self.analog) + len(self.digital))

    def read(self, timeout_s: float) -> list[SampleBlock]:
        """Whole frames received so far (waits up to ``timeout_s`` for the first bytes)."""
        assert self._data is not None
        self._data.settimeout(timeout_s)
        try:
            chunk = self._data.recv(1 << 16)
        except TimeoutError:
            return []
        except OSError as exc:
            raise DeviceLostError(self.name, f"data connection lost ({exc})") from None
        if not chunk:
            raise DeviceLostError(
                self.name,
                "AcqKnowledge closed the data connection (acquisition stopped in AcqKnowledge?)",
            )
        now = self.clock()
        self._buf += chunk
        n = len(self._buf) // self.frame_bytes
        if not n:
            return []
        raw = np.frombuffer(bytes(self._buf[: n * self.frame_bytes]), dtype="<f8")
        del self._buf[: n * self.frame_bytes]
        frames = raw.reshape(n, -1)
        n_an = len(self.analog)
        digital = (frames[:, n_an:] > 0.5).astype(np.uint8)
        block = SampleBlock(
            self._sample, frames[:, :n_an].astype(np.float32), now, {"digital": digital}
        )
        self._sample += n
        return [block]

    def mark(self, label: str) -> None:
        """Put an event marker into the AcqKnowledge graph (best effort)."""
        try:
            self._call("insertGlobalEvent", label, "flag", "")
        except DeviceError as exc:
            self.faults.append(DeviceFault(self.clock(), "event", 1, str(exc)))

    def info(self) -> dict[str, object]:
        return {
            "host": self.config.host,
            "control_port": self.config.control_port,
            "mp_unit_type": self.unit_type,
            "analog_labels": self.labels,
            "digital_channels": len(self.digital),
            "rate_hz": self.config.rate_hz,
        }

    def close(self) -> None:
        if self._started:
            self._started = False
            try:
                if self._call("getAcquisitionInProgress"):
                    self._call("toggleAcquisition")
            except DeviceError as exc:
                logger.warning("could not stop AcqKnowledge acquisition: %s", exc)
        for sock in (self._data, self._listener):
            if sock is not None:
                sock.close()
        self._data = self._listener = None
