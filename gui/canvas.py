"""What the participant's screen paints: a video frame (scaled, aspect kept) or a
text on black (:class:`Canvas`), and the photodiode patch in a corner that flips at
every onset (:class:`PhotodiodePatch`)."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRect, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PyQt6.QtWidgets import QWidget

TEXTS = {
    "welcome": (
        "Welcome",
        "You will watch short video clips with sound.\n"
        "Please keep a neutral face and sit still while they play.\n"
        "After each clip, say how it made you feel.\n\n"
        "Press Space to start the first clip.",
    ),
    "next": ("Ready?", "Press Space to start the next clip."),
    "pause": ("Short break", "Please wait; the experimenter will continue in a moment."),
    "done": ("Thank you!", "The session is over."),
    "aborted": ("Thank you", "The session has ended."),
    "wait": ("Please wait", "The recording is being prepared."),
}


class Canvas(QWidget):
    """Black screen showing either a video frame (scaled, aspect kept) or a text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None  # keeps the QImage's memory alive
        self._text: tuple[str, str] = TEXTS["wait"]

    def set_image(self, image: np.ndarray) -> None:
        """A frame: H x W x 3 RGB, or x 4 BGRA (already the size it is shown at)."""
        self._array = np.ascontiguousarray(image)
        h, w, depth = self._array.shape
        fmt = QImage.Format.Format_RGB32 if depth == 4 else QImage.Format.Format_RGB888
        # wraps the array's memory (no copy); the stubs do not list memoryview
        self._image = QImage(
            self._array.data,  # type: ignore[call-overload]
            w,
            h,
            depth * w,
            fmt,
        )

    def set_text(self, title: str, body: str) -> None:
        self._image = self._array = None
        self._text = (title, body)
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None:
            w, h = self._image.width(), self._image.height()
            scale = min(self.width() / w, self.height() / h)
            tw, th = int(w * scale), int(h * scale)
            target = QRect((self.width() - tw) // 2, (self.height() - th) // 2, tw, th)
            if abs(tw - w) <= 2 and abs(th - h) <= 2:  # fitted by the decoder: a plain copy
                p.drawImage(target.topLeft(), self._image)
            else:
                p.drawImage(target, self._image)
        else:
            title, body = self._text
            p.setPen(QColor(235, 235, 235))
            font = QFont()
            font.setPixelSize(max(18, self.height() // 14))
            font.setBold(True)
            p.setFont(font)
            top = QRect(0, 0, self.width(), self.height() // 2 - 10)
            p.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, title)
            font.setPixelSize(max(14, self.height() // 28))
            font.setBold(False)
            p.setFont(font)
            rest = QRect(40, self.height() // 2 + 10, self.width() - 80, self.height() // 2 - 20)
            flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
            p.drawText(rest, int(flags) | Qt.TextFlag.TextWordWrap.value, body)
        p.end()


class PhotodiodePatch(QWidget):
    """A square in a corner that flips between black and white at every onset."""

    def __init__(self, parent: QWidget, size_px: int) -> None:
        super().__init__(parent)
        self.white = False
        self.flips = 0
        self.setFixedSize(size_px, size_px)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def flip(self) -> None:
        self.white = not self.white
        self.flips += 1
        self.repaint()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(255, 255, 255) if self.white else QColor(0, 0, 0))
        p.end()
