"""A Curry 8/9 NetStreaming server on 127.0.0.1 with a simulated SynAmps RT behind it.

Wire format (../shared/reference/devices.md 1b): every packet starts with a
20-byte big-endian header ``chanID[4] code:u16 request:u16 sample:u32 size:u32
size_uncompressed:u32``; bodies are little-endian. The client sends
``CTRL 2 <request>``; the server answers with ``DATA 1 <info type>`` packets
(version, basic info, channel info) and, once streaming starts, ``DATA 2 1``
float32 microvolt blocks (channel-fastest, absolute start sample in the header)
and ``DATA 3 3`` event packets at trigger edges.

The EEG channels are followed by a ``Trigger`` channel carrying the 16-bit event
word (``idle_word`` in the high byte, the wire's code in the low byte), sampled
from the shared :class:`VirtualWire` at each sample's time on the amplifier clock.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

import numpy as np

from mmmelab.hardware_mocks.synth import eeg_background, eeg_labels
from mmmelab.hardware_mocks.wire import DeviceClock, VirtualWire

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">4sHHIII")
EVENT = struct.Struct("<iiii520s")


def _packet(chan: bytes, code: int, request: int, sample: int, body: bytes) -> bytes:
    return HEADER.pack(chan, code, request, sample, len(body), len(body)) + body


class CurryServer:
    """Listens on an ephemeral port of 127.0.0.1 (``self.port``); one client at a time.

    Threads: ``sim-curry-accept`` plus one ``sim-curry-client`` per connection.
    """

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        n_channels: int = 64,
        rate_hz: float = 1000.0,
        block_samples: int = 40,
        idle_word: int = 0,
        device_clock: DeviceClock | None = None,
        latency_s: float = 0.0005,
        seed: int = 1,
    ) -> None:
        self.wire = wire
        self.clock = clock
        self.n_channels = n_channels
        self.rate_hz = rate_hz
        self.block = block_samples
        self.idle_word = idle_word
        self.device_clock = device_clock or DeviceClock(epoch=clock())
        self.latency_s = latency_s
        self.labels = [*eeg_labels(n_channels), "Trigger"]
        self._signal = eeg_background(n_channels, rate_hz, 10.0, seed)
        self.drop_blocks: set[int] = set()  # block numbers to leave out (fault injection)
        self.blocks_sent = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(
            target=self._accept_loop, name="sim-curry-accept", daemon=True
        )
        self._accept.start()

    # -------------------------------------------------------------- sockets

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._clients.append(conn)
            th = threading.Thread(
                target=self._serve, args=(conn,), name="sim-curry-client", daemon=True
            )
            self._threads.append(th)
            th.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        streaming = threading.Event()
        streamer: threading.Thread | None = None
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                while len(buf) >= HEADER.size:
                    chan, code, request, _, size, _ = HEADER.unpack_from(buf)
                    if len(buf) < HEADER.size + size:
                        break
                    buf = buf[HEADER.size + size :]
                    if chan != b"CTRL" or code != 2:
                        raise ConnectionError(f"unexpected packet {chan!r} {code}")
                    if request == 8 and streamer is None:
                        streaming.set()
                        streamer = threading.Thread(
                            target=self._stream,
                            args=(conn, streaming),
                            name="sim-curry-stream",
                            daemon=True,
                        )
                        streamer.start()
                    elif request == 9:
                        streaming.clear()
                    else:
                        self._answer(conn, request)
        except (OSError, ConnectionError) as exc:
            logger.debug("curry simulator: client gone (%s)", exc)
        finally:
            streaming.clear()
            if streamer is not None:
                streamer.join(1.0)
            conn.close()

    def _answer(self, conn: socket.socket, request: int) -> None:
        if request == 1:  # version
            conn.sendall(_packet(b"DATA", 1, 1, 0, struct.pack("<I", 900)))
        elif request == 6:  # basic info: size, channels, rate, data size, amp ctl, rec ctl
            body = struct.pack("<6I", 24, len(self.labels), int(self.rate_hz), 4, 0, 0)
            conn.sendall(_packet(b"DATA", 1, 2, 0, body))
        elif request == 3:  # channel info, 136 bytes per channel
            body = b"".join(self._channel_info(i, lab) for i, lab in enumerate(self.labels))
            conn.sendall(_packet(b"DATA", 1, 4, 0, body))

    def _channel_info(self, index: int, label: str) -> bytes:
        name = label.encode("utf-16-le")[:78].ljust(80, b"\0")
        chan_type = 2 if label == "Trigger" else 1
        return struct.pack(
            "<I80sIII3dIIfI", index + 1, name, chan_type, 1, 0, 0.0, 0.0, 0.0, 0, 0, 1.0, 0
        )

    # -------------------------------------------------------------- streaming

    def _stream(self, conn: socket.socket, streaming: threading.Event) -> None:
        start_dev = float(self.device_clock.device_time(self.clock()))
        sample = int(start_dev * self.rate_hz)
        last_code = self.wire.level_at(self.clock())
        block_no = 0
        loop = len(self._signal)
        while streaming.is_set() and not self._stop.is_set():
            n = self.block
            dev_t = (sample + np.arange(n)) / self.rate_hz
            master_t = np.asarray(self.device_clock.master_time(dev_t))
            wait = master_t[-1] - self.clock()
            if wait > 0:
                time.sleep(wait)
            codes = self.wire.levels_at(master_t - self.latency_s)
            idx = (sample + np.arange(n)) % loop
            words = (self.idle_word & 0xFF00) | (codes & 0xFF)
            block = np.empty((n, len(self.labels)), np.float32)
            block[:, :-1] = self._signal[idx]
            block[:, -1] = words
            out = b""
            if block_no not in self.drop_blocks:
                out += _packet(b"DATA", 2, 1, sample, block.astype("<f4").tobytes())
                for k in np.flatnonzero(np.diff(np.concatenate([[last_code], codes])) != 0):
                    if codes[k]:
                        ev = EVENT.pack(
                            int(codes[k]), 0, sample + int(k), sample + int(k), b"\0" * 520
                        )
                        out += _packet(b"DATA", 3, 3, sample, ev)
            last_code = int(codes[-1])
            try:
                if out:
                    conn.sendall(out)
            except OSError:
                return
            self.blocks_sent += 1
            block_no += 1
            sample += n

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._sock.close()
        for conn in self._clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept.join(1.0)
        for th in self._threads:
            th.join(1.0)

    def __enter__(self) -> CurryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
