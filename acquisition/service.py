"""The engine as a service: the session runs in a process of its own, the console
attaches to it.

``python -m mmmelab.acquisition.service`` runs the engine, its recorders, the
trigger bus and the frame writers (the simulated lab's devices too) around one
:class:`~mmmelab.acquisition.control.EngineRunner`. A console talks to it over a
``multiprocessing.connection`` on a Unix socket with an authentication key: it
joins (:class:`Join`, with the session's :class:`Setup` for a new service), then
sends :class:`Put` (commands, done in order on the
control thread) and :class:`Call` (logs and the face box, done at once); it
receives :class:`Hello` (everything a console needs to show the session as it is
now) and then every :data:`~mmmelab.acquisition.control.Event`. Frames and
samples never cross as messages: the preview and the live signal windows are in
shared memory, and the events say where.

The console may die without harm: the recording goes on, and a console that
attaches (``mmme attach``) takes over where it was. With no console for the lab's
``[screens] console_lost_stop_s`` (120 s unless set) the service stops a recording
cleanly (saved, status aborted, the reason in the faults), or closes the devices
before or after one,
and exits. If the service dies, the console's connection ends and it says so at
once; the session on disk is readable (every file is journalled as it goes).

Where it is: the run folder (``MMME_RUN_DIR``, else ``$XDG_RUNTIME_DIR/mmme-lab``,
else ``/tmp/mmme-lab-<uid>``; mode 0700) holds ``engine.sock`` and ``engine.json``
(process id, key; mode 0600). One service per user and machine.

Two clients may be joined at a time, one per :class:`Role`: the console, and the
participant's windows when they run in a process of their own. Each gets every
event. Threads in the service: the main thread accepts clients; one reader per
client takes its messages; one sender per client writes events from a queue, so a
slow or frozen client never holds up the control thread; a watchdog applies the
orphan rule (to consoles).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from mmmelab.acquisition.control import EngineRunner
from mmmelab.acquisition.messages import (
    Bye,
    Call,
    ControllerState,
    Detach,
    Event,
    Hello,
    Join,
    Put,
    Role,
    ServiceInfo,
    Setup,
    run_dir,
)
from mmmelab.errors import LabError
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 30.0  # a service that was given no session this long exits
SEND_QUEUE_MAX = 2000  # events queued for a console that does not read: it is dropped
WATCH_S = 0.05  # how soon a closed runner ends the service (and the orphan rule is checked)
CALLS = frozenset({"log", "log_display", "fault", "record_display_check", "set_face_box"})


# ------------------------------------------------------------ the service


@dataclass
class _Client:
    role: Role
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
        self.clients: dict[Role, _Client] = {}
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
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True).start()

    def _serve_client(self, conn: Connection) -> None:
        try:
            join = conn.recv() if conn.poll(SETUP_TIMEOUT_S) else None
        except (EOFError, OSError):
            join = None
        if not isinstance(join, Join):
            conn.close()
            return
        if self.runner is None:
            if join.setup is None or not self._start_runner(join.setup):
                conn.send(Bye(self.error or "no session was given"))
                conn.close()
                self.ended.set()
                return
        client = _Client(Role(join.role), conn)
        with self.lock:
            old = self.clients.get(client.role)
            self.clients[client.role] = client
            if old is not None:
                old.outbox.put(Bye(f"another {client.role.value} attached"))
            client.outbox.put(self._hello())
        threading.Thread(target=self._send, args=(client,), daemon=True).start()
        logger.info("service: a %s attached", client.role.value)
        self._read(client)

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

    def _read(self, client: _Client) -> None:
        runner = self.runner
        assert runner is not None
        left = "lost"
        try:
            while not client.gone.is_set():
                message = client.conn.recv()
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
        self._drop(client, left)

    def _send(self, client: _Client) -> None:
        while True:
            message = client.outbox.get()
            try:
                client.conn.send(message)
            except (OSError, ValueError):
                self._drop(client, "lost")
                return
            if isinstance(message, Bye):
                client.gone.set()
                client.conn.close()
                return

    def _emit(self, event: Event) -> None:
        """From the control thread (and the preview publisher): to every client's outbox."""
        with self.lock:
            clients = list(self.clients.values())
        for client in clients:
            if client.outbox.qsize() > SEND_QUEUE_MAX:
                self._drop(client, "not reading")
            else:
                client.outbox.put(event)

    def _drop(self, client: _Client, how: str) -> None:
        with self.lock:
            if self.clients.get(client.role) is not client:
                return
            del self.clients[client.role]
            if client.role is Role.CONSOLE:
                self.alone_since = time.monotonic()
        client.gone.set()
        try:
            client.conn.close()
        except OSError:
            pass
        runner = self.runner
        if how == "detached":
            logger.info("service: the %s detached", client.role.value)
        elif runner is not None and runner.state is ControllerState.RECORDING:
            if client.role is Role.CONSOLE:
                detail = f"the console was {how}; recording goes on (mmme attach reopens it)"
            else:
                detail = f"the participant's windows were {how}"
            runner.fault(client.role.value, FaultKind.WARNING, detail)

    # ---------------------------------------------------------------- the orphan rule

    def _watchdog(self) -> None:
        while not self.ended.wait(WATCH_S):
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
                console = Role.CONSOLE in self.clients
                alone = None if console else time.monotonic() - self.alone_since
            limit = self.orphan_limit_s()
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

    def orphan_limit_s(self) -> float:
        """How long a recording may go on with no console (the lab's setting, unless
        the session's set-up gives its own)."""
        setup = self.setup
        if setup is None:
            return SETUP_TIMEOUT_S
        if setup.orphan_timeout_s is not None:
            return setup.orphan_timeout_s
        return setup.lab.screens.console_lost_stop_s

    def _close_runner(self) -> None:
        if self.runner is not None:
            self.runner.close(timeout_s=60.0)

    def _end(self) -> None:
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            client.outbox.put(Bye(self.error or "the session service ended"))
        for client in clients:
            client.gone.wait(2.0)
        self.listener.close()
        for path in (self.folder / "engine.json", Path(self.address)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    """``python -m mmmelab.acquisition.service``: run the session service until its session
    ends (exit code 2 when one is running already)."""
    parser = argparse.ArgumentParser(prog="python -m mmmelab.acquisition.service")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s engine-service %(levelname)s %(name)s: %(message)s",
    )
    folder = run_dir()
    if ServiceInfo.read(folder) is not None:
        print("a session service is running already", file=sys.stderr)  # noqa: T201 - main
        return 2
    service = EngineService(folder)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: threading.Thread(target=service.terminate).start())
    return service.serve()


if __name__ == "__main__":
    # run the module's own copy, so the messages pickle as mmmelab.acquisition.service.*
    from mmmelab.acquisition.service import main as service_main

    sys.exit(service_main())
