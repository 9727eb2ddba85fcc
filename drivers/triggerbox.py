"""Serial/USB trigger boxes: one output interface, one codec per box.

The box puts an 8-bit code on the TTL lines that go to the camera GPI, the
SynAmps trigger port and the MP160 digital inputs. ``set_level(code)`` writes
the code (0 = all lines low) and returns the master-clock time of the write.
Pulses are timed by the caller (the trigger bus), because the camera needs them
longer than any box's built-in pulse.

Codecs (see ../shared/reference/devices.md section 3):

* ``brainproducts`` - raw byte latches the lines; ``0x00`` clears.
* ``mmbts`` - Neurospec MMBT-S at 9600 baud, S mode (latching); never opened at
  1200 baud, which would send the board into its boot loader.
* ``bbtk`` - Black Box ToolKit USB TTL: two upper-case ASCII hex characters;
  ``RR`` resets the module when the port opens.
* ``arduino`` - raw byte; opening the port resets most boards, so the driver
  waits ``boot_s`` before the first write.

Ports are opened with ``serial.serial_for_url`` so any pyserial URL works.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from mmmelab.config import TriggerBoxConfig, TriggerBoxKind
from mmmelab.errors import DeviceError, DeviceLostError

logger = logging.getLogger(__name__)

REOPEN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Codec:
    """How a trigger box is spoken to: its baud rate, its boot time, the bytes sent on
    opening, and how a code is encoded (one byte by default)."""

    baudrate: int | None
    boot_s: float = 0.0
    open_bytes: bytes = b""

    def encode(self, code: int) -> bytes:
        return bytes([code])


class HexCodec(Codec):
    """A box that takes each code as two ASCII hex digits."""

    def encode(self, code: int) -> bytes:
        return f"{code:02X}".encode("ascii")


CODECS: dict[TriggerBoxKind, Codec] = {
    TriggerBoxKind.BRAINPRODUCTS: Codec(baudrate=None),
    TriggerBoxKind.MMBTS: Codec(baudrate=9600),
    TriggerBoxKind.BBTK: HexCodec(baudrate=115200, open_bytes=b"RR"),
    TriggerBoxKind.ARDUINO: Codec(baudrate=None, boot_s=1.5),
}


class TriggerBox:
    """A trigger box on a serial port. Context manager; ``close`` is idempotent.

    ``set_level`` is called from the trigger-bus thread only.
    """

    name = "triggerbox"

    def __init__(
        self, config: TriggerBoxConfig, clock: Callable[[], float], write_timeout_s: float = 0.1
    ) -> None:
        self.config = config
        self.clock = clock
        self.codec = CODECS[config.box]
        self.write_timeout_s = write_timeout_s
        self._port: serial.SerialBase | None = None
        self.writes = 0
        self.level = 0
        self._opened = False
        self._next_reopen = 0.0

    def open(self) -> None:
        baud = self.codec.baudrate or self.config.baudrate
        try:
            self._port = serial.serial_for_url(
                self.config.port, baudrate=baud, timeout=0.05, write_timeout=self.write_timeout_s
            )
        except (serial.SerialException, ValueError) as exc:
            raise DeviceError(
                self.name,
                f"cannot open {self.config.port!r} ({exc}); check the "
                f"cable and devices.triggerbox.port",
            ) from None
        self._opened = True
        if self.codec.boot_s:
            time.sleep(self.codec.boot_s)
        if self.codec.open_bytes:
            self._write(self.codec.open_bytes)
        self.set_level(0)
        logger.info("trigger box %s open on %s", self.config.box.value, self.config.port)

    def _write(self, data: bytes) -> None:
        if self._port is None:
            self._try_reopen()
        assert self._port is not None
        try:
            self._port.write(data)
            self._port.flush()
        except serial.SerialTimeoutException:
            raise DeviceError(self.name, f"write to {self.config.port} timed out") from None
        except (serial.SerialException, OSError) as exc:
            self._port.close()
            self._port = None  # unplugged: reopen attempts from now on
            self._next_reopen = time.monotonic() + REOPEN_INTERVAL_S
            raise DeviceLostError(self.name, f"port {self.config.port} lost ({exc})") from None

    def _try_reopen(self) -> None:
        """After the box vanished: try to open the port again, at most once a second."""
        if not self._opened or time.monotonic() < self._next_reopen:
            raise DeviceLostError(self.name, f"port {self.config.port} is gone")
        self._next_reopen = time.monotonic() + REOPEN_INTERVAL_S
        try:
            self._port = serial.serial_for_url(
                self.config.port,
                baudrate=self.codec.baudrate or self.config.baudrate,
                timeout=0.05,
                write_timeout=self.write_timeout_s,
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise DeviceLostError(self.name, f"port {self.config.port} is gone ({exc})") from None
        logger.warning("trigger box %s is back", self.config.port)

    def set_level(self, code: int) -> float:
        """Drive the lines to ``code`` (0-255); returns the master time just after the write."""
        if not 0 <= code <= 255:
            raise DeviceError(self.name, f"code {code} is outside 0-255")
        self._write(self.codec.encode(code))
        t = self.clock()
        self.writes += 1
        self.level = code
        return t

    def info(self) -> dict[str, object]:
        return {
            "box": self.config.box.value,
            "port": self.config.port,
            "baudrate": self.codec.baudrate or self.config.baudrate,
        }

    def close(self) -> None:
        self._opened = False
        if self._port is None:
            return
        try:
            if self.level:
                self._write(self.codec.encode(0))
        except DeviceError as exc:
            logger.warning("could not clear trigger lines on close: %s", exc)
        finally:
            self._port.close()
            self._port = None

    def __enter__(self) -> TriggerBox:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
