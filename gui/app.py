"""The desktop application: three windows on their screens, one controller, key routing.

Screens come from the lab config (``[screens]``). When a configured screen is
missing (a laptop, tests, a virtual display) the three windows open side by side
on the first screen; the console says so and the session records it.

Keys are routed application-wide, whichever window has the focus: the reminder
key and F2 go to the console; Space, digits, arrows and Enter go to the
participant's window, unless the experimenter is typing in a console field.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PyQt6.QtCore import QEvent, QObject, QRect, Qt
from PyQt6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PyQt6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QPlainTextEdit, QWidget

from mmmelab.acquisition.messages import ControllerState
from mmmelab.config import LabConfig, ScreensConfig
from mmmelab.errors import LabError
from mmmelab.gui.console import NOTE_KEY, ConsoleWindow, Reminder
from mmmelab.gui.controller import EngineController
from mmmelab.gui.participant import ParticipantWindows
from mmmelab.gui.reminder import ReminderWindow
from mmmelab.gui.stimulus import StimulusWindow
from mmmelab.protocol import Protocol
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

PARTICIPANT_KEYS = {
    Qt.Key.Key_Space,
    Qt.Key.Key_Return,
    Qt.Key.Key_Enter,
    Qt.Key.Key_Up,
    Qt.Key.Key_Down,
    Qt.Key.Key_Backspace,
    *[Qt.Key(Qt.Key.Key_0 + i) for i in range(10)],
}
TEXT_INPUTS = (QLineEdit, QPlainTextEdit, QAbstractSpinBox)


def key_of(name: str) -> int:
    """The Qt key code of a key name such as "F1" or "R"."""
    seq = QKeySequence(name)
    return seq[0].key().value if seq.count() else 0


class LabApp(QObject):
    """Builds and owns the console and the participant's windows (the stimulus and the
    reminder window): here, or in their own process (``participant``)."""

    def __init__(
        self,
        lab: LabConfig,
        protocol: Protocol,
        out_root: Path | None = None,
        run_checks: bool = True,
        participant_id: str = "",
        controller: EngineController | None = None,
        participant: ParticipantWindows | None = None,
    ) -> None:
        """``controller``: a console on the session service (else the engine runs here);
        ``participant``: the participant's windows in their own process (else here)."""
        super().__init__()
        self.lab = lab
        self.controller = controller or EngineController(
            lab, protocol, out_root, run_checks=run_checks
        )
        self.participant = participant
        self.stimulus: StimulusWindow | None = None
        self.reminder: ReminderWindow | None = None
        reminder: Reminder
        if participant is None:
            self.reminder = reminder = ReminderWindow(self.controller, lab.reminder)
            self.stimulus = StimulusWindow(self.controller, lab.screens)
        else:
            reminder = participant
        self.console = ConsoleWindow(self.controller, reminder)
        self.console.pid.setText(participant_id)
        self.console.closed.connect(self.shutdown)
        if self.stimulus is not None:
            stimulus = self.stimulus
            self.console.display_test_requested.connect(
                lambda: stimulus.test_clip(self.controller.test_clip_path())
            )
            stimulus.display_checked.connect(self.console.display_checked)
        else:
            assert participant is not None
            self.console.display_test_requested.connect(
                lambda: participant.test_clip(self.controller.test_clip_path())
            )
            participant.display_checked.connect(self.console.display_checked)
            participant.key_pressed.connect(self._console_key)
        self.layout_warning = ""
        self.reminder_key = key_of(lab.reminder.key)
        self.note_key = key_of(NOTE_KEY)
        self.controller.state_changed.connect(self._state)
        app = QApplication.instance()
        assert app is not None
        app.installEventFilter(self)
        self._down = False

    def show(self) -> None:
        self.layout_warning = place_windows(
            self.lab.screens, self.console, self.stimulus, self.reminder
        )
        if self.layout_warning:
            logger.warning("%s", self.layout_warning)

    def connect_devices(self) -> None:
        self.controller.connect_devices()

    def catch_up(self) -> None:
        """A console attached to a running session: show the state and phase it is in."""
        controller = self.controller
        if controller.state is ControllerState.IDLE:
            controller.connect_devices()
            return
        controller.state_changed.emit(controller.state)
        if controller.phase is not None:
            controller.phase_changed.emit(controller.phase)

    def _state(self, state: ControllerState) -> None:
        if state is not ControllerState.RECORDING:
            return
        if self.layout_warning:  # shown already
            self.controller.fault("display", FaultKind.WARNING, self.layout_warning, log=False)

    def _console_key(self, key: int) -> None:
        """An experimenter's key typed in a participant window (another process)."""
        if key == self.reminder_key:
            self.console.press_reminder()
        elif key == self.note_key:
            self.console.press_note()

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:
        if event is None or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        if event.isAutoRepeat():
            return event.key() in (self.reminder_key, self.note_key)
        key = event.key()
        if key in (self.reminder_key, self.note_key):
            self._console_key(key)
            return True
        focus = QApplication.focusWidget()
        typing = isinstance(focus, TEXT_INPUTS) and focus.window() is self.console
        if key not in PARTICIPANT_KEYS or typing or not isinstance(obj, QWidget):
            return False
        if self.participant is not None:  # the participant's keys go to their process
            if obj.window() is self.console:
                self.participant.press(key)
                return True
            return False
        stimulus = self.stimulus
        assert stimulus is not None
        if obj is not stimulus and obj.window() is not stimulus:
            stimulus.keyPressEvent(event)
            return True
        return False

    def shutdown(self) -> None:
        """After the console closed: stop playback, the controller (saving), the windows."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        if self.stimulus is not None:
            self.stimulus.shutdown()
        self.controller.close()
        for window in (self.stimulus, self.reminder):
            if window is not None:
                window.close()
        if self.participant is not None:
            self.participant.close()


def place_windows(
    cfg: ScreensConfig,
    console: QWidget | None,
    stimulus: QWidget | None,
    reminder: QWidget | None,
) -> str:
    """Put each window on its configured screen; returns a warning when falling back.

    A window given as None lives in another process, which places it the same way."""
    screens = QGuiApplication.screens()
    wanted = (cfg.console, cfg.stimulus, cfg.reminder)
    windows = (console, stimulus, reminder)
    if len(set(wanted)) == 3 and max(wanted) < len(screens):
        for window, index in zip(windows, wanted, strict=True):
            if window is None:
                continue
            screen = screens[index]
            window.setGeometry(screen.geometry())
            window.winId()
            handle = window.windowHandle()
            if handle is not None:
                handle.setScreen(screen)
        if console is not None:
            console.showMaximized()
        for window in (stimulus, reminder):
            if window is not None:
                window.showFullScreen()
        return ""
    area = screens[0].availableGeometry() if screens else QRect(0, 0, 1600, 900)
    x, y, w, h = area.x(), area.y(), area.width(), area.height()
    cw = int(w * 0.6)
    places = (
        (x, y, cw, h),
        (x + cw, y, w - cw, int(h * 0.6)),
        (x + cw, y + int(h * 0.6), w - cw, h - int(h * 0.6)),
    )
    for window, place in zip(windows, places, strict=True):
        if window is not None:
            window.setGeometry(*place)
            window.show()
    return (
        f"screens {wanted} (console, stimulus, reminder) are not all present "
        f"({len(screens)} screen(s)): the three windows are side by side on the first screen"
    )


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """An error in a GUI slot is logged and shown; recording goes on (no abort)."""
    logger.error(
        "GUI error (recording continues): %s", "".join(traceback.format_exception(kind, value, tb))
    )


def run_gui(lab: LabConfig, protocol: Protocol, out_root: Path | None, participant_id: str) -> int:
    """Start the session service on ``lab``, open the console on it and run until the
    console is closed. Returns the exit code."""
    from mmmelab.acquisition.consolelink import start_service
    from mmmelab.acquisition.messages import Setup

    app = _application()
    controller = EngineController.attach(start_service(), Setup(lab, protocol, out_root))
    lab_app = LabApp(lab, protocol, participant_id=participant_id, controller=controller,
                     participant=ParticipantWindows.open())  # fmt: skip
    return _run_console(app, lab_app, lab_app.connect_devices)


def run_attach() -> int:
    """Open the console on the session service that is running (``mmme attach``)."""
    from mmmelab.acquisition.messages import ServiceInfo

    info = ServiceInfo.read()
    if info is None:
        raise LabError("no session service is running (mmme demo starts one)")
    app = _application()
    controller = EngineController.attach(info)
    participant = ParticipantWindows.open()
    lab_app = LabApp(controller.lab, controller.protocol, controller=controller,
                     participant=participant)  # fmt: skip
    return _run_console(app, lab_app, lab_app.catch_up)


def _run_console(app: QApplication, lab_app: LabApp, first: Callable[[], None]) -> int:
    """Show the windows, do ``first``, run until the console is closed; the exit code
    (1 when the session's check is not ok)."""
    lab_app.show()
    first()
    app.exec()
    result = lab_app.controller.result
    return 0 if result is None or result.check.get("ok", True) else 1


def _application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    # the event log panel shows INFO and up; the terminal keeps what it had (warnings)
    for handler in logging.getLogger().handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    mmme_logger = logging.getLogger("mmmelab")
    if mmme_logger.getEffectiveLevel() > logging.INFO:
        mmme_logger.setLevel(logging.INFO)
    sys.excepthook = _log_uncaught
    return app
