"""The engine as a service: the session runs in a process of its own, the console
attaches to it.

``python -m mmmelab.acquisition.service`` runs the engine, its recorders, the
trigger bus and the frame writers (the simulated lab's devices too) around one
:class:`~mmmelab.acquisition.control.EngineRunner`. A console talks to it over a
``multiprocessing.connection`` on a Unix socket with an authentication key: it
sends :class:`Setup` once, then :class:`Put` (commands, done in order on the
control thread) and :class:`Call` (logs and the face box, done at once); it
receives :class:`Hello` (everything a console needs to show the session as it is
now) and then every :data:`~mmmelab.acquisition.control.Event`. Frames and
samples never cross as messages: the preview and the live signal windows are in
shared memory, and the events say where.

The console may die without harm: the recording goes on, and a console that
attaches (``mmme attach``) takes over where it was. With no console for
``orphan_timeout_s`` the service stops a recording cleanly (saved, status
aborted, the reason in the faults), or closes the devices before or after one,
and exits. If the service dies, the console's connection ends and it says so at
once; the session on disk is readable (every file is journalled as it goes).

Where it is: the run folder (``MMME_RUN_DIR``, else ``$XDG_RUNTIME_DIR/mmme-lab``,
else ``/tmp/mmme-lab-<uid>``; mode 0700) holds ``engine.sock`` and ``engine.json``
(process id, key; mode 0600). One service per user and machine.

Threads in the service: the main thread accepts consoles; one reader per console
takes its messages; one sender per console writes events from a queue, so a slow
or frozen console never holds up the control thread; a watchdog applies the
orphan rule.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.acquisition.control import (
    Command,
    Connected,
    ControllerState,
    EngineRunner,
    Event,
    PhaseInfo,
    PreviewAt,
    SessionResult,
)
from mmmelab.acquisition.livewindow import SignalWindow, Snapshot, WindowRef
from mmmelab.config import LabConfig
from mmmelab.drivers.lsl import local_clock
from mmmelab.errors import LabError
from mmmelab.protocol import Protocol
from mmmelab.storage.preview import PreviewBuffer
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

ORPHAN_TIMEOUT_S = 120.0  # a recording with no console this long is stopped (saved)
SETUP_TIMEOUT_S = 30.0  # a service that was given no session this long exits
CONNECT_TIMEOUT_S = 60.0  # a console waits this long for a new service to listen
SEND_QUEUE_MAX = 2000  # events queued for a console that does not read: it is dropped
CALLS = frozenset({"log", "log_display", "fault", "record_display_check", "set_face_box"})


# ------------------------------------------------------------ messages (console -> service)


@dataclass(frozen=True)
class Setup:
    """The session to run (the first message to a new service)."""

    lab: LabConfig
    protocol: Protocol
    out_root: Path | None = None
    run_checks: bool = True
    seed: int = 0
    orphan_timeout_s: float = ORPHAN_TIMEOUT_S


@dataclass(frozen=True)
class Put:
    command: Command
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Call:
    method: str  # one of CALLS
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Detach:
    """The console leaves; the session goes on (the orphan rule applies)."""


# ------------------------------------------------------------ messages (service -> console)


@dataclass(frozen=True)
class Hello:
    """The session as it is when a console attaches."""

    pid: int
    lab: LabConfig
    protocol: Protocol
    state: ControllerState
    folder: Path | None
    connected: Connected | None
    phase: PhaseInfo | None
    telemetry: dict[str, Any]
    camera_live: dict[str, Any]
    preview: str | None
    result: SessionResult | None
    error: str = ""


@dataclass(frozen=True)
class Bye:
    """The service ends (or another console took over); no more messages follow."""

    reason: str


# ------------------------------------------------------------ where the service is


def run_dir() -> Path:
    """The folder of the socket and the service file (made, mode 0700)."""
    env = os.environ.get("MMME_RUN_DIR")
    if env:
        folder = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "mmme-lab"
    else:
        folder = Path(tempfile.gettempdir()) / f"mmme-lab-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class ServiceInfo:
    address: str
    key: bytes
    pid: int

    @classmethod
    def read(cls, folder: Path | None = None) -> ServiceInfo | None:
        """The running service's address, or None when there is none."""
        path = (folder or run_dir()) / "engine.json"
        try:
            raw = json.loads(path.read_text())
            info = cls(str(raw["address"]), bytes.fromhex(raw["key"]), int(raw["pid"]))
        except (OSError, ValueError, KeyError):
            return None
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None  # left by a service that was killed
        except PermissionError:
            pass
        return info

    def write(self, folder: Path) -> None:
        path = folder / "engine.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"address": self.address, "key": self.key.hex(), "pid": self.pid}, f)
        os.replace(tmp, path)


# ------------------------------------------------------------ the service


@dataclass
class _Console:
    conn: Connection
    outbox: queue.Queue[Any] = field(default_factory=queue.Queue)
    gone: threading.Event = field(default_factory=threading.Event)


class EngineService:
    """The service process's body. See the module doc."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = secrets.token_bytes(32)
        self.address = str(folder / "engine.sock")
        if os.path.exists(self.address):
            os.unlink(self.address)  # left by a service that was killed (checked by the caller)
        self.listener = Listener(self.address, family="AF_UNIX", authkey=self.key)
        self.runner: EngineRunner | None = None
        self.setup: Setup | None = None
        self.console: _Console | None = None
        self.lock = threading.Lock()
        self.alone_since = time.monotonic()  # no console since
        self.ended = threading.Event()
        self.error = ""

    def serve(self) -> int:
        ServiceInfo(self.address, self.key, os.getpid()).write(self.folder)
        threading.Thread(target=self._accept, name="service-accept", daemon=True).start()
        threading.Thread(target=self._watchdog, name="service-watchdog", daemon=True).start()
        try:
            self.ended.wait()
        finally:
            self._end()
        return 0

    def terminate(self) -> None:
        """SIGTERM / SIGINT: abort a recording (saved), close, exit."""
        logger.warning("service: asked to stop; closing the session")
        self._close_runner()
        self.ended.set()

    # ---------------------------------------------------------------- consoles

    def _accept(self) -> None:
        while not self.ended.is_set():
            try:
                conn = self.listener.accept()
            except (AuthenticationError, EOFError, OSError) as exc:
                if self.ended.is_set():
                    return  # the listener was closed at the end
                logger.warning("service: a console could not attach: %s", exc)
                continue
            threading.Thread(target=self._serve_console, args=(conn,), daemon=True).start()

    def _serve_console(self, conn: Connection) -> None:
        if self.runner is None:
            try:
                setup = conn.recv() if conn.poll(SETUP_TIMEOUT_S) else None
            except (EOFError, OSError):
                setup = None
            if not isinstance(setup, Setup) or not self._start_runner(setup):
                conn.send(Bye(self.error or "no session was given"))
                conn.close()
                self.ended.set()
                return
        console = _Console(conn)
        with self.lock:
            old, self.console = self.console, console
            if old is not None:
                old.outbox.put(Bye("another console attached"))
            console.outbox.put(self._hello())
        threading.Thread(target=self._send, args=(console,), daemon=True).start()
        logger.info("service: a console attached")
        self._read(console)

    def _start_runner(self, setup: Setup) -> bool:
        try:
            self.runner = EngineRunner(
                setup.lab, setup.protocol, self._emit, out_root=setup.out_root,
                run_checks=setup.run_checks, seed=setup.seed, share=True,
            )  # fmt: skip
        except LabError as exc:
            self.error = str(exc)
            return False
        self.setup = setup
        return True

    def _hello(self) -> Hello:
        r, s = self.runner, self.setup
        assert r is not None and s is not None
        pipe = r.engine.recording.pipeline
        if r.state is ControllerState.RECORDING and pipe is not None and pipe.preview:
            preview: str | None = pipe.preview.name
        else:
            preview = r.shared_preview
        return Hello(
            os.getpid(), s.lab, s.protocol, r.state, r.folder, r.connected, r.phase,
            r.telemetry, r.camera_live, preview, r.result, self.error,
        )  # fmt: skip

    def _read(self, console: _Console) -> None:
        runner = self.runner
        assert runner is not None
        left = "lost"
        try:
            while not console.gone.is_set():
                message = console.conn.recv()
                if isinstance(message, Put):
                    runner.put(message.command, *message.args)
                elif isinstance(message, Call) and message.method in CALLS:
                    getattr(runner, message.method)(*message.args)
                elif isinstance(message, Detach):
                    left = "detached"
                    break
                else:
                    logger.warning("service: ignored a message %r", type(message).__name__)
        except (EOFError, OSError):
            pass
        except LabError as exc:
            logger.error("service: %s", exc)
        self._drop(console, left)

    def _send(self, console: _Console) -> None:
        while True:
            message = console.outbox.get()
            try:
                console.conn.send(message)
            except (OSError, ValueError):
                self._drop(console, "lost")
                return
            if isinstance(message, Bye):
                console.gone.set()
                console.conn.close()
                return

    def _emit(self, event: Event) -> None:
        """From the control thread (and the preview publisher): to the console's outbox."""
        with self.lock:
            console = self.console
        if console is None:
            return
        if console.outbox.qsize() > SEND_QUEUE_MAX:
            self._drop(console, "not reading")
            return
        console.outbox.put(event)

    def _drop(self, console: _Console, how: str) -> None:
        with self.lock:
            if self.console is not console:
                return
            self.console = None
            self.alone_since = time.monotonic()
        console.gone.set()
        try:
            console.conn.close()
        except OSError:
            pass
        runner = self.runner
        if how == "detached":
            logger.info("service: the console detached")
        elif runner is not None and runner.state is ControllerState.RECORDING:
            detail = f"the console was {how}; recording goes on (mmme attach reopens it)"
            runner.fault("console", FaultKind.WARNING, detail)

    # ---------------------------------------------------------------- the orphan rule

    def _watchdog(self) -> None:
        while not self.ended.wait(0.25):
            runner = self.runner
            if runner is None:
                if time.monotonic() - self.alone_since > SETUP_TIMEOUT_S:
                    self.error = "no console gave a session"
                    self.ended.set()
                continue
            if not runner.alive():
                self.ended.set()  # closed (by the console's Close, or a signal)
                continue
            with self.lock:
                alone = None if self.console else time.monotonic() - self.alone_since
            limit = self.setup.orphan_timeout_s if self.setup else ORPHAN_TIMEOUT_S
            if alone is None or alone < limit:
                continue
            if runner.state is ControllerState.RECORDING:
                runner.fault(
                    "console", FaultKind.WARNING,
                    f"no console for {alone:.0f} s: the recording was stopped (saved)",
                )  # fmt: skip
            logger.warning("service: no console for %.0f s; closing", alone)
            self._close_runner()
            self.ended.set()

    def _close_runner(self) -> None:
        if self.runner is not None:
            self.runner.close(timeout_s=60.0)

    def _end(self) -> None:
        with self.lock:
            console, self.console = self.console, None
        if console is not None:
            console.outbox.put(Bye(self.error or "the session service ended"))
            console.gone.wait(2.0)
        self.listener.close()
        for path in (self.folder / "engine.json", Path(self.address)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


# ------------------------------------------------------------ the console's side


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
    ) -> None:
        self.clock = local_clock
        self.info = info
        self.on_event = on_event
        self.on_lost = on_lost
        self.conn = Client(info.address, family="AF_UNIX", authkey=info.key)
        if setup is not None:
            self.conn.send(setup)
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
        self._thread.join(timeout_s) if self._thread.is_alive() else None
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
        window = self._windows.get(stream)
        if window is None:
            ref = self._refs.get(stream)
            if ref is None:
                raise KeyError(stream)
            window = self._windows[stream] = SignalWindow.attach(ref)
        return window.snapshot(seconds, channels)

    def _release(self) -> None:
        for window in self._windows.values():
            window.close()
        self._windows.clear()
        if self._preview is not None:
            self._preview.close()
            self._preview = None


#: services this process started (kept so that they are reaped when they end, not warned of)
_spawned: list[subprocess.Popen[bytes]] = []


def start_service(timeout_s: float = CONNECT_TIMEOUT_S) -> ServiceInfo:
    """Start a service process (its own session, so a console's end does not end it)
    and return its address once it listens. Refuses when one is running already."""
    folder = run_dir()
    running = ServiceInfo.read(folder)
    if running is not None:
        raise LabError(
            f"a session service is running already (process {running.pid}): "
            f"mmme attach opens its console"
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmmelab.acquisition.service"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MMME_RUN_DIR": str(folder)},
    )
    _spawned[:] = [p for p in _spawned if p.poll() is None] + [proc]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = ServiceInfo.read(folder)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            raise LabError(f"the session service exited at start (code {proc.returncode})")
        time.sleep(0.05)
    proc.kill()
    raise LabError(f"the session service did not start within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmmelab.acquisition.service")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s engine-service %(levelname)s %(name)s: %(message)s",
    )
    folder = run_dir()
    if ServiceInfo.read(folder) is not None:
        print("a session service is running already", file=sys.stderr)
        return 2
    service = EngineService(folder)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: threading.Thread(target=service.terminate).start())
    return service.serve()


if __name__ == "__main__":
    # run the module's own copy, so the messages pickle as mmmelab.acquisition.service.*
    from mmmelab.acquisition.service import main as service_main

    sys.exit(service_main())
