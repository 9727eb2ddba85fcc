"""The coding window's side: the mark in progress (its key frames, the rule's kind
and an override with its reason), the labels (action units typed or picked, the
emotion, notes), go-to, the buttons, the coder's event list and the status line.
The widgets call the window's slots (``owner``); the window reads the widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mmmelab.analysis.annotations.coding import EMOTIONS, KINDS, PICKER_AUS

if TYPE_CHECKING:
    from mmmelab.gui.annotate import CodingWindow


class Field(QLineEdit):
    """A text field that keeps its Enter: QLineEdit passes Return on to its parent (for
    dialogs' default buttons), which here would save the event half-typed."""

    def keyPressEvent(self, ev: QKeyEvent | None) -> None:
        super().keyPressEvent(ev)
        if ev is not None and ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            ev.accept()


class SidePanel(QWidget):
    """See the module doc."""

    def __init__(self, owner: CodingWindow) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        self.keyframes = QLabel()
        self.keyframes.setStyleSheet("font-family: monospace; font-size: 13px")
        lay.addWidget(self.keyframes)
        self.kind_label = QLabel()
        lay.addWidget(self.kind_label)
        row = QHBoxLayout()
        self.kind_box = QComboBox()
        self.kind_box.addItems(["kind by the rule", *KINDS])
        self.kind_box.activated.connect(lambda _i: owner._override())
        self.reason = Field()
        self.reason.setPlaceholderText("reason for the override")
        self.reason.editingFinished.connect(owner._override)
        row.addWidget(self.kind_box)
        row.addWidget(self.reason, 1)
        lay.addLayout(row)
        lay.addWidget(QLabel("Action units (FACS: L12+6B, 4(B/C))"))
        self.aus = Field()
        self.aus.editingFinished.connect(owner._aus_typed)
        self.aus.returnPressed.connect(owner._aus_entered)
        lay.addWidget(self.aus)
        pick = QHBoxLayout()
        self.side_box = QComboBox()
        self.side_box.addItems(["both sides", "L", "R"])
        self.intensity_box = QComboBox()
        self.intensity_box.addItems(["no intensity", "A", "B", "C", "D", "E"])
        pick.addWidget(self.side_box)
        pick.addWidget(self.intensity_box)
        lay.addLayout(pick)
        grid = QGridLayout()
        self.au_buttons: dict[str, QPushButton] = {}
        for i, au in enumerate(PICKER_AUS):
            b = QPushButton(str(au))
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setFixedWidth(46)
            b.clicked.connect(lambda _c=False, au=au: owner.pick_au(str(au)))
            grid.addWidget(b, i // 6, i % 6)
            self.au_buttons[str(au)] = b
        lay.addLayout(grid)
        self.emotion = QComboBox()
        self.emotion.addItems(list(EMOTIONS))
        self.emotion.activated.connect(lambda _i: owner._labels(emotion=self.emotion.currentText()))
        lay.addWidget(self.emotion)
        self.notes = Field()
        self.notes.setPlaceholderText("notes")
        self.notes.editingFinished.connect(lambda: owner._labels(notes=self.notes.text()))
        self.notes.returnPressed.connect(owner._notes_entered)
        lay.addWidget(self.notes)
        self.goto = Field()
        self.goto.setPlaceholderText("go to frame number (G)")
        self.goto.returnPressed.connect(owner._goto)
        lay.addWidget(self.goto)
        buttons = QHBoxLayout()
        for text, slot in (("Save event (Enter)", owner.commit), ("Cancel (Esc)", owner.cancel),
                           ("Delete", owner.delete_selected)):  # fmt: skip
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.events = QListWidget()
        self.events.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.events.itemClicked.connect(owner._event_clicked)
        self.events.itemDoubleClicked.connect(owner._event_edit)
        lay.addWidget(self.events, 1)
        self.submit_button = QPushButton("Submit my pass")
        self.submit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.submit_button.clicked.connect(owner.submit)
        lay.addWidget(self.submit_button)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.setMinimumWidth(330)
