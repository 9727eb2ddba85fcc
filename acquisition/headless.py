"""The headless console: ``mmme record`` (and ``mmme demo`` without a display) on the
session service.

A headless recording runs where the GUI's runs: in the session service
(:mod:`mmmelab.acquisition.service`), a process of its own. :class:`HeadlessConsole`
starts that service with the session, joins it as its console, connects the
devices, starts the recording (with the simulated participant when asked) and
follows it to the end, handing each event to the caller's thread. If the CLI
process is killed, the service stops the recording after
:data:`HEADLESS_ORPHAN_S` with no console and saves it (status aborted, the reason
in the faults); ``mmme attach`` can take it over before that.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmmelab.acquisition.consolelink import (
    ServiceClient,
    start_service,
    wait_ended,
    wait_released,
)
from mmmelab.acquisition.messages import (
    Command,
    ControllerState,
    Failed,
    Finished,
    PhaseChanged,
    PhaseInfo,
    Role,
    SessionResult,
    Setup,
    StateChanged,
    Telemetry,
)
from mmmelab.acquisition.telemetry import EngineTelemetry
from mmmelab.errors import LabError
from mmmelab.participant import ParticipantInfo

logger = logging.getLogger(__name__)

HEADLESS_ORPHAN_S = 10.0  # a killed CLI: the service saves the recording this long after
CONNECT_TIMEOUT_S = 120.0  # the devices' opening and the pre-flight checks
POLL_S = 0.05


@dataclass(frozen=True)
class _Lost:
    message: str


class HeadlessConsole:
    """A console without windows on a new session service (see the module doc).
    Its methods run on the CLI's main thread; events queue up from the link's thread."""

    def __init__(self, setup: Setup) -> None:
        self._events: queue.Queue[Any] = queue.Queue()
        self.info = start_service(quiet=True)
        try:
            self.client = ServiceClient(
                self.info, self._events.put, lambda m: self._events.put(_Lost(m)), setup,
                Role.CONSOLE,
            )  # fmt: skip
        except LabError:
            wait_ended(self.info, 10.0)
            raise
        hello = self.client.hello
        self.state, self.folder = hello.state, hello.folder
        self.telemetry = hello.telemetry
        self.result: SessionResult | None = hello.result
        self.client.start()

    def connect(self) -> None:
        """Open every device and run the pre-flight checks (raises LabError with the
        service's reason when they fail)."""
        self.client.put(Command.CONNECT)
        self._until({ControllerState.READY}, CONNECT_TIMEOUT_S)

    def start(self, participant: ParticipantInfo, simulate_participant: bool) -> None:
        """Start recording; returns once the recording runs (the folder is known)."""
        self.client.put(Command.START, participant, simulate_participant)
        self._until({ControllerState.RECORDING}, CONNECT_TIMEOUT_S)

    def follow(
        self,
        on_phase: Callable[[PhaseInfo], None],
        stop_requested: Callable[[], bool],
        on_stopping: Callable[[], None],
    ) -> SessionResult:
        """Hand every phase to ``on_phase`` until the session is saved; when
        ``stop_requested()`` turns true, abort (the service saves) and call
        ``on_stopping`` once. Returns the session's result."""
        asked = False
        while self.state is not ControllerState.FINISHED:
            if not asked and stop_requested():
                asked = True
                self.client.put(Command.ABORT, self.client.clock())  # when it was asked
                on_stopping()
            event = self._next(POLL_S)
            if isinstance(event, PhaseChanged):
                on_phase(event.info)
        assert self.result is not None
        return self.result

    def close(self) -> None:
        """End the service (a recording still running is aborted and saved) and wait
        until it has released the run folder. Its interpreter's own exit (about 0.9 s
        here) is not waited for: the session and the devices are done with by then."""
        self.client.close()
        if not wait_released(self.info, 30.0):  # (called in a finally: says, never raises)
            logger.error("the session service (process %d) did not end", self.info.pid)

    def current_telemetry(self) -> EngineTelemetry:
        """The newest figures the service sent (twice a second while recording)."""
        return self.telemetry

    # ------------------------------------------------------------ events

    def _until(self, states: set[ControllerState], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.state not in states:
            if time.monotonic() > deadline:
                wanted = " or ".join(s.value for s in states)
                raise LabError(f"the session is still {self.state.value} after {timeout_s:g} s "
                               f"(waited for {wanted})")  # fmt: skip
            self._next(POLL_S)

    def _next(self, timeout_s: float) -> Any:
        """One event (or None after ``timeout_s``), with the console's state kept."""
        try:
            event = self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(event, _Lost):
            where = f"; the session on disk is readable: {self.folder}" if self.folder else ""
            raise LabError(f"{event.message}{where}")
        if isinstance(event, Failed):
            raise LabError(event.message)
        if isinstance(event, StateChanged):
            self.state = event.state
            self.folder = event.folder or self.folder
        elif isinstance(event, Telemetry):
            self.telemetry = event.values
        elif isinstance(event, Finished):
            self.result = event.result
        return event
