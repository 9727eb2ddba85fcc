"""A console's link to the engine, and starting the session service.

:class:`ServiceClient` is the link to the session service (another process): it
sends commands and calls, hands every event to the console (on its reader thread
``service-events``) and reads the preview and the live signal windows from the
service's shared memory (see :mod:`mmmelab.acquisition.service` for the service's
side). :class:`LocalLink` offers the same calls on a runner in this process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client
from typing import Any

import numpy as np

from mmmelab.acquisition.control import EngineRunner
from mmmelab.acquisition.livewindow import SignalWindow, Snapshot, WindowRef
from mmmelab.acquisition.messages import (
    Bye,
    Call,
    Command,
    Connected,
    Detach,
    Hello,
    Join,
    PreviewAt,
    Put,
    Role,
    ServiceInfo,
    Setup,
    run_dir,
)
from mmmelab.drivers.lsl import local_clock
from mmmelab.errors import LabError
from mmmelab.storage.preview import PreviewBuffer

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 60.0  # a console waits this long for a new service to listen


class ServiceClient:
    """A console's connection to the service: commands out, events to ``on_event``
    (on a reader thread of this process), preview and live windows from shared memory.

    ``on_lost(message)`` is called once if the service goes away unasked.
    """

    def __init__(
        self,
        info: ServiceInfo,
        on_event: Callable[[Any], None],
        on_lost: Callable[[str], None],
        setup: Setup | None = None,
        role: Role = Role.CONSOLE,
    ) -> None:
        self.clock = local_clock
        self.info = info
        self.on_event = on_event
        self.on_lost = on_lost
        self.conn = Client(info.address, family="AF_UNIX", authkey=info.key)
        self.conn.send(Join(role, setup))
        hello = self.conn.recv()
        if isinstance(hello, Bye):
            self.conn.close()
            raise LabError(f"the session service refused: {hello.reason}")
        self.hello: Hello = hello
        self._send_lock = threading.Lock()
        self._preview: PreviewBuffer | None = None
        self._preview_name: str | None = None
        self._seq_base = 0
        self._last_seq = 0
        self._windows: dict[str, SignalWindow] = {}
        self._refs: dict[str, WindowRef | None] = {}
        self._closing = False
        self.lost = ""
        self._use_preview(hello.preview)
        if hello.connected is not None:
            self._refs = dict(hello.connected.windows)
        self._thread = threading.Thread(target=self._receive, name="service-events", daemon=True)

    def start(self) -> None:
        """Start delivering events (after the console has taken the Hello)."""
        self._thread.start()

    # ---------------------------------------------------------------- out

    def put(self, command: Command, *args: Any) -> None:
        self._send(Put(command, args))

    def call(self, method: str, *args: Any) -> None:
        self._send(Call(method, args))

    def _send(self, message: Any) -> None:
        if self.lost:
            return
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError) as exc:
            if not self._closing:  # after close or detach the service may be gone already
                self._lose(f"the session service is gone ({exc})")

    def detach(self) -> None:
        """Leave the session running (a console can attach later)."""
        self._closing = True
        self._send(Detach())

    def close(self, timeout_s: float = 15.0) -> None:
        """End the session (a recording is aborted and saved) and the service."""
        self._closing = True
        self._send(Put(Command.CLOSE))
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._release()

    # ---------------------------------------------------------------- in

    def _receive(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                if not self._closing:
                    self._lose("the session service stopped (its process ended)")
                break
            if isinstance(message, Bye):
                if not self._closing:
                    self._lose(f"the session service ended: {message.reason}")
                break
            if isinstance(message, PreviewAt):
                self._use_preview(message.name)
            elif isinstance(message, Connected):
                self._refs = dict(message.windows)
            self.on_event(message)
        try:
            self.conn.close()
        except OSError:
            pass

    def _lose(self, message: str) -> None:
        if self.lost:
            return
        self.lost = message
        self.on_lost(message)

    # ---------------------------------------------------------------- shared memory

    def _use_preview(self, name: str | None) -> None:
        if name == self._preview_name:
            return
        old = self._preview
        self._preview, self._preview_name = None, name
        self._seq_base = self._last_seq  # the console's numbering goes on rising
        if old is not None:
            old.close()
        if name is not None:
            try:
                self._preview = PreviewBuffer.attach(name)
            except LabError as exc:
                logger.warning("console: no preview: %s", exc)

    def preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        buffer = self._preview
        if buffer is None:
            return None
        if after_seq < self._seq_base:  # the console counts afresh (a new recording)
            self._seq_base = 0
        if buffer.seq() + self._seq_base <= after_seq:
            return None
        got = buffer.latest()
        if got is None:
            return None
        self._last_seq = got[0] + self._seq_base
        return self._last_seq, got[1], got[2]

    def snapshot(self, stream: str, seconds: float, channels: list[int] | None = None) -> Snapshot:
        """The newest ``seconds`` of ``stream`` from the service's shared window; empty
        once the service has let it go (it ended, or died)."""
        window = self._windows.get(stream)
        if window is None:
            ref = self._refs.get(stream)
            if ref is None:
                raise KeyError(stream)
            try:
                window = self._windows[stream] = SignalWindow.attach(ref)
            except FileNotFoundError:
                width = ref.n_channels if channels is None else len(channels)
                return Snapshot(np.zeros((0, width), np.float32), float("nan"), ref.rate_hz, 0)
        return window.snapshot(seconds, channels)

    def _release(self) -> None:
        for window in self._windows.values():
            window.close()
        self._windows.clear()
        if self._preview is not None:
            self._preview.close()
            self._preview = None


#: processes this one started (kept so that they are reaped when they end, not warned of)
_spawned: list[subprocess.Popen[bytes]] = []


class LocalLink:
    """A console's link to a runner in its own process (tests, developer tools): the
    same calls as :class:`~mmmelab.acquisition.service.ServiceClient`."""

    def __init__(self, runner: EngineRunner) -> None:
        self.runner = runner
        self.clock = runner.clock
        self.lost = ""

    def put(self, command: Command, *args: Any) -> None:
        self.runner.put(command, *args)

    def call(self, method: str, *args: Any) -> None:
        getattr(self.runner, method)(*args)

    def preview(self, after_seq: int) -> tuple[int, int, np.ndarray] | None:
        return self.runner.preview(after_seq)

    def snapshot(self, stream: str, seconds: float, channels: list[int] | None = None) -> Any:
        return self.runner.engine.windows[stream].snapshot(seconds, channels)

    def close(self, timeout_s: float = 15.0) -> None:
        self.runner.close(timeout_s)


def start_service(timeout_s: float = CONNECT_TIMEOUT_S, quiet: bool = False) -> ServiceInfo:
    """Start a service process (its own session, so a console's end does not end it)
    and return its address once it listens. Refuses when one is running already.
    ``quiet``: it logs warnings and errors only (the headless CLI)."""
    folder = run_dir()
    running = ServiceInfo.read(folder)
    if running is not None:
        raise LabError(
            f"a session service is running already (process {running.pid}): "
            f"mmme attach opens its console"
        )
    return start_listener("mmmelab.acquisition.service", "engine", "the session service",
                          timeout_s, ["--quiet"] if quiet else [])  # fmt: skip


def start_listener(
    module: str, name: str, what: str, timeout_s: float, args: list[str] | None = None
) -> ServiceInfo:
    """Start ``python -m module`` in a session of its own (it outlives its starter) and
    return where it listens once its ``<name>.json`` in the run folder says so."""
    folder = run_dir()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *(args or [])],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MMME_RUN_DIR": str(folder)},
    )
    _spawned[:] = [p for p in _spawned if p.poll() is None] + [proc]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = ServiceInfo.read(folder, name)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            raise LabError(f"{what} exited at start (code {proc.returncode})")
        time.sleep(0.05)
    proc.kill()
    raise LabError(f"{what} did not start within {timeout_s:.0f} s")


def wait_released(info: ServiceInfo, timeout_s: float) -> bool:
    """Wait until the service behind ``info`` has given up its run folder (its session
    saved, its devices closed: a new service may start), without waiting for its
    interpreter to finish exiting (a killed one, started here, is reaped); True when it
    did within ``timeout_s``."""
    ours = next((p for p in _spawned if p.pid == info.pid), None)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ours is not None and ours.poll() is not None:
            return True
        running = ServiceInfo.read(run_dir())
        if running is None or running.pid != info.pid:
            return True
        time.sleep(0.02)
    return False


def wait_ended(info: ServiceInfo, timeout_s: float) -> bool:
    """Wait until the process behind ``info`` has ended (reaped, when this process
    started it); True when it did within ``timeout_s``."""
    for proc in _spawned:
        if proc.pid == info.pid:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
