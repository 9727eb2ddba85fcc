"""The trigger bus: one call emits an event code to the trigger box and the LSL markers.

``TriggerBus.emit(code, label)`` returns at once; a dedicated thread turns each
event into a host-timed TTL pulse (code on, ``pulse_ms``, line low, ``gap_ms``) and
pushes the LSL marker stamped with the moment the code byte was written. Pulses
never overlap: events queue in order. When nothing happens for
``sync_interval_s`` the bus sends a SYNC pulse so that offline alignment keeps
its anchors through quiet stretches.

The bus knows its outputs only through two small protocols, so the sync layer
does not depend on the drivers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mmmelab.errors import LabError
from mmmelab.sync.codes import EventCode, marker_text

logger = logging.getLogger(__name__)

QUIET_S = 0.001  # after each write, before any bookkeeping


class TriggerOutput(Protocol):
    """A TTL output: ``set_level(code)`` drives the lines and returns the host write time."""

    def set_level(self, code: int) -> float: ...


class MarkerOutput(Protocol):
    """A marker stream: ``push(text, timestamp)`` on the master clock."""

    def push(self, text: str, timestamp: float) -> None: ...


@dataclass(frozen=True)
class MarkerRecord:
    """One emitted event. Times are on the master clock (s).

    ``t_request`` is when the event happened as the caller saw it (a displayed
    frame, a key press, a due transition; else when ``emit`` was called),
    ``t_on`` when the code byte was written (the marker's timestamp), ``t_off``
    when the line went low again; ``t_on - t_request`` is the delay from the
    event to its pulse (queueing behind earlier pulses included).
    """

    seq: int
    code: EventCode
    label: str
    t_request: float
    t_on: float
    t_off: float
    ttl_ok: bool


class TriggerBus:
    """Serialises event codes onto the trigger box and the LSL marker stream.

    Runs one thread (``trigger-bus``). ``emit`` may be called from any thread.
    ``listeners`` are called on the bus thread with every :class:`MarkerRecord`;
    they must be quick (append to a queue).
    """

    def __init__(
        self,
        output: TriggerOutput,
        markers: MarkerOutput,
        clock: Callable[[], float],
        pulse_s: float = 0.020,
        gap_s: float = 0.020,
        sync_interval_s: float = 5.0,
    ) -> None:
        self._output = output
        self._markers = markers
        self._clock = clock
        self.pulse_s = pulse_s
        self.gap_s = gap_s
        self.sync_interval_s = sync_interval_s
        self._queue: queue.Queue[tuple[EventCode, str, float] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.listeners: list[Callable[[MarkerRecord], None]] = []
        self.records: list[MarkerRecord] = []
        self.ttl_failures = 0
        self.ttl_ok = True
        #: exceptions raised by listeners (each logged with its traceback; the bus goes on)
        self.listener_errors: list[str] = []
        #: why the bus thread ended early, if it did (None while it runs or after close)
        self.error: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="trigger-bus", daemon=True)
        self._thread.start()

    def emit(self, code: EventCode, label: str = "", t_event: float | None = None) -> None:
        """Queue an event; it goes out as soon as the previous pulse and gap are over.

        ``t_event`` (master clock, s) is when it happened, if the caller knows better
        than "now"; it is kept as the marker's ``t_request``.
        """
        t = self._clock() if t_event is None else t_event
        self._queue.put((EventCode(code), label, t))

    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        """The bus thread runs (False before ``start``, after ``close`` or a failure)."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float = 1.5) -> None:
        """Send what is queued (within ``timeout_s``), leave the line low, stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.error(
                "trigger bus did not drain within %.1f s; %d events not sent",
                timeout_s,
                self._queue.qsize(),
            )
            self._stop.set()
            self._thread.join(1.0)
        self._thread = None

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # the engine sees ``error`` within a second
            self.error = f"the trigger bus stopped: {exc!r}"
            logger.exception("trigger bus failed")

    def _serve(self) -> None:
        last = self._clock()
        while not self._stop.is_set():
            wait = max(0.0, self.sync_interval_s - (self._clock() - last))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = (EventCode.SYNC, "", self._clock())
            if item is None:
                break
            self._pulse(*item)
            last = self._clock()
        self._safe_level(0)

    def _safe_level(self, code: int) -> tuple[float, bool]:
        try:
            t = self._output.set_level(code)
        except (LabError, OSError) as exc:
            self.ttl_failures += 1
            if self.ttl_ok:  # log the change, not every failed pulse
                logger.error(
                    "trigger output failed (code %d): %s; the LSL markers go on, "
                    "TTL pulses are missing until it is back",
                    code,
                    exc,
                )
            self.ttl_ok = False
            return self._clock(), False
        if not self.ttl_ok:
            logger.warning("trigger output works again")
        self.ttl_ok = True
        return t, True

    def _hold_until(self, t: float) -> None:
        self._stop.wait(max(0.0, t - self._clock()))

    def _pulse(self, code: EventCode, label: str, t_request: float) -> None:
        # Bookkeeping (the LSL push, records, listeners) waits QUIET_S after each write,
        # so that nothing this process does competes with what must follow the write;
        # in the simulated lab that is the trigger box itself. Widths stay exact:
        # they are measured from the write.
        t_on, ok = self._safe_level(int(code))
        self._hold_until(t_on + QUIET_S)
        try:
            self._markers.push(marker_text(code, label), t_on)
        except (LabError, OSError, RuntimeError) as exc:
            logger.error("marker stream failed for %s: %s", code.name, exc)
        self._hold_until(t_on + self.pulse_s)
        t_off, ok_off = self._safe_level(0)
        self._hold_until(t_off + QUIET_S)
        self._seq += 1
        record = MarkerRecord(self._seq, code, label, t_request, t_on, t_off, ok and ok_off)
        self.records.append(record)
        for listener in self.listeners:
            try:
                listener(record)
            except Exception as exc:  # one listener must not stop the pulses
                logger.exception("a trigger-bus listener failed on %s", code.name)
                if len(self.listener_errors) < 100:
                    self.listener_errors.append(f"{code.name}: {exc!r}")
        self._hold_until(t_off + self.gap_s)
