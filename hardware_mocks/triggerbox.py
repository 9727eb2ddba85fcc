"""A serial trigger box on a pseudo-terminal: the driver opens a real serial device.

The simulator owns the master side of a pty; the driver opens the slave path
(``/dev/pts/N``) with pyserial like any USB-serial box. Bytes are decoded with
the box's own protocol and drive the :class:`~mmmelab.hardware_mocks.wire.VirtualWire`
after a latency with jitter:

* ``brainproducts`` - each byte latches the 8 output lines; 0 clears.
* ``mmbts`` - Neurospec MMBT-S, S mode: byte latches; P mode: clears 8 ms later.
* ``bbtk`` - Black Box ToolKit: two upper-case hex characters set the lines,
  ``RR`` resets; anything else is rejected (counted in ``rejected``).
* ``arduino`` - byte latches, but bytes arriving during the boot time after the
  simulator starts are swallowed, like a board that resets when the port opens.
"""

from __future__ import annotations

import logging
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable

from mmmelab.hardware_mocks.wire import VirtualWire

logger = logging.getLogger(__name__)


class TriggerBoxSimulator:
    """Runs one reader thread on the pty master. Context manager; ``close`` is idempotent."""

    def __init__(
        self,
        wire: VirtualWire,
        clock: Callable[[], float],
        box: str = "brainproducts",
        latency_s: float = 0.001,
        jitter_s: float = 0.0002,
        p_mode: bool = False,
        boot_s: float = 1.5,
        seed: int = 0,
    ) -> None:
        self.wire = wire
        self.clock = clock
        self.box = box
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.p_mode = p_mode
        self.boot_s = boot_s
        self._rng = random.Random(seed)
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self.port = os.ttyname(self.slave_fd)
        self.received = bytearray()
        self.rejected = 0
        self.swallowed = 0
        self._pending = b""
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-triggerbox", daemon=True)
        self._thread.start()

    def _stamp(self) -> float:
        return self.clock() + self.latency_s + self._rng.uniform(-self.jitter_s, self.jitter_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master_fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master_fd, 4096)
            except OSError:
                return  # the port vanished (closed)
            if data:
                self.received += data
                self._decode(data)

    def _decode(self, data: bytes) -> None:
        if self.box == "bbtk":
            self._pending += data
            while len(self._pending) >= 2:
                pair, self._pending = self._pending[:2], self._pending[2:]
                if pair == b"RR":
                    self.wire.set(0, self._stamp())
                    continue
                text = pair.decode("ascii", "replace")
                if all(c in "0123456789ABCDEF" for c in text):
                    self.wire.set(int(text, 16), self._stamp())
                else:
                    self.rejected += 1
            return
        for byte in data:
            if self.box == "arduino" and time.monotonic() - self._started < self.boot_s:
                self.swallowed += 1
                continue
            t = self._stamp()
            self.wire.set(byte, t)
            if self.box == "mmbts" and self.p_mode and byte:
                self.wire.set(0, t + 0.008)

    def vanish(self) -> None:
        """Unplug the box: the port disappears under the driver."""
        self.close()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(1.0)
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> TriggerBoxSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
