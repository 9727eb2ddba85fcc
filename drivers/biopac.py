"""BIOPAC MP160 through AcqKnowledge 5 Network Data Transfer (NDT).

Facts: ../shared/reference/devices.md section 2a. Control is XML-RPC at
``/RPC2`` (``acq.*`` methods, every call with a timeout). AcqKnowledge opens the
data connection *to us*, so the driver listens on the data port before it
toggles acquisition on. Single-connection mode: headerless frames of the
delivered channels in order analog, digital; a channel appears in a frame only
on the samples its downsampling divider keeps; doubles or floats, little-endian
(set per channel). NDT carries no sample index, so samples are counted, and
samples that never arrive are spotted from the arrival timing and recorded as
estimated gaps.

* ``discover()`` finds AcqKnowledge servers by UDP ("AcqP Client" to port 15012).
* An acquisition stopped in AcqKnowledge (not by us) ends the stream with a clear
  error, and is not restarted behind the operator's back; a data connection lost
  while AcqKnowledge still acquires is re-established by restarting delivery.
* ``mark(label)`` puts an event marker into the AcqKnowledge graph (queued, sent
  by the ``acq-events`` thread, never blocking the caller).

Threads: ``connect``/``start``/``close`` on the control thread, ``read`` and
``reconnect`` on the physiology recorder thread, ``acq-events`` for markers.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import math
import queue
import socket
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import numpy as np

from mmmelab.config import PhysioConfig
from mmmelab.drivers.base import (
    DeviceFault,
    EstimatedGaps,
    SampleBlock,
)
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError
from mmmelab.streams import AuxSpec, FaultKind, SignalLayout

logger = logging.getLogger(__name__)

DISCOVERY_PORT = 15012


def discover(
    address: str = "255.255.255.255", port: int = DISCOVERY_PORT, timeout_s: float = 1.0
) -> list[tuple[str, int]]:
    """AcqKnowledge servers answering NDT auto-discovery: [(host, control port)].

    ``address`` is the broadcast address of the lab network (or one host).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.settimeout(0.05)
        sock.sendto(b"AcqP Client", (address, port))
        found: list[tuple[str, int]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                data, (host, _) = sock.recvfrom(1024)
            except TimeoutError:
                continue
            text = data.decode("ascii", "replace")
            if text.startswith("AcqP Server Port:"):
                entry = (host, int(text.split(":", 1)[1]))
                if entry not in found:
                    found.append(entry)
        return found
    finally:
        sock.close()


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
        self._local = threading.local()  # one XML-RPC connection per thread (not shareable)
        self._listener: socket.socket | None = None
        self._data: socket.socket | None = None
        self._buf = bytearray()
        self._sample = 0
        self._started = False
        self.analog: list[dict[str, Any]] = []
        self.digital: list[dict[str, Any]] = []
        self.labels: list[str] = []
        self.dividers: list[int] = []
        self.unit_type = 0
        self.stopped_by_vendor = False
        self._itemsize = 8
        self._last_data = 0.0
        self._gaps = EstimatedGaps(config.rate_hz, 0.015, "NDT carries no sample index")
        self._events: queue.Queue[str | None] = queue.Queue()
        self._event_thread: threading.Thread | None = None

    @property
    def _rpc(self) -> xmlrpc.client.ServerProxy:
        """This thread's proxy: ``http.client`` connections must not be shared between
        the control, recorder and event threads."""
        url = f"http://{self.config.host}:{self.config.control_port}/RPC2"
        proxy = getattr(self._local, "proxy", None)
        if proxy is None or getattr(self._local, "url", "") != url:
            proxy = xmlrpc.client.ServerProxy(
                url, transport=_TimeoutTransport(self.config.timeout_s), allow_none=True
            )
            self._local.proxy, self._local.url = proxy, url
        return proxy

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
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException) as exc:
            self._local.proxy = None  # a broken connection: the next call opens a new one
            raise DeviceError(
                self.name,
                f"cannot reach AcqKnowledge at {self.config.host}:"
                f"{self.config.control_port} ({exc}); is network data "
                f"transfer enabled?",
            ) from None

    # ------------------------------------------------------------ set-up

    def _discover(self) -> None:
        cfg = self.config
        found = discover(cfg.discovery_address, cfg.discovery_port, timeout_s=cfg.timeout_s)
        if not found:
            raise DeviceError(
                self.name,
                f"no AcqKnowledge answered auto-discovery at "
                f"{cfg.discovery_address}:{cfg.discovery_port}; tick "
                f"'respond to auto-discovery' in its networking "
                f"preferences, or set host and control_port",
            )
        host, port = found[0]
        if len(found) > 1:
            logger.warning(
                "several AcqKnowledge servers answered %s; using %s:%d", found, host, port
            )
        self.config = dataclasses.replace(cfg, host=host, control_port=port)

    def connect(self) -> SignalLayout:
        if self.config.discover:
            self._discover()
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
        all_digital = list(self._call("getEnabledChannels", "digital"))
        self.digital = all_digital[: cfg.digital_channels]
        if len(self.digital) < cfg.digital_channels:
            raise DeviceError(
                self.name,
                f"{cfg.digital_channels} digital channels configured "
                f"but AcqKnowledge has {len(self.digital)} enabled",
            )
        wanted = [*self.analog, *self.digital]
        self.dividers = [int(self._call("getDownsamplingDivider", ch)) for ch in wanted]
        self._call("changeDataConnectionMethod", "single")
        self._call("changeTransportType", "tcp")
        for ch in [*analog, *all_digital]:
            self._call("changeDataDeliveryEnabled", ch, ch in wanted)
        self._itemsize = 8 if cfg.data_type == "double" else 4
        for ch in wanted:
            self._call("changeDataType", ch, {"type": cfg.data_type, "endian": "little"})
        self._call("setDataConnectionTimeoutSec", 2)
        if self._listener is None:
            self._listener = socket.create_server(("", cfg.data_port))
        self._call("changeSingleConnectionModePort", self._listener.getsockname()[1])
        self._call("changeDataConnectionHostname", "")
        self.labels = [labels[(c["type"], c["index"])] for c in self.analog]
        self._plan_frames()
        return SignalLayout(
            channels=tuple(cfg.channels),
            units="device units",
            rate_hz=rate,
            aux=(AuxSpec("digital", "u1", len(self.digital)),),
        )

    def _plan_frames(self) -> None:
        """Which channels each sample of a divider period carries (single-connection mode)."""
        self.period = math.lcm(*self.dividers) if self.dividers else 1
        self.present = np.array(
            [[p % d == 0 for d in self.dividers] for p in range(self.period)], dtype=bool
        )
        self.period_values = int(self.present.sum())

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
        self._last_data = self.clock()
        if self._event_thread is None:
            self._event_thread = threading.Thread(
                target=self._send_events, name="acq-events", daemon=True
            )
            self._event_thread.start()

    # ------------------------------------------------------------ data

    def _vendor_check(self) -> None:
        """Raise a clear error when acquisition was stopped in AcqKnowledge."""
        try:
            running = bool(self._call("getAcquisitionInProgress"))
        except DeviceError:
            return  # the control connection itself is the problem; the caller reports it
        if not running:
            self.stopped_by_vendor = True
            raise DeviceLostError(
                self.name,
                "acquisition was stopped in AcqKnowledge (not by "
                "mmme-lab); the physiology stream ends here",
            )

    def read(self, timeout_s: float) -> list[SampleBlock]:
        """Whole samples received so far (waits up to ``timeout_s`` for the first bytes)."""
        if self._data is None:
            raise DeviceLostError(self.name, "no data connection")
        self._data.settimeout(timeout_s)
        try:
            chunk = self._data.recv(1 << 16)
        except TimeoutError:
            if self.clock() - self._last_data > 1.0:
                self._vendor_check()
            return []
        except OSError as exc:
            raise DeviceLostError(self.name, f"data connection lost ({exc})") from None
        if not chunk:
            self._vendor_check()
            raise DeviceLostError(
                self.name, "AcqKnowledge closed the data connection while still acquiring"
            )
        now = self.clock()
        self._last_data = now
        self._buf += chunk
        return self._parse(now)

    def _parse(self, now: float) -> list[SampleBlock]:
        item = self._itemsize
        n_an = len(self.analog)
        if self.period == 1:
            n = len(self._buf) // (item * len(self.dividers))
            if not n:
                return []
            raw = np.frombuffer(
                bytes(self._buf[: n * item * len(self.dividers)]),
                dtype="<f8" if item == 8 else "<f4",
            )
            del self._buf[: n * item * len(self.dividers)]
            frames = raw.reshape(n, -1).astype(np.float64)
        else:
            frames = self._parse_divided(item)
            n = len(frames)
            if not n:
                return []
        first = self._sample
        missing, fault = self._gaps.account(now, first, n)
        if fault is not None:
            first += missing
            self.faults.append(fault)
        digital = np.nan_to_num(frames[:, n_an:], nan=0.0) > 0.5
        self._sample = first + n
        return [
            SampleBlock(
                first,
                frames[:, :n_an].astype(np.float32),
                now,
                {"digital": digital.astype(np.uint8)},
            )
        ]

    def _parse_divided(self, item: int) -> np.ndarray:
        """Frames with dividers: whole samples only, absent channels as NaN."""
        counts = self.present.sum(axis=1)
        rows = []
        values = np.frombuffer(bytes(self._buf), dtype="<f8" if item == 8 else "<f4")
        used = 0
        phase = self._sample % self.period
        while True:
            need = int(counts[phase])
            if used + need > len(values):
                break
            row = np.full(len(self.dividers), np.nan)
            row[self.present[phase]] = values[used : used + need]
            rows.append(row)
            used += need
            phase = (phase + 1) % self.period
        del self._buf[: used * item]
        return np.array(rows).reshape(len(rows), len(self.dividers))

    # ------------------------------------------------------------ recovery

    def can_reconnect(self) -> bool:
        return not self.stopped_by_vendor

    def reconnect(self) -> None:
        """Re-establish delivery after the data connection dropped mid-acquisition."""
        if self.stopped_by_vendor:
            raise DeviceLostError(self.name, "acquisition was stopped in AcqKnowledge")
        self._gaps.broken(self._last_data)
        if self._data is not None:
            self._data.close()
            self._data = None
        if self._call("getAcquisitionInProgress"):
            self._call("toggleAcquisition")  # stop, so that delivery restarts
        self._buf.clear()
        self.start()
        self.faults.append(
            DeviceFault(
                self.clock(),
                FaultKind.RESTART,
                1,
                "acquisition restarted in "
                "AcqKnowledge to re-open the data connection (a new "
                "segment in the .acq file)",
            )
        )

    # ------------------------------------------------------------ events

    def mark(self, label: str) -> None:
        """Queue an event marker for the AcqKnowledge graph (any thread, never blocks)."""
        if self._started:
            self._events.put(label)

    def _send_events(self) -> None:
        while True:
            label = self._events.get()
            if label is None:
                return
            try:
                self._call("insertGlobalEvent", label, "flag", "")
            except DeviceError as exc:
                self.faults.append(
                    DeviceFault(
                        self.clock(), FaultKind.EVENT, 1, f"marker {label!r} not placed: {exc}"
                    )
                )

    def info(self) -> dict[str, object]:
        return {
            "host": self.config.host,
            "control_port": self.config.control_port,
            "mp_unit_type": self.unit_type,
            "analog_labels": self.labels,
            "digital_channels": len(self.digital),
            "rate_hz": self.config.rate_hz,
            "dividers": self.dividers,
            "data_type": self.config.data_type,
        }

    def close(self) -> None:
        """Stop acquisition in AcqKnowledge and close the connections. Raises
        DeviceError (after closing everything) when AcqKnowledge could not be told
        to stop: its own recording then runs on until stopped there."""
        not_stopped: DeviceError | None = None
        if self._event_thread is not None:
            self._events.put(None)
            self._event_thread.join(0.5)  # a hung AcqKnowledge must not hold the save
            if self._event_thread.is_alive():
                logger.warning("AcqKnowledge did not take the last event markers in time")
            self._event_thread = None
        if self._started:
            self._started = False
            try:
                if self._call("getAcquisitionInProgress"):
                    self._call("toggleAcquisition")
            except DeviceError as exc:
                not_stopped = exc
        for sock in (self._data, self._listener):
            if sock is not None:
                sock.close()
        self._data = self._listener = None
        if not_stopped is not None:
            raise DeviceError(
                self.name,
                "AcqKnowledge may still be acquiring - stop it there "
                f"({str(not_stopped).removeprefix(self.name + ': ')})",
            )
