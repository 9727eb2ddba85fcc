"""The participant's windows in a process of their own.

``python -m mmmelab.gui.participant`` opens the stimulus and reminder windows on
the running session service, joined as its participant client: the paradigm's
phases come in; Space, the ratings, clip onsets, frame logs and reminder changes
go out, one hop each to the engine. Nothing else runs in this process, so no
console repaint, plot or recorder can delay a clip frame.

The console reaches these windows directly, one hop over their own socket
(``participant.sock`` in the run folder, with ``participant.json`` saying where):
the reminder key, the participant's keys typed while the console has the focus,
the display check and its record, and the figures the GUI benchmark reads. The
process outlives its console (a console that attaches finds it again) and ends
with the session service.

:class:`ParticipantWindows` is the console's side.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import sys
import threading
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QEvent, QObject, Qt, pyqtSignal
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import QApplication

from mmmelab.acquisition.consolelink import start_listener
from mmmelab.acquisition.messages import Role, ServiceInfo, run_dir
from mmmelab.errors import LabError

logger = logging.getLogger(__name__)

NAME = "participant"  # participant.json, participant.sock in the run folder
START_TIMEOUT_S = 30.0
STATS_TIMEOUT_S = 10.0


# ------------------------------------------------------------ console <-> participant


@dataclass(frozen=True)
class ToggleReminder:
    t_key: float  # master clock, s: when the experimenter pressed the key


@dataclass(frozen=True)
class PressKey:
    key: int  # a Qt key typed in the other process's window that belongs here


@dataclass(frozen=True)
class PlayTestClip:
    path: Path | None


@dataclass(frozen=True)
class DisplayChecked:
    record: dict[str, Any]


@dataclass(frozen=True)
class StatsWanted:
    pass


@dataclass(frozen=True)
class Presentation:
    kind: int
    shown: int
    dropped: int
    repeated: int
    lateness_s: tuple[float, ...]  # each shown frame: displayed minus due


@dataclass(frozen=True)
class Stats:
    """What the participant's windows showed (the GUI benchmark's figures)."""

    presentations: tuple[Presentation, ...]
    reminder_changes: tuple[tuple[bool, float, float, str], ...]


class _Inbox(QObject):
    """Messages from a reader thread, delivered on the GUI thread."""

    got = pyqtSignal(object)


def _quiet_close(conn: Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


# ------------------------------------------------------------ the participant's process


class ParticipantProcess(QObject):
    """The two windows on the session, and the socket the console reaches them on."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        from mmmelab.gui.app import key_of, place_windows
        from mmmelab.gui.console import NOTE_KEY
        from mmmelab.gui.controller import EngineController
        from mmmelab.gui.reminder import ReminderWindow
        from mmmelab.gui.stimulus import StimulusWindow

        info = ServiceInfo.read(folder)
        if info is None:
            raise LabError("no session service is running")
        self.controller = EngineController.attach(info, role=Role.PARTICIPANT)
        lab = self.controller.lab
        self.stimulus = StimulusWindow(self.controller, lab.screens)
        self.reminder = ReminderWindow(self.controller, lab.reminder)
        self.console_keys = {key_of(lab.reminder.key), key_of(NOTE_KEY)}
        self.folder = folder
        self.key = secrets.token_bytes(32)
        self.address = str(folder / f"{NAME}.sock")
        if os.path.exists(self.address):
            os.unlink(self.address)
        self.listener = Listener(self.address, family="AF_UNIX", authkey=self.key)
        self.console: Connection | None = None
        self._send_lock = threading.Lock()
        self.inbox = _Inbox()
        self.inbox.got.connect(self._handle)
        self.stimulus.display_checked.connect(lambda r: self._send(DisplayChecked(r)))
        self.controller.failed.connect(self._service_failed)
        if self.controller.phase is not None:  # joined mid-session: show where it is
            self.stimulus.on_phase(self.controller.phase)
        place_windows(lab.screens, None, self.stimulus, self.reminder)
        app = QApplication.instance()
        assert app is not None
        app.installEventFilter(self)
        ServiceInfo(self.address, self.key, os.getpid()).write(folder, NAME)
        threading.Thread(target=self._accept, name="participant-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except (AuthenticationError, EOFError) as exc:
                logger.warning("participant: a console could not connect: %s", exc)
                continue
            except OSError:
                return  # closed at the end
            old, self.console = self.console, conn
            _quiet_close(old)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                self.inbox.got.emit(conn.recv())
            except (EOFError, OSError):
                return  # the console went away; the windows go on with the session

    def _send(self, message: Any) -> None:
        conn = self.console
        if conn is None:
            return
        try:
            with self._send_lock:
                conn.send(message)
        except (OSError, ValueError):
            pass  # the console is gone; a new one will connect

    def _handle(self, message: Any) -> None:
        if isinstance(message, ToggleReminder):
            self.reminder.toggle(message.t_key)
        elif isinstance(message, PressKey):
            event = QKeyEvent(QEvent.Type.KeyPress, message.key, Qt.KeyboardModifier.NoModifier)
            self.stimulus.keyPressEvent(event)
        elif isinstance(message, PlayTestClip):
            self.stimulus.test_clip(message.path)
        elif isinstance(message, StatsWanted):
            self._send(self.stats())

    def stats(self) -> Stats:
        shown = [s for s in self.stimulus.schedules if s.started]
        return Stats(
            tuple(
                Presentation(int(s.kind), s.shown, s.dropped, s.repeated, tuple(s.lateness_s))
                for s in shown
            ),  # fmt: skip
            tuple(self.reminder.changes),
        )

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:
        """The experimenter's keys go to the console; the participant's keys typed in
        the reminder window go to the stimulus window."""
        if event is None or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        if event.isAutoRepeat():
            return event.key() in self.console_keys
        if event.key() in self.console_keys:
            self._send(PressKey(event.key()))
            return True
        if obj is self.reminder:
            self.stimulus.keyPressEvent(event)
            return True
        return False

    def _service_failed(self, message: str) -> None:
        if self.controller.link.lost:  # the session service ended (or died): so do we
            logger.info("participant: %s", message)
            app = QApplication.instance()
            if app is not None:
                app.quit()

    def close(self) -> None:
        self.stimulus.shutdown()
        self.stimulus.close()
        self.reminder.close()
        self.listener.close()
        _quiet_close(self.console)
        for path in (self.folder / f"{NAME}.json", Path(self.address)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s participant %(levelname)s %(name)s: %(message)s",
    )
    app = QApplication(sys.argv[:1])
    try:
        process = ParticipantProcess(run_dir())
    except LabError as exc:
        print(f"participant windows: {exc}", file=sys.stderr)  # noqa: T201 - main
        return 2
    try:
        app.exec()
    finally:
        process.close()
    return 0


# ------------------------------------------------------------ the console's side


class ParticipantWindows(QObject):
    """The console's handle on the participant's process: what the in-process windows
    offered the console, over the process's socket."""

    display_checked = pyqtSignal(object)  # the display check's record (dict)
    key_pressed = pyqtSignal(int)  # an experimenter's key typed in a participant window

    def __init__(self, info: ServiceInfo) -> None:
        super().__init__()
        self.info = info
        self.conn = Client(info.address, family="AF_UNIX", authkey=info.key)
        self._stats: queue.Queue[Stats] = queue.Queue()
        self._inbox = _Inbox()
        self._inbox.got.connect(self._handle)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="participant-link", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, timeout_s: float = START_TIMEOUT_S) -> ParticipantWindows:
        """Reach the participant's windows of the running session, starting their
        process when there is none."""
        folder = run_dir()
        info = ServiceInfo.read(folder, NAME)
        if info is not None:
            return cls(info)
        what = "the participant's windows"
        return cls(start_listener("mmmelab.gui.participant", NAME, what, timeout_s))

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            if isinstance(message, Stats):
                self._stats.put(message)
            else:
                self._inbox.got.emit(message)

    def _handle(self, message: Any) -> None:
        if isinstance(message, DisplayChecked):
            self.display_checked.emit(message.record)
        elif isinstance(message, PressKey):
            self.key_pressed.emit(message.key)

    def _send(self, message: Any) -> None:
        try:
            with self._lock:
                self.conn.send(message)
        except (OSError, ValueError) as exc:
            logger.error("the participant's windows do not answer: %s", exc)

    def toggle(self, t_key: float) -> None:
        """The reminder key (as :meth:`ReminderWindow.toggle`)."""
        self._send(ToggleReminder(t_key))

    def test_clip(self, path: Path | None) -> None:
        self._send(PlayTestClip(path))

    def press(self, key: int) -> None:
        self._send(PressKey(key))

    def stats(self, timeout_s: float = STATS_TIMEOUT_S) -> Stats | None:
        self._send(StatsWanted())
        try:
            return self._stats.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Let go of the windows (they end with the session service)."""
        _quiet_close(self.conn)
        self._thread.join(2.0)

    @property
    def pid(self) -> int:
        return self.info.pid


if __name__ == "__main__":
    from mmmelab.gui.participant import main as participant_main  # the module's own classes

    sys.exit(participant_main())
