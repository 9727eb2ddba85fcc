"""``mmme annotate SESSION --coder NAME``: the frame-exact coding window.

A view on :class:`mmmelab.analysis.annotations.coding.CodingSession` (the tool's
one model, as the console's is its controller): the face video at any zoom with
its frame number and master time, tracks under it on one time axis with a cursor
at the current frame, the mark in progress and its labels on the right, the
coder's events in a list. Keys (the window's, whenever no text field has focus):

=================  ==========================================================
Left / Right       one frame back / on (Shift: ten; Page Up / Down: one second)
Home / End         first / last frame
Space              play / pause;  R: play in reverse
1 2 3 4            speed 1, 1/5, 1/10, 1/30
L                  loop over the mark in progress (or the event under the cursor)
O  A  F            mark onset, apex, offset at the current frame
Enter              save the event;  Esc: cancel the mark (and leave a text field)
N / Shift+N        next / previous spotter candidate
M / Shift+M        next / previous session marker
J / Shift+J        next / previous saved event
=================  ==========================================================

Every mark goes to disk as it is made (the model writes atomically).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QElapsedTimer, Qt, QTimer
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QApplication,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mmmelab.analysis.annotations.coding import (
    EMOTIONS,
    KINDS,
    PICKER_AUS,
    SPEEDS,
    CodingSession,
)
from mmmelab.errors import LabError

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")

WINDOW_S = 6.0  # seconds of tracks on screen
TICK_MS = 8  # playback clock; frames are shown when their time comes
NO_SKIP_FPS = 75.0  # up to this rate (every speed but 1) each frame is shown in turn
OWN, OTHER, CANDIDATE, DRAFT = "#4fc3f7", "#b0bec5", "#ffb74d", "#81c784"
MARKER_COLOUR = "#ffd54f"
SPEED_KEYS = (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4)
KEYS_HELP = (
    "Left/Right 1 frame (Shift 10, PgUp/PgDn 1 s) · Space play · R reverse · 1-4 speed · "
    "L loop · O/A/F onset/apex/offset · Enter save · Esc cancel · N candidate · M marker · "
    "J event"
)


class CodingWindow(QMainWindow):
    """The coding window over one :class:`CodingSession`."""

    def __init__(self, model: CodingSession, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.model = model
        self.window_s = window_s
        self.setWindowTitle(f"mmme annotate - {model.folder.name} - coder {model.coder}")
        self.speed_index = 1  # 1/5: where coders start
        self.direction = 0  # 0 paused, +1 forward, -1 reverse
        self.loop = False
        self.shown_frames = 0  # frames put on screen while playing
        self.skipped_frames = 0  # frames a playback tick had to jump over (full speed)
        self.late_ticks = 0  # slow-motion ticks that came late (the video waited)
        self._acc = 0.0
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._span = (np.inf, -np.inf)  # master-time window the tracks hold
        self._build()
        self._draw_events()
        self.show_frame(model.position)

    # ------------------------------------------------------------ layout

    def _build(self) -> None:
        m = self.model
        self.view = pg.GraphicsLayoutWidget()
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.tracks_view = pg.GraphicsLayoutWidget()
        self.tracks_view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.video = self.view.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.video.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.video.addItem(self.image)
        self.gap_text = pg.TextItem("", color="#ff8a65", anchor=(0.5, 0.5))
        self.video.addItem(self.gap_text)
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        names = [*m.track_names]
        if m.spots.curves:
            names.append("motion")
        names.append("events")
        first: pg.PlotItem | None = None
        for row, name in enumerate(names, start=1):
            plot = self.tracks_view.addPlot(row=row, col=0)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setLabel("left", name)
            plot.getAxis("left").setWidth(70)
            plot.getAxis("left").enableAutoSIPrefix(False)
            if row < len(names):
                plot.getAxis("bottom").setStyle(showValues=False)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            cursor = pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#ef5350", width=1))
            plot.addItem(cursor)
            self.cursors.append(cursor)
            self.plots[name] = plot
            if name not in ("events", "motion"):
                self.curves[name] = plot.plot(pen=pg.mkPen("#e0e0e0", width=1))
        self.plots["events"].getAxis("bottom").setLabel("s from the first frame")
        self.plots["events"].setYRange(0, 3)
        self.plots["events"].getAxis("left").setTicks([[(0.5, "spots"), (1.5, "others"),
                                                        (2.5, "mine")]])  # fmt: skip
        if "motion" in self.plots:
            for label, (t, y) in sorted(self.model.spots.curves.items()):
                if label.startswith("me:"):
                    self.plots["motion"].plot(t - m.t0, y, pen=pg.mkPen("#90a4ae", width=1))
        self.caption = QLabel()
        self.caption.setStyleSheet("font-family: monospace; font-size: 13px")
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.caption)
        stack = QSplitter(Qt.Orientation.Vertical)  # the face over the tracks, resizable
        stack.addWidget(self.view)
        stack.addWidget(self.tracks_view)
        stack.setSizes([420, 580])
        lay.addWidget(stack, 1)
        help_label = QLabel(KEYS_HELP)
        help_label.setWordWrap(True)
        help_label.setStyleSheet("color: #888")
        lay.addWidget(help_label)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self._side_panel())
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.resize(1500, 950)

    def _side_panel(self) -> QWidget:
        side = QWidget()
        lay = QVBoxLayout(side)
        self.keyframes = QLabel()
        self.keyframes.setStyleSheet("font-family: monospace; font-size: 13px")
        lay.addWidget(self.keyframes)
        self.kind_label = QLabel()
        lay.addWidget(self.kind_label)
        row = QHBoxLayout()
        self.kind_box = QComboBox()
        self.kind_box.addItems(["kind by the rule", *KINDS])
        self.kind_box.activated.connect(lambda _i: self._override())
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("reason for the override")
        self.reason.editingFinished.connect(self._override)
        row.addWidget(self.kind_box)
        row.addWidget(self.reason, 1)
        lay.addLayout(row)
        lay.addWidget(QLabel("Action units (FACS: L12+6B, 4(B/C))"))
        self.aus = QLineEdit()
        self.aus.editingFinished.connect(self._aus_typed)
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
            b.clicked.connect(lambda _c=False, au=au: self.pick_au(str(au)))
            grid.addWidget(b, i // 6, i % 6)
            self.au_buttons[str(au)] = b
        lay.addLayout(grid)
        self.emotion = QComboBox()
        self.emotion.addItems(list(EMOTIONS))
        self.emotion.activated.connect(lambda _i: self._labels(emotion=self.emotion.currentText()))
        lay.addWidget(self.emotion)
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("notes")
        self.notes.editingFinished.connect(lambda: self._labels(notes=self.notes.text()))
        lay.addWidget(self.notes)
        buttons = QHBoxLayout()
        for text, slot in (("Save event (Enter)", self.commit), ("Cancel (Esc)", self.cancel),
                           ("Delete", self.delete_selected)):  # fmt: skip
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.events = QListWidget()
        self.events.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.events.itemClicked.connect(self._event_clicked)
        self.events.itemDoubleClicked.connect(self._event_edit)
        lay.addWidget(self.events, 1)
        self.submit_button = QPushButton("Submit my pass")
        self.submit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.submit_button.clicked.connect(self.submit)
        lay.addWidget(self.submit_button)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        side.setMinimumWidth(330)
        return side

    # ------------------------------------------------------------ the frame

    def show_frame(self, number: int) -> None:
        m = self.model
        shown = m.frame(number)
        if shown.image is None:
            h, w = m.store.height // 2, m.store.width // 2
            self.image.setImage(np.full((h, w), 40, np.uint8), autoLevels=False, levels=(0, 255))
            self.gap_text.setText(f"frame {shown.number} was dropped")
            self.gap_text.setPos(w / 2, h / 2)
        else:
            self.image.setImage(shown.image, autoLevels=False, levels=(0, 255))
            self.gap_text.setText("")
        rel = shown.t - m.t0
        where = "DROPPED" if shown.gap else f"stored #{shown.index}"
        self.caption.setText(f"frame {shown.number}   t {rel:9.3f} s   ({where})   "
                             f"speed 1/{round(1 / SPEEDS[self.speed_index])}"
                             f"{'   loop' if self.loop else ''}")  # fmt: skip
        for c in self.cursors:
            c.setPos(rel)
        self._tracks_around(shown.t)
        self._show_draft()

    def _tracks_around(self, t: float) -> None:
        a, b = self._span
        w = self.window_s
        if a + 0.25 * w <= t <= b - 0.25 * w:
            return
        a, b = t - w / 2, t + w / 2
        self._span = (a, b)
        m = self.model
        for name, curve in self.curves.items():
            tr = m.track(name, a, b, max_points=1200)
            curve.setData(tr.t - m.t0, tr.y)
        self.plots["events"].setXRange(a - m.t0, b - m.t0, padding=0)

    # ------------------------------------------------------------ events drawn

    def _draw_events(self) -> None:
        m = self.model
        plot = self.plots["events"]
        for item in list(plot.items):
            if (
                isinstance(item, (pg.LinearRegionItem, pg.InfiniteLine))
                and item not in self.cursors
            ):
                plot.removeItem(item)
        for t, text in m.markers:
            line = pg.InfiniteLine(
                t - m.t0,
                angle=90,
                pen=pg.mkPen(MARKER_COLOUR, width=1),
                label=text,
                labelOpts={"position": 0.9, "color": MARKER_COLOUR},
            )
            plot.addItem(line)
        rows = [(src, a) for src, a in m.events_on_screen()]
        for src, a in rows:
            y = 2.0 if src == m.coder else 1.0
            self._region(plot, a.onset, a.offset, OWN if src == m.coder else OTHER, y)
        for a in m.spots.candidates:
            self._region(plot, a.onset, a.offset, CANDIDATE, 0.0, jump=a.apex or a.onset)
        self.events.clear()
        for src, a in rows:
            apex = "-" if a.apex is None else str(a.apex)
            text = (f"{'' if src == m.coder else src + ': '}{a.id}  {a.kind.value}  "
                    f"{a.onset}/{apex}/{a.offset}  {a.emotion.value}  "
                    f"{'+'.join(str(u) for u in a.aus)}")  # fmt: skip
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, (src, a.id, a.onset))
            self.events.addItem(item)
        self._status()

    def _region(self, plot: pg.PlotItem, on: int, off: int, colour: str, y: float,
                jump: int | None = None) -> None:  # fmt: skip
        m = self.model
        t0, t1 = m.time_of(on) - m.t0, m.time_of(off) - m.t0 + 1.0 / m.fps
        reg = pg.LinearRegionItem((t0, t1), movable=False, brush=pg.mkBrush(colour + "80"),
                                  span=(y / 3 + 0.02, (y + 1) / 3 - 0.02))  # fmt: skip
        if jump is not None:
            reg.mouseClickEvent = lambda ev, n=jump: self._jump(n, ev)
        plot.addItem(reg)

    def _jump(self, number: int, ev: Any = None) -> None:
        if ev is not None:
            ev.accept()
        self.pause()
        self.show_frame(number)

    # ------------------------------------------------------------ marks

    def _show_draft(self) -> None:
        m, d = self.model, self.model.draft

        def f(v: int | None) -> str:
            return "-" if v is None else str(v)

        self.keyframes.setText(f"onset {f(d.onset)}   apex {f(d.apex)}   offset {f(d.offset)}"
                               + (f"   (editing {d.editing})" if d.editing else ""))  # fmt: skip
        kind = m.rule_kind()
        if kind is None or d.onset is None or d.offset is None:
            self.kind_label.setText("kind: mark onset and offset")
        else:
            n = d.offset - d.onset + 1
            self.kind_label.setText(f"kind by the rule: {kind.value} ({n} frames, "
                                    f"{n / m.fps * 1000:.0f} ms)")  # fmt: skip
        if not self.aus.hasFocus():
            self.aus.setText(d.aus)
        if not self.notes.hasFocus():
            self.notes.setText(d.notes)
        self.emotion.setCurrentText(d.emotion)
        self.kind_box.setCurrentIndex(1 + KINDS.index(d.kind_override) if d.kind_override else 0)
        if not self.reason.hasFocus():
            self.reason.setText(d.override_reason)

    def _try(self, what: Any) -> bool:
        try:
            what()
        except (LabError, ValueError) as exc:
            self.say(str(exc), error=True)
            return False
        return True

    def say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #e57373" if error else "")
        self.status.setText(text)

    def _status(self) -> None:
        m = self.model
        state = "submitted" if m.submitted else "open (others' marks hidden)"
        self.say(f"{len(m.table.annotations)} event(s) saved · pass {state} · "
                 f"heart rate: {m.heart_rate_note}")  # fmt: skip

    def mark(self, key: str) -> None:
        if self._try(lambda: self.model.mark(key)):
            self._show_draft()
            self.say(f"{key} at frame {self.model.position} (saved)")

    def _labels(self, **kw: str) -> None:
        self._try(lambda: self.model.set_labels(**kw))
        self._show_draft()

    def _aus_typed(self) -> None:
        if self._try(lambda: self.model.set_labels(aus=self.aus.text())):
            self._show_draft()

    def pick_au(self, au: str) -> None:
        side = {"L": "L", "R": "R"}.get(self.side_box.currentText(), "")
        inten = self.intensity_box.currentText()
        token = f"{side}{au}{inten if len(inten) == 1 else ''}"
        text = self.model.draft.aus
        self._labels(aus=f"{text}+{token}" if text else token)

    def _override(self) -> None:
        i = self.kind_box.currentIndex()
        kind = None if i == 0 else KINDS[i - 1]
        if kind is not None and not self.reason.text().strip():
            self.say("an override of the ME rule needs a reason: type it, then Enter", True)
            self.reason.setFocus()
            return
        if self._try(lambda: self.model.override_kind(kind, self.reason.text())):
            self._show_draft()

    def commit(self) -> None:
        try:
            ann = self.model.commit()
        except (LabError, ValueError) as exc:
            self.say(f"not saved: {exc}", error=True)
            return
        self._draw_events()
        self._show_draft()
        self.say(f"saved {ann.id}: {ann.kind.value} {ann.onset}..{ann.offset} {ann.emotion.value}")

    def cancel(self) -> None:
        self._try(self.model.cancel_draft)
        self._show_draft()
        self.view.setFocus()

    def delete_selected(self) -> None:
        item = self.events.currentItem()
        if item is None:
            return
        src, ev_id, _ = item.data(Qt.ItemDataRole.UserRole)
        if src != self.model.coder:
            self.say("only your own events can be deleted", error=True)
            return
        if self._try(lambda: self.model.delete(ev_id)):
            self._draw_events()

    def _event_clicked(self, item: QListWidgetItem) -> None:
        _src, _id, onset = item.data(Qt.ItemDataRole.UserRole)
        self._jump(int(onset))

    def _event_edit(self, item: QListWidgetItem) -> None:
        src, ev_id, _ = item.data(Qt.ItemDataRole.UserRole)
        if src == self.model.coder and self._try(lambda: self.model.edit(ev_id)):
            self._show_draft()

    def submit(self) -> None:
        if self._try(self.model.submit):
            self.submit_button.setEnabled(False)
            self._draw_events()

    # ------------------------------------------------------------ playback

    def play(self, direction: int = 1) -> None:
        self.direction = direction
        self._acc = 0.0
        self._clock.start()
        self._timer.start(TICK_MS)

    def pause(self) -> None:
        self.direction = 0
        self._timer.stop()

    def set_speed(self, index: int) -> None:
        self.speed_index = index
        self.show_frame(self.model.position)

    def _tick(self) -> None:
        dt = self._clock.restart() / 1000.0
        self._acc += dt * SPEEDS[self.speed_index] * self.model.fps
        n = int(self._acc)
        if n < 1:
            return
        self._acc -= n
        if SPEEDS[self.speed_index] * self.model.fps <= NO_SKIP_FPS and n > 1:
            # slow motion shows every frame: a late tick delays the video, never skips
            self.late_ticks += 1
            self._acc = 0.0
            n = 1
        self.skipped_frames += n - 1
        m = self.model
        target = m.position + self.direction * n
        span = m.loop_span() if self.loop else None
        if span is not None:
            lo, hi = span
            if target > hi:
                target = lo
            elif target < lo:
                target = hi
        elif not m.first <= target <= m.last:
            self.pause()
            target = int(np.clip(target, m.first, m.last))
        self.show_frame(target)
        self.shown_frames += 1

    # ------------------------------------------------------------ keys

    def keyPressEvent(self, ev: QKeyEvent | None) -> None:
        if ev is None:
            return
        try:
            k = Qt.Key(ev.key())
        except ValueError:  # a key Qt has no name for
            super().keyPressEvent(ev)
            return
        mods = ev.modifiers()
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        m = self.model
        key = Qt.Key
        steps = {key.Key_Right: 10 if shift else 1, key.Key_Left: -10 if shift else -1,
                 key.Key_PageDown: round(m.fps), key.Key_PageUp: -round(m.fps)}  # fmt: skip
        if k in steps:
            self.pause()
            self.show_frame(m.step(steps[k]))
        elif k in (key.Key_Home, key.Key_End):
            self._jump(m.first if k == key.Key_Home else m.last)
        elif k == key.Key_Space:
            if self.direction:
                self.pause()
            else:
                self.play(1)
        elif k == key.Key_R:
            if self.direction == -1:
                self.pause()
            else:
                self.play(-1)
        elif k in SPEED_KEYS:
            self.set_speed(SPEED_KEYS.index(k))
        elif k == key.Key_L:
            self.loop = not self.loop
            self.show_frame(m.position)
        elif k in (key.Key_O, key.Key_A, key.Key_F):
            self.mark({key.Key_O: "onset", key.Key_A: "apex", key.Key_F: "offset"}[k])
        elif k in (key.Key_Return, key.Key_Enter):
            self.commit()
        elif k == key.Key_Escape:
            self.cancel()
        elif k in (key.Key_N, key.Key_M, key.Key_J):
            find = {key.Key_N: m.next_candidate, key.Key_M: m.next_marker,
                    key.Key_J: m.next_annotation}[k]  # fmt: skip
            target = find(not shift)
            if target is None:
                self.say("nothing further that way")
            else:
                self._jump(target)
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev: Any) -> None:
        self.pause()
        super().closeEvent(ev)


def run_annotate(folder: Path, coder: str, spots: Path | None = None,
                 eeg: tuple[str, ...] = ("Fz", "Cz", "Pz")) -> int:  # fmt: skip
    """Open the coding window and run until it is closed."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = CodingSession(folder, coder, spots, eeg)
    try:
        model.start_background()
        win = CodingWindow(model)
        win.show()
        win.view.setFocus()
        refresh = QTimer(win)  # the heart rate arrives from its thread
        started = time.monotonic()

        def poll() -> None:
            if model.heart_rate is not None or time.monotonic() - started > 600:
                refresh.stop()
                win._span = (np.inf, -np.inf)
                win.show_frame(model.position)
                win._status()

        refresh.timeout.connect(poll)
        refresh.start(500)
        app.exec()
    finally:
        model.close()
    return 0


def shoot(folder: Path, out: Path, spots: Path | None = None, coder: str = "ann") -> list[Path]:
    """PNGs of the coding window on ``folder`` (for the README): the coder at the apex
    of their first event with the mark of a second in progress."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = CodingSession(folder, coder, spots)
    saved = []
    try:
        model.start_background()
        model.wait_background(120)
        win = CodingWindow(model)
        win.resize(1600, 1000)
        win.show()
        first = model.table.annotations[0] if model.table.annotations else None
        if first is not None:
            win._jump(first.apex if first.apex is not None else first.onset)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            app.processEvents()
        path = out / "annotate.png"
        win.grab().save(str(path))
        saved.append(path)
        win.close()
    finally:
        model.close()
    return saved
