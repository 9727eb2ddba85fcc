"""An AcqKnowledge 5 stand-in speaking Network Data Transfer (NDT), with an MP160 behind it.

* XML-RPC control at ``http://127.0.0.1:<port>/RPC2`` with the ``acq.*`` methods
  of BIOPAC's NDT (../shared/reference/devices.md 2a) and introspection.
* On ``acq.toggleAcquisition`` (start) it connects *out* to the client's
  single-connection data port, as AcqKnowledge does, and streams headerless
  frames of the delivered channels - analog, then digital - as doubles in the
  requested endianness, paced by its own (drifting) clock.
* Analog channels come from NeuroKit2's simulators; digital input lines carry the
  shared :class:`VirtualWire` code, bit i on line i (``digital_high`` when set).
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import numpy as np

from mmmelab.hardware_mocks.synth import physio_signals
from mmmelab.hardware_mocks.tcpserver import FaultPlan, send_with_faults
from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire, sample_wire

logger = logging.getLogger(__name__)

UNITS = {"ECG": "mV", "PPG": "V", "RSP": "V", "SKT": "degC", "EDA": "uS"}
LABELS = {
    "ECG": "ECG - ECG100C",
    "PPG": "PPG - PPG100C",
    "RSP": "RSP - RSP100C",
    "SKT": "SKT - SKT100C",
    "EDA": "EDA - EDA100C",
}


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)

    def do_POST(self) -> None:
        self.server.last_client = self.client_address[0]  # type: ignore[attr-defined]
        super().do_POST()


class AcqKnowledgeServer:
    """Control server on an ephemeral port (``self.port``). Threads: ``sim-acq-rpc``,
    ``sim-acq-data`` while acquiring."""

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        channels: tuple[str, ...] = ("ECG", "PPG", "RSP", "SKT", "EDA"),
        digital: int = 8,
        rate_hz: float = 1000.0,
        digital_high: float = 1.0,
        device_clock: DeviceClock | None = None,
        latency_s: float = 0.0005,
        block_samples: int = 20,
        seed: int = 2,
        faults: FaultPlan | None = None,
        dividers: dict[str, int] | None = None,
        me_onsets: tuple[float, ...] = (),
        loop_s: float = 70.0,
    ) -> None:
        self.faults = faults or FaultPlan()
        self._rng = random.Random(seed)
        self.events: list[tuple[str, str]] = []  # insertGlobalEvent calls: (label, type)
        self.wire = wire
        self.clock = clock
        self.rate_hz = rate_hz
        self.digital_high = digital_high
        self.device_clock = device_clock or DeviceClock(epoch=clock())
        self.latency_s = latency_s
        self.block = block_samples
        # Physiology is indexed by master time since the lab's epoch, so the heart-rate
        # rise after each micro-expression (onsets in seconds since the epoch, as the
        # camera's) lands at the same moment in every stream. Loops every ``loop_s``.
        onsets = tuple(o for o in me_onsets if o < loop_s)
        sig = physio_signals(rate_hz, loop_s, seed=seed, me_onsets=onsets)
        self._analog = np.stack(
            [sig.get(c, np.zeros(int(rate_hz * loop_s), np.float32)) for c in channels], axis=1
        ).astype(np.float64)
        self.channels: list[dict[str, Any]] = [
            {"type": "analog", "index": i, "label": LABELS.get(c, c)}
            for i, c in enumerate(channels)
        ] + [{"type": "digital", "index": i, "label": f"Digital input {i}"} for i in range(digital)]
        for ch in self.channels:
            ch.update(divider=1, delivery=False, dtype="double", endian="little")
        for ch, name in zip(self.channels, channels, strict=False):
            ch["divider"] = (dividers or {}).get(name, 1)
        self.method = "multiple"
        self.transport = "tcp"
        self.single_port = 15020
        self.hostname = ""
        self.in_progress = False
        self.samples_sent = 0
        self.start_device_s: float | None = None
        self.trigger_connected = True  # False: digital inputs not wired (fault injection)
        self.toggle_delay_s = 0.0  # fault injection: a blocking (modal) toggle
        self._stop = threading.Event()
        self._dialog_until = 0.0  # fault injection: a modal dialog blocks every call
        self._streaming = threading.Event()
        self._data_thread: threading.Thread | None = None
        self.rpc = SimpleXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=_Handler, allow_none=True, logRequests=False
        )
        self.rpc.last_client = "127.0.0.1"  # type: ignore[attr-defined]
        self.rpc.register_introspection_functions()
        for name in dir(self):
            if name.startswith("acq_"):
                self.rpc.register_function(self._modal(getattr(self, name)), "acq." + name[4:])
        self.port = self.rpc.server_address[1]
        self._rpc_thread = threading.Thread(
            target=self.rpc.serve_forever, args=(0.05,), name="sim-acq-rpc", daemon=True
        )
        self._rpc_thread.start()
        # auto-discovery responder, on loopback only (a real lab broadcasts to 15012)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", 0))
        self._udp.settimeout(0.1)
        self.discovery_port = self._udp.getsockname()[1]
        self._udp_thread = threading.Thread(
            target=self._discovery, name="sim-acq-discovery", daemon=True
        )
        self._udp_thread.start()

    # -------------------------------------------------------------- XML-RPC API

    def open_dialog(self, seconds: float) -> None:
        """A modal dialog opens in AcqKnowledge (fault injection): every control call
        blocks until it is closed ``seconds`` later (or the server closes). The data
        connection is not affected: acquisition runs on behind the dialog."""
        self._dialog_until = time.monotonic() + seconds

    def _modal(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            while (left := self._dialog_until - time.monotonic()) > 0:
                if self._stop.wait(min(left, 0.05)):
                    break
            return method(*args)

        return call

    def _channel(self, ch: dict[str, Any]) -> dict[str, Any]:
        for c in self.channels:
            if c["type"] == ch.get("type") and c["index"] == ch.get("index"):
                return c
        raise ValueError(f"no {ch.get('type')} channel with index {ch.get('index')}")

    def acq_getMPUnitType(self) -> int:
        return 160

    def acq_getSamplingRate(self) -> float:
        return self.rate_hz

    def acq_getEnabledChannels(self, kind: str) -> list[dict[str, Any]]:
        if kind not in ("analog", "digital", "calc"):
            raise ValueError(f"unknown channel type {kind!r}")
        return [
            {"type": c["type"], "index": c["index"]} for c in self.channels if c["type"] == kind
        ]

    def acq_getChannelLabel(self, ch: dict[str, Any]) -> str:
        return str(self._channel(ch)["label"])

    def acq_getDownsamplingDivider(self, ch: dict[str, Any]) -> int:
        return int(self._channel(ch)["divider"])

    def acq_changeDataConnectionMethod(self, method: str) -> int:
        if method not in ("single", "multiple"):
            raise ValueError(f"unknown connection method {method!r}")
        self.method = method
        return 0

    def acq_getDataConnectionMethod(self) -> str:
        return self.method

    def acq_changeTransportType(self, kind: str) -> int:
        if kind not in ("tcp", "udp"):
            raise ValueError(f"unknown transport {kind!r}")
        self.transport = kind
        return 0

    def acq_changeSingleConnectionModePort(self, port: int) -> int:
        self.single_port = int(port)
        return 0

    def acq_getSingleConnectionModePort(self) -> int:
        return self.single_port

    def acq_changeDataConnectionHostname(self, host: str) -> int:
        self.hostname = host
        return 0

    def acq_changeDataType(self, ch: dict[str, Any], spec: dict[str, str]) -> int:
        if spec.get("type") not in ("double", "float") or spec.get("endian") not in (
            "little",
            "big",
        ):
            raise ValueError(f"unsupported data type {spec!r}")
        c = self._channel(ch)
        c["dtype"], c["endian"] = spec["type"], spec["endian"]
        return 0

    def acq_changeDataDeliveryEnabled(self, ch: dict[str, Any], on: bool) -> int:
        self._channel(ch)["delivery"] = bool(on)
        return 0

    def acq_setDataConnectionTimeoutSec(self, seconds: float) -> int:
        return 0

    def acq_getAcquisitionInProgress(self) -> bool:
        return self.in_progress

    def acq_insertGlobalEvent(self, label: str, kind: str, channel: str) -> int:
        if not self.in_progress:
            raise ValueError("no acquisition in progress")
        self.events.append((label, kind))
        return 0

    def acq_toggleAcquisition(self) -> int:
        if self.toggle_delay_s:
            time.sleep(self.toggle_delay_s)
        if self.in_progress:
            self.in_progress = False
            self._streaming.clear()
            return 0
        self.in_progress = True
        host = self.hostname or self.rpc.last_client  # type: ignore[attr-defined]
        self._streaming.set()
        self._data_thread = threading.Thread(
            target=self._stream, args=(host,), name="sim-acq-data", daemon=True
        )
        self._data_thread.start()
        return 0

    # -------------------------------------------------------------- data connection

    def _discovery(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._udp.recvfrom(1024)
            except TimeoutError:
                continue
            except OSError:
                return
            if data.startswith(b"AcqP Client"):
                self._udp.sendto(f"AcqP Server Port:{self.port}".encode(), addr)

    def _stream(self, host: str) -> None:
        try:
            sock = socket.create_connection((host, self.single_port), timeout=1.0)
        except OSError as exc:
            logger.warning(
                "AcqKnowledge simulator: cannot deliver data to %s:%d (%s); "
                "acquisition runs without delivery",
                host,
                self.single_port,
                exc,
            )
            return
        delivered = [c for c in self.channels if c["delivery"]]
        first = delivered[0] if delivered else {"endian": "little", "dtype": "double"}
        fmt = ("<" if first["endian"] == "little" else ">") + (
            "f8" if first["dtype"] == "double" else "f4"
        )
        loop = len(self._analog)
        dividers = np.array([c["divider"] for c in delivered], dtype=np.int64)
        sample = 0
        start_dev = float(self.device_clock.device_time(self.clock()))
        if self.start_device_s is None:
            self.start_device_s = start_dev  # ground truth: device time of sample 0
        f = self.faults
        block_no = 0
        try:
            while self._streaming.is_set() and not self._stop.is_set():
                n = self.block
                if block_no == f.stall_at_block and f.stall_s:
                    time.sleep(f.stall_s)
                if block_no == f.disconnect_at_block:
                    f.disconnect_at_block = -1
                    sock.shutdown(socket.SHUT_RDWR)  # acquisition goes on, delivery stops
                    return
                idx = sample + np.arange(n)
                master_t, codes = sample_wire(
                    self.wire,
                    self.device_clock,
                    self.clock,
                    start_dev + idx / self.rate_hz,
                    self.latency_s,
                    self.trigger_connected,
                )
                since = np.floor((master_t - self.device_clock.epoch) * self.rate_hz)
                phys_idx = since.astype(np.int64) % loop
                frame = np.empty((n, len(delivered)))
                for j, c in enumerate(delivered):
                    if c["type"] == "analog":
                        frame[:, j] = self._analog[phys_idx, c["index"]]
                    else:
                        frame[:, j] = ((codes >> c["index"]) & 1) * self.digital_high
                # single mode: a channel appears in a frame only on its divider's samples
                present = idx[:, None] % dividers[None, :] == 0
                values = frame[present]
                if block_no not in f.drop_blocks:
                    send_with_faults(sock, values.astype(fmt).tobytes(), f, self._rng)
                block_no += 1
                sample += n
                self.samples_sent = sample
        except OSError as exc:
            logger.debug("AcqKnowledge simulator: data connection ended (%s)", exc)
        finally:
            sock.close()

    def stop_from_ui(self) -> None:
        """The operator stops acquisition in AcqKnowledge (fault injection)."""
        self.in_progress = False
        self._streaming.clear()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._streaming.clear()
        self.rpc.shutdown()
        self.rpc.server_close()
        self._rpc_thread.join(1.0)
        self._udp.close()
        self._udp_thread.join(1.0)
        if self._data_thread is not None:
            self._data_thread.join(1.0)

    def __enter__(self) -> AcqKnowledgeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
