"""The CMRR reminder display (auxiliary screen beside the stimulus screen).

The experimenter's key shows the prompt; it hides after ``hide_after_s`` or on a
second press. Each change is painted at once and its displayed time taken right
after the paint; that time goes out as the REMINDER_ON/OFF marker and, with the
key-press time, into the session's ``display`` log.
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import QRect, Qt, QTimer
from PyQt6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PyQt6.QtWidgets import QWidget

from mmmelab.config import ReminderConfig
from mmmelab.gui.controller import EngineController
from mmmelab.sync.codes import EventCode

logger = logging.getLogger(__name__)


class ReminderWindow(QWidget):
    """Dark when idle; the symbol and text on amber when the reminder is on."""

    def __init__(self, controller: EngineController, config: ReminderConfig) -> None:
        super().__init__()
        self.setWindowTitle("mmme-lab - reminder")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.controller = controller
        self.config = config
        self.on = False
        # every change: (on, input time, displayed time, why: "key" or "timeout")
        self.changes: list[tuple[bool, float, float, str]] = []
        self._hide = QTimer(self)
        self._hide.setSingleShot(True)
        self._hide.timeout.connect(lambda: self.set_on(False, self.controller.clock(), "timeout"))

    def toggle(self, t_key: float) -> None:
        """The experimenter's reminder key: show, or hide if it is showing."""
        self.set_on(not self.on, t_key, "key")

    def set_on(self, on: bool, t_input: float, why: str) -> None:
        if on == self.on:
            return
        self.on = on
        self.repaint()
        t_display = self.controller.clock()
        code = EventCode.REMINDER_ON if on else EventCode.REMINDER_OFF
        self.controller.remind(on, t_display, why)
        self.controller.log_display(code, t_input, t_display, why)
        self.changes.append((on, t_input, t_display, why))
        if on:
            if self.config.hide_after_s > 0:
                self._hide.start(int(self.config.hide_after_s * 1000))
        else:
            self._hide.stop()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        if not self.on:
            p.fillRect(self.rect(), QColor(10, 10, 10))
            p.end()
            return
        p.fillRect(self.rect(), QColor(255, 176, 0))
        p.setPen(QColor(20, 20, 20))
        font = QFont()
        font.setPixelSize(max(24, self.height() // 3))
        p.setFont(font)
        top = QRect(0, 0, self.width(), self.height() * 3 // 5)
        p.drawText(top, Qt.AlignmentFlag.AlignCenter, self.config.symbol)
        font.setPixelSize(max(14, self.height() // 10))
        font.setBold(True)
        p.setFont(font)
        bottom = QRect(10, self.height() * 3 // 5, self.width() - 20, self.height() * 2 // 5)
        flags = int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        p.drawText(bottom, flags | Qt.TextFlag.TextWordWrap.value, self.config.text)
        p.end()
