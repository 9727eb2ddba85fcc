"""The skeleton of the simulated amplifier servers (Curry, Acquire), with fault injection.

A ``StreamingServer`` listens on an ephemeral port of 127.0.0.1 and serves one
client at a time: a subclass parses the client's requests (``handle``) and
builds sample blocks (``block``). Samples are numbered on the amplifier's own
clock from the server's epoch, so a client that reconnects after a fault sees a
real gap in the sample index, as with the device.

``FaultPlan`` switches faults on, each independently:

* ``split_writes`` - every packet leaves in pieces of 1..``max_piece`` bytes, so
  headers and bodies cross ``recv`` boundaries anywhere;
* ``stall_at_block``/``stall_s`` - the server stops sending, then catches up in a burst;
* ``drop_blocks`` - these block numbers are never sent (a hole in the sample index);
* ``garbage_every`` - random bytes before every n-th packet;
* ``disconnect_at_block`` - the server drops the connection (once), then accepts again;
* ``refuse`` - the server answers nothing at all (connect succeeds, silence);
* ``malformed_blocks`` - these blocks lose 3 bytes of body (header consistent);
* ``bad_basic_info`` - the basic-info answer is corrupt (wrong size field).
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire, sample_wire

logger = logging.getLogger(__name__)


@dataclass
class FaultPlan:
    split_writes: bool = False
    max_piece: int = 7
    stall_at_block: int = -1
    stall_s: float = 0.0
    drop_blocks: set[int] = field(default_factory=set)
    garbage_every: int = 0
    disconnect_at_block: int = -1
    disconnect_down_s: float = 0.2  # after dropping, the server refuses connections this long
    refuse: bool = False
    malformed_blocks: set[int] = field(default_factory=set)
    bad_basic_info: bool = False


def send_with_faults(
    sock: socket.socket, data: bytes, faults: FaultPlan, rng: random.Random
) -> None:
    """Send ``data``, in random pieces of 1..``max_piece`` bytes when ``split_writes``."""
    if not faults.split_writes:
        sock.sendall(data)
        return
    pos = 0
    while pos < len(data):
        step = rng.randint(1, faults.max_piece)
        sock.sendall(data[pos : pos + step])
        pos += step


class ClientGone(Exception):
    """The client closed the connection or asked to close it."""


class StreamingServer:
    """Base of the simulated amplifier servers. Threads: ``sim-<name>-accept``,
    ``sim-<name>-client`` per connection, ``sim-<name>-stream`` while streaming."""

    name = "amp"

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        rate_hz: float,
        block_samples: int,
        device_clock: DeviceClock | None = None,
        latency_s: float = 0.0005,
        faults: FaultPlan | None = None,
        seed: int = 0,
    ) -> None:
        self.wire = wire
        self.clock = clock
        self.rate_hz = rate_hz
        self.block_samples = block_samples
        self.device_clock = device_clock or DeviceClock(epoch=clock())
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self._rng = random.Random(seed)
        self.blocks_sent = 0
        self.connections = 0
        self._down_until = 0.0
        self.stream_start_sample: int | None = None
        self.trigger_connected = True  # False: the trigger cable is out (fault injection)
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(
            target=self._accept_loop, name=f"sim-{self.name}-accept", daemon=True
        )
        self._accept.start()

    # ------------------------------------------------------------ for subclasses

    def handle(self, conn: socket.socket, state: dict[str, Any], data: bytes) -> bytes:
        """Consume requests from ``data``; return the unconsumed rest. May start/stop
        streaming through ``start_stream``/``stop_stream``; raise ClientGone to close."""
        raise NotImplementedError

    def malformed(self) -> bool:
        """Whether the block being built now is to be corrupted (fault injection)."""
        return self.blocks_sent in self.faults.malformed_blocks

    def block(self, first_sample: int, data: np.ndarray, codes: np.ndarray) -> bytes:
        """The packets for one block (``data``: samples x channels, ``codes``: wire levels)."""
        raise NotImplementedError

    def signal(self, first_sample: int, n: int) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------ sending with faults

    def send(self, conn: socket.socket, packet: bytes) -> None:
        f = self.faults
        if f.garbage_every and self.blocks_sent and self.blocks_sent % f.garbage_every == 0:
            packet = bytes(self._rng.getrandbits(8) for _ in range(13)) + packet
        send_with_faults(conn, packet, f, self._rng)

    # ------------------------------------------------------------ sockets

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if time.monotonic() < self._down_until:  # still "restarting": refuse
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(conn)
                self.connections += 1
            th = threading.Thread(
                target=self._serve, args=(conn,), name=f"sim-{self.name}-client", daemon=True
            )
            self._threads.append(th)
            th.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        state: dict[str, Any] = {"streaming": threading.Event(), "streamer": None}
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                if self.faults.refuse:
                    continue
                buf = self.handle(conn, state, buf + data)
        except (OSError, ClientGone) as exc:
            logger.debug("%s simulator: client gone (%s)", self.name, exc)
        finally:
            self.stop_stream(state)
            conn.close()

    def start_stream(self, conn: socket.socket, state: dict[str, Any]) -> None:
        if state["streamer"] is not None:
            return
        state["streaming"].set()
        th = threading.Thread(
            target=self._stream,
            args=(conn, state["streaming"]),
            name=f"sim-{self.name}-stream",
            daemon=True,
        )
        state["streamer"] = th
        th.start()

    def stop_stream(self, state: dict[str, Any]) -> None:
        state["streaming"].clear()
        th = state["streamer"]
        if th is not None and th is not threading.current_thread():
            th.join(1.0)
        state["streamer"] = None

    def _stream(self, conn: socket.socket, streaming: threading.Event) -> None:
        n = self.block_samples
        sample = int(float(self.device_clock.device_time(self.clock())) * self.rate_hz)
        if self.stream_start_sample is None:
            self.stream_start_sample = sample  # ground truth for sample-counting clients
        f = self.faults
        try:
            while streaming.is_set() and not self._stop.is_set():
                block_no = self.blocks_sent
                if block_no == f.stall_at_block and f.stall_s:
                    time.sleep(f.stall_s)  # nothing sent; the clock runs on
                if block_no == f.disconnect_at_block:
                    f.disconnect_at_block = -1  # once
                    # a real server needs a moment to come back: samples are lost meanwhile
                    self._down_until = time.monotonic() + f.disconnect_down_s
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                _, codes = sample_wire(
                    self.wire,
                    self.device_clock,
                    self.clock,
                    (sample + np.arange(n)) / self.rate_hz,
                    self.latency_s,
                    self.trigger_connected,
                )
                if block_no not in f.drop_blocks:
                    self.send(conn, self.block(sample, self.signal(sample, n), codes))
                self.blocks_sent += 1
                sample += n
        except OSError as exc:
            logger.debug("%s simulator: streaming ended (%s)", self.name, exc)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._sock.close()
        with self._lock:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._accept.join(1.0)
        for th in self._threads:
            th.join(1.5)

    def __enter__(self) -> StreamingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
