"""The self-report screen: emotion category, valence 1-9, arousal 1-9, within a time limit.

Answerable by mouse (click the buttons) or keyboard: digits choose in the active
row (1-7 for the emotion, 1-9 for valence and arousal) and move to the next row,
Up/Down change the row, Enter submits once all three are chosen. The remaining
time is always visible; when it runs out the paradigm records a missed answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mmmelab.acquisition.paradigm import Rating
from mmmelab.protocol import Emotion

ROWS = ("emotion", "valence", "arousal")
SCALE_ENDS = {
    "valence": ("very unpleasant", "very pleasant"),
    "arousal": ("very calm", "very excited"),
}
STYLE = """
RatingPanel { background: #202020; }
QWidget { color: #f0f0f0; font-size: 20px; }
QLabel { background: transparent; }
QPushButton { background: #3a3a3a; border: 2px solid #555; border-radius: 6px;
              padding: 8px; min-width: 48px; }
QPushButton:checked { background: #2f7ed8; border-color: #9cc7ff; }
QPushButton:disabled { color: #777; }
QLabel[row="active"] { color: #ffd54f; font-weight: bold; }
QProgressBar { border: 1px solid #555; height: 12px; text-align: center; }
QProgressBar::chunk { background: #2f7ed8; }
"""


class RatingPanel(QWidget):
    """Emits ``submitted(Rating)`` once per showing."""

    submitted = pyqtSignal(object)

    def __init__(self, clock: Callable[[], float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(STYLE)
        self._clock = clock
        self.deadline = math.nan
        self.limit_s = 25.0
        self.active = 0
        self.groups: dict[str, QButtonGroup] = {}
        self.labels: dict[str, QLabel] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(60, 40, 60, 40)
        title = QLabel("How did the clip make you feel?")
        title.setStyleSheet("font-size: 28px; font-weight: bold;")
        outer.addWidget(title, alignment=Qt.AlignmentFlag.AlignHCenter)
        grid = QGridLayout()
        outer.addLayout(grid)
        emotions = [e.value for e in Emotion]
        for row, name in enumerate(ROWS):
            label = QLabel(name.capitalize())
            self.labels[name] = label
            grid.addWidget(label, 2 * row, 0)
            group = QButtonGroup(self)
            group.setExclusive(True)
            self.groups[name] = group
            line = QGridLayout()
            values = emotions if name == "emotion" else [str(v) for v in range(1, 10)]
            per_row = 4 if name == "emotion" else 9  # emotion names need room: two rows
            for i, text in enumerate(values):
                button = QPushButton(f"{i + 1}  {text}" if name == "emotion" else text)
                button.setCheckable(True)
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                group.addButton(button, i + 1)
                line.addWidget(button, i // per_row, i % per_row)
            group.idClicked.connect(lambda _id, r=row: self._chosen(r))
            grid.addLayout(line, 2 * row, 1)
            if name in SCALE_ENDS:
                lo, hi = SCALE_ENDS[name]
                ends = QHBoxLayout()
                for text, align in (
                    (lo, Qt.AlignmentFlag.AlignLeft),
                    (hi, Qt.AlignmentFlag.AlignRight),
                ):
                    end = QLabel(text)
                    end.setStyleSheet("font-size: 14px; color: #aaa;")
                    ends.addWidget(end, alignment=align)
                grid.addLayout(ends, 2 * row + 1, 1)
        self.submit = QPushButton("Submit (Enter)")
        self.submit.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.submit.clicked.connect(self._submit)
        outer.addWidget(self.submit, alignment=Qt.AlignmentFlag.AlignHCenter)
        self.remaining = QLabel()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        outer.addWidget(self.remaining, alignment=Qt.AlignmentFlag.AlignHCenter)
        outer.addWidget(self.bar)
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._countdown)
        self._done = True

    def begin(self, deadline: float, limit_s: float) -> None:
        """Show a fresh form that closes at ``deadline`` (master clock)."""
        self.deadline, self.limit_s = deadline, limit_s
        for group in self.groups.values():
            group.setExclusive(False)
            for button in group.buttons():
                button.setChecked(False)
                button.setEnabled(True)
            group.setExclusive(True)
        self._done = False
        self._activate(0)
        self._countdown()
        self._timer.start()

    def end(self) -> None:
        self._done = True
        self._timer.stop()

    def value(self, name: str) -> int:
        return self.groups[name].checkedId()

    def handle_key(self, key: int) -> bool:
        """Keyboard answer; returns True when the key was used."""
        if self._done:
            return False
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9:
            number = key - Qt.Key.Key_0
            name = ROWS[self.active]
            if name == "emotion" and number > len(Emotion):
                return False
            button = self.groups[name].button(number)
            if button is None:
                return False
            button.setChecked(True)
            self._chosen(self.active)
            return True
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Backspace):
            self._activate(max(0, self.active - 1))
            return True
        if key == Qt.Key.Key_Down:
            self._activate(min(len(ROWS) - 1, self.active + 1))
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._submit()
            return True
        return False

    def _chosen(self, row: int) -> None:
        self._activate(min(row + 1, len(ROWS) - 1))
        self.submit.setEnabled(all(self.value(n) > 0 for n in ROWS))

    def _activate(self, row: int) -> None:
        self.active = row
        for i, name in enumerate(ROWS):
            self.labels[name].setProperty("row", "active" if i == row else "")
            style = self.labels[name].style()
            if style is not None:  # re-read the stylesheet for the changed property
                style.polish(self.labels[name])
        self.submit.setEnabled(all(self.value(n) > 0 for n in ROWS))

    def _countdown(self) -> None:
        left = max(0.0, self.deadline - self._clock())
        self.remaining.setText(f"{math.ceil(left):.0f} s left")
        self.bar.setRange(0, int(self.limit_s * 10))
        self.bar.setValue(int(left * 10))

    def _submit(self) -> None:
        if self._done or not all(self.value(n) > 0 for n in ROWS):
            return
        emotion = list(Emotion)[self.value("emotion") - 1]
        self.end()
        self.submitted.emit(Rating(emotion, self.value("valence"), self.value("arousal")))
