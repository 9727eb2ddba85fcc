"""The desktop application: three windows on their screens, one controller, key routing.

Screens come from the lab config (``[screens]``). When a configured screen is
missing (a laptop, tests, a virtual display) the three windows open side by side
on the first screen; the console says so and the session records it.

Keys are routed application-wide, whichever window has the focus: the reminder
key and F2 go to the console; Space, digits, arrows and Enter go to the
participant's window, unless the experimenter is typing in a console field.
"""

from __future__ import annotations

import gc
import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType

from PyQt6.QtCore import QEvent, QObject, QRect, Qt
from PyQt6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PyQt6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QPlainTextEdit, QWidget

from mmmelab.acquisition.messages import ControllerState
from mmmelab.config import LabConfig, ScreensConfig
from mmmelab.errors import LabError
from mmmelab.gui.console import NOTE_KEY, ConsoleWindow
from mmmelab.gui.controller import EngineController
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
    """Builds and owns the console, the participant window and the reminder window."""

    def __init__(
        self,
        lab: LabConfig,
        protocol: Protocol,
        out_root: Path | None = None,
        run_checks: bool = True,
        participant_id: str = "",
        controller: EngineController | None = None,
    ) -> None:
        """``controller``: a console on the session service (else the engine runs here)."""
        super().__init__()
        set_realtime_switching()
        self.lab = lab
        self.controller = controller or EngineController(
            lab, protocol, out_root, run_checks=run_checks
        )
        self.reminder = ReminderWindow(self.controller, lab.reminder)
        self.stimulus = StimulusWindow(self.controller, lab.screens)
        self.console = ConsoleWindow(self.controller, self.reminder)
        self.console.pid.setText(participant_id)
        self.console.closed.connect(self.shutdown)
        self.console.follow_stimulus(self.stimulus.next_frame_in, self.stimulus.presented)
        self.console.display_test_requested.connect(
            lambda: self.stimulus.test_clip(self.controller.test_clip_path())
        )
        self.stimulus.display_checked.connect(self.console.display_checked)
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
        freeze_startup_objects()
        if self.layout_warning:  # shown already
            self.controller.fault("display", FaultKind.WARNING, self.layout_warning, log=False)

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:
        if event is None or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        if event.isAutoRepeat():
            return event.key() in (self.reminder_key, self.note_key)
        key = event.key()
        if key == self.reminder_key:
            self.console.press_reminder()
            return True
        if key == self.note_key:
            self.console.press_note()
            return True
        focus = QApplication.focusWidget()
        typing = isinstance(focus, TEXT_INPUTS) and focus.window() is self.console
        if key in PARTICIPANT_KEYS and not typing and obj is not self.stimulus:
            if isinstance(obj, QWidget) and obj.window() is not self.stimulus:
                self.stimulus.keyPressEvent(event)
                return True
        return False

    def shutdown(self) -> None:
        """After the console closed: stop playback, the controller (saving), the windows."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self.stimulus.shutdown()
        self.controller.close()
        self.stimulus.close()
        self.reminder.close()


def place_windows(
    cfg: ScreensConfig, console: QWidget, stimulus: QWidget, reminder: QWidget
) -> str:
    """Put each window on its configured screen; returns a warning when falling back."""
    screens = QGuiApplication.screens()
    wanted = (cfg.console, cfg.stimulus, cfg.reminder)
    if len(set(wanted)) == 3 and max(wanted) < len(screens):
        for window, index in zip((console, stimulus, reminder), wanted, strict=True):
            screen = screens[index]
            window.setGeometry(screen.geometry())
            window.winId()
            handle = window.windowHandle()
            if handle is not None:
                handle.setScreen(screen)
        console.showMaximized()
        stimulus.showFullScreen()
        reminder.showFullScreen()
        return ""
    area = screens[0].availableGeometry() if screens else QRect(0, 0, 1600, 900)
    x, y, w, h = area.x(), area.y(), area.width(), area.height()
    cw = int(w * 0.6)
    console.setGeometry(x, y, cw, h)
    stimulus.setGeometry(x + cw, y, w - cw, int(h * 0.6))
    reminder.setGeometry(x + cw, y + int(h * 0.6), w - cw, h - int(h * 0.6))
    for window in (console, stimulus, reminder):
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


def freeze_startup_objects() -> None:
    """Exempt everything built so far from the cyclic garbage collector.

    A full collection walks every object of the process (Qt wrappers, pyqtgraph
    items, the engine) and holds the GIL meanwhile: 50-120 ms here, which would
    drop clip frames. Once the session is set up (the "press Space" screen is up,
    no clip plays), one collection runs and the survivors are frozen, so later
    collections only look at what is new.
    """
    gc.collect()
    gc.freeze()


def set_realtime_switching() -> None:
    """Let the GUI thread get the GIL back within 1 ms (Python's default is 5 ms).

    Recorder threads share this interpreter; with the default interval a clip frame
    or the reminder could wait several switch intervals for the GIL.
    """
    sys.setswitchinterval(0.0005)


def run_gui(lab: LabConfig, protocol: Protocol, out_root: Path | None, participant_id: str) -> int:
    """Start the session service on ``lab``, open the console on it and run until the
    console is closed. Returns the exit code."""
    from mmmelab.acquisition.consolelink import start_service
    from mmmelab.acquisition.messages import Setup

    app = _application()
    controller = EngineController.attach(start_service(), Setup(lab, protocol, out_root))
    lab_app = LabApp(lab, protocol, participant_id=participant_id, controller=controller)
    lab_app.show()
    lab_app.connect_devices()
    app.exec()
    result = lab_app.controller.result
    return 0 if result is None or result.check.get("ok", True) else 1


def run_attach() -> int:
    """Open the console on the session service that is running (``mmme attach``)."""
    from mmmelab.acquisition.messages import ServiceInfo

    info = ServiceInfo.read()
    if info is None:
        raise LabError("no session service is running (mmme demo starts one)")
    app = _application()
    controller = EngineController.attach(info)
    lab_app = LabApp(controller.lab, controller.protocol, controller=controller)
    lab_app.show()
    lab_app.catch_up()
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
