"""``mmme annotate SESSION --coder NAME --adjudicate``: walk the disputes, write the consensus.

A view on :class:`mmmelab.analysis.annotations.adjudication.Adjudication`: one
dispute at a time - what is in dispute, each coder's version and the proposal
side by side, the face at the chosen row's apex (Left / Right step through the
event) - and the decision: keep the proposal, take a coder's version, edit the
fields, or drop the event. Each decision is saved as it is made; "Write consensus"
writes ``annotations/consensus.tsv`` once nothing is left undecided.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mmmelab.analysis.annotations.adjudication import Adjudication
from mmmelab.analysis.annotations.coding import EMOTIONS, CodingSession
from mmmelab.errors import LabError

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
COLUMNS = ("onset", "apex", "offset", "AUs", "emotion", "kind", "notes")


class AdjudicationWindow(QMainWindow):
    def __init__(self, adj: Adjudication, frames: CodingSession) -> None:
        super().__init__()
        self.adj, self.frames = adj, frames
        self.setWindowTitle(f"mmme adjudicate - {adj.folder.name} - {adj.adjudicator}")
        self.at = 0  # index into adj.disputes
        self.number = frames.first
        self.rows: list[str] = []  # the table's rows: coders, then the consensus
        view = pg.GraphicsLayoutWidget()
        box = view.addViewBox(lockAspect=True, invertY=True)
        box.setMenuEnabled(False)
        self.image = pg.ImageItem()
        box.addItem(self.image)
        self.caption = QLabel()
        self.what = QLabel()
        self.what.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.itemSelectionChanged.connect(self._row_chosen)
        edit = QHBoxLayout()
        self.fields = {k: QLineEdit() for k in ("onset", "apex", "offset", "aus")}
        for k, w in self.fields.items():
            w.setPlaceholderText(k)
            edit.addWidget(w)
        self.emotion = QComboBox()
        self.emotion.addItems(list(EMOTIONS))
        edit.addWidget(self.emotion)
        buttons = QHBoxLayout()
        for text, slot in (
            ("< Previous", lambda: self.go(-1)),
            ("Keep as edited", self.keep),
            ("Take the selected coder's", self.take),
            ("Drop the event", self.drop),
            ("Next >", lambda: self.go(1)),
            ("Write consensus", self.write),
        ):
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.status = QLabel(adj.note)
        self.status.setWordWrap(True)
        root = QWidget()
        lay = QVBoxLayout(root)
        lay.addWidget(self.caption)
        lay.addWidget(view, 3)
        lay.addWidget(self.what)
        lay.addWidget(self.table, 1)
        lay.addLayout(edit)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        self.setCentralWidget(root)
        self.resize(1300, 950)
        self.show_dispute()

    # ------------------------------------------------------------ showing

    def show_dispute(self) -> None:
        disputes = self.adj.disputes
        if not disputes:
            self.what.setText("no disputes: the coders agree on every event")
            self.table.setRowCount(0)
            return
        d = disputes[self.at]
        decided = self.adj.decisions.get(d.group)
        state = "undecided" if decided is None else ("kept" if decided["keep"] else "dropped")
        self.what.setText(f"dispute {self.at + 1} of {len(disputes)} (event group {d.group}, "
                          f"{state}; {len(self.adj.undecided())} undecided): "
                          f"{'; '.join(d.what)}")  # fmt: skip
        versions = self.adj.versions(d.group)
        self.rows = list(versions)
        self.table.setRowCount(len(self.rows))
        self.table.setVerticalHeaderLabels(self.rows)
        for r, who in enumerate(self.rows):
            a = versions[who]
            vals = (
                a.onset,
                "-" if a.apex is None else a.apex,
                a.offset,
                "+".join(str(u) for u in a.aus),
                a.emotion.value,
                a.kind.value,
                a.notes,
            )
            for c, v in enumerate(vals):
                item = QTableWidgetItem(str(v))
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
        current = self.adj.current(d.group) or versions[self.rows[0]]
        for k, w in self.fields.items():
            v = "+".join(str(u) for u in current.aus) if k == "aus" else getattr(current, k)
            w.setText("" if v is None else str(v))
        self.emotion.setCurrentText(current.emotion.value)
        self.show_frame(current.apex if current.apex is not None else current.onset)

    def show_frame(self, number: int) -> None:
        shown = self.frames.frame(number)
        self.number = shown.number
        if shown.image is None:
            h, w = self.frames.store.height // 2, self.frames.store.width // 2
            self.image.setImage(np.full((h, w), 40, np.uint8), autoLevels=False, levels=(0, 255))
        else:
            self.image.setImage(shown.image, autoLevels=False, levels=(0, 255))
        self.caption.setText(f"frame {shown.number}   t {shown.t - self.frames.t0:.3f} s"
                             f"{'   DROPPED' if shown.gap else ''}")  # fmt: skip

    def _row_chosen(self) -> None:
        r = self.table.currentRow()
        if r < 0:
            return
        item = self.table.item(r, 1)
        if item is not None and item.text() != "-":
            self.show_frame(int(item.text()))

    # ------------------------------------------------------------ deciding

    def _group(self) -> int | None:
        return self.adj.disputes[self.at].group if self.adj.disputes else None

    def _act(self, what: Any) -> None:
        try:
            what()
        except (LabError, ValueError) as exc:
            self.status.setText(f"not done: {exc}")
            return
        self.status.setText("saved")
        self.show_dispute()

    def keep(self) -> None:
        g = self._group()
        if g is None:
            return
        f = {k: w.text().strip() for k, w in self.fields.items()}

        def decide() -> None:
            apex = int(f["apex"]) if f["apex"] not in ("", "-") else None
            self.adj.decide(g, True, onset=int(f["onset"]), offset=int(f["offset"]), apex=apex,
                            aus=f["aus"], emotion=self.emotion.currentText())  # fmt: skip

        self._act(decide)

    def take(self) -> None:
        g, r = self._group(), self.table.currentRow()
        if g is None or r < 0 or self.rows[r] == "consensus":
            self.status.setText("select a coder's row first")
            return
        self._act(lambda: self.adj.decide(g, True, take=self.rows[r]))

    def drop(self) -> None:
        g = self._group()
        if g is not None:
            self._act(lambda: self.adj.decide(g, False))

    def go(self, step: int) -> None:
        if self.adj.disputes:
            self.at = (self.at + step) % len(self.adj.disputes)
            self.show_dispute()

    def write(self) -> None:
        try:
            path = self.adj.write()
        except LabError as exc:
            self.status.setText(f"not written: {exc}")
            return
        self.status.setText(f"written: {path}")

    def keyPressEvent(self, ev: QKeyEvent | None) -> None:
        if ev is None:
            return
        if ev.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.show_frame(self.number + (1 if ev.key() == Qt.Key.Key_Right else -1))
        elif ev.key() in (Qt.Key.Key_N, Qt.Key.Key_P):
            self.go(1 if ev.key() == Qt.Key.Key_N else -1)
        else:
            super().keyPressEvent(ev)


def open_adjudication(folder: Path, adjudicator: str) -> tuple[Adjudication, CodingSession]:
    frames = CodingSession(folder, adjudicator)
    try:
        adj = Adjudication(folder, adjudicator, camera=(frames.numbers, frames.times))
    except LabError:
        frames.close()
        raise
    return adj, frames


def run_adjudicate(folder: Path, adjudicator: str) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    adj, frames = open_adjudication(folder, adjudicator)
    try:
        win = AdjudicationWindow(adj, frames)
        win.show()
        app.exec()
    finally:
        frames.close()
    return 0
