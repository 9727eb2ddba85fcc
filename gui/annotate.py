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
U  T  G            type the AUs / the notes / a frame number to go to (Enter: back)
Ctrl+1 .. Ctrl+8   emotion: happiness, surprise, sadness, fear, anger, disgust,
                   contempt, others
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
from PyQt6.QtCore import Qt, QTimer
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
EMOTION_KEYS = tuple(Qt.Key(Qt.Key.Key_1.value + i) for i in range(len(EMOTIONS)))  # Ctrl+1-8
KEYS_HELP = (
    "Left/Right 1 frame (Shift 10, PgUp/PgDn 1 s) · Space play · R reverse · 1-4 speed · "
    "L loop · O/A/F onset/apex/offset · U type AUs · Ctrl+1-8 emotion · T notes · "
    "G go to frame · Enter save · Esc cancel · N candidate · M marker · J event"
)


class Field(QLineEdit):
    """A text field that keeps its Enter: QLineEdit passes Return on to its parent (for
    dialogs' default buttons), which here would save the event half-typed."""

    def keyPressEvent(self, ev: QKeyEvent | None) -> None:
        super().keyPressEvent(ev)
        if ev is not None and ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            ev.accept()


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
        self._last_tick = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._span = (np.inf, -np.inf)  # master-time window the tracks hold
        self._y: dict[str, tuple[float, float]] = {}  # each track's y range shown
        self._event_items: list[Any] = []
        self._pending_t = 0.0
        self._tracks_timer = QTimer(self)
        self._tracks_timer.setSingleShot(True)
        self._tracks_timer.timeout.connect(lambda: self._tracks_around(self._pending_t))
        self._labels_shown: list[Any] = []
        self._spans: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}
        self._build()
        self._draw_events()
        self.show_frame(model.position)
        # the heart rate is computed once the window is up, and drawn when it is ready
        self._hr_poll = QTimer(self)
        self._hr_poll.timeout.connect(self._heart_rate_ready)
        QTimer.singleShot(100, self._start_background)

    def _start_background(self) -> None:
        if not self.isVisible():
            return
        self.model.start_background()
        self._hr_poll.start(300)

    def _heart_rate_ready(self) -> None:
        m = self.model
        if m.background_busy:
            return
        if m.closed:
            self._hr_poll.stop()
            return
        self._hr_poll.stop()
        self._span = (np.inf, -np.inf)
        self.show_frame(m.position)
        self._status()

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
                plot.hideAxis("bottom")  # one time axis, under the last track
            # ranges are set, never searched: autoranging 11 plots on every seek costs
            # more than reading the data
            plot.disableAutoRange()
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
        self.plots["events"].setYRange(0, 3.6, padding=0)
        self.tracks_view.scene().sigMouseClicked.connect(self._events_clicked)
        self.plots["events"].getAxis("left").setTicks([[(0.5, "spots"), (1.5, "others"),
                                                        (2.5, "mine")]])  # fmt: skip
        if "motion" in self.plots:
            top = 0.0
            for label, (t, y) in sorted(self.model.spots.curves.items()):
                if label.startswith("me:"):
                    self.plots["motion"].plot(t - m.t0, y, pen=pg.mkPen("#90a4ae", width=1))
                    top = max(top, float(np.nanmax(y)) if len(y) else 0.0)
            self.plots["motion"].setYRange(0, top or 1.0, padding=0.05)
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
        self.reason = Field()
        self.reason.setPlaceholderText("reason for the override")
        self.reason.editingFinished.connect(self._override)
        row.addWidget(self.kind_box)
        row.addWidget(self.reason, 1)
        lay.addLayout(row)
        lay.addWidget(QLabel("Action units (FACS: L12+6B, 4(B/C))"))
        self.aus = Field()
        self.aus.editingFinished.connect(self._aus_typed)
        self.aus.returnPressed.connect(self._aus_entered)
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
        self.notes = Field()
        self.notes.setPlaceholderText("notes")
        self.notes.editingFinished.connect(lambda: self._labels(notes=self.notes.text()))
        self.notes.returnPressed.connect(self._notes_entered)
        lay.addWidget(self.notes)
        self.goto = Field()
        self.goto.setPlaceholderText("go to frame number (G)")
        self.goto.returnPressed.connect(self._goto)
        lay.addWidget(self.goto)
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

    def show_frame(self, number: int, defer_tracks: bool = False) -> None:
        """Frame ``number`` on screen. With ``defer_tracks`` (a seek) the tracks, when
        they must be read afresh, follow in the next turn of the event loop: the face
        is painted first."""
        m = self.model
        shown = m.frame(number)
        if shown.image is None:
            h, w = m.store.height // 2, m.store.width // 2
            self.image.setImage(np.full((h, w), 40, np.uint8), autoLevels=False, levels=(0, 255))
            self.gap_text.setText(f"frame {shown.number} was dropped")
            self.gap_text.setPos(w / 2, h / 2)
        else:
            # uint8 RGB with no levels goes to the screen without a rescaling pass
            self.image.setImage(shown.image, autoLevels=False)
            self.gap_text.setText("")
        rel = shown.t - m.t0
        where = "DROPPED" if shown.gap else f"stored #{shown.index}"
        self.caption.setText(f"frame {shown.number}   t {rel:9.3f} s   master {shown.t:.4f}   "
                             f"({where})   "
                             f"speed 1/{round(1 / SPEEDS[self.speed_index])}"
                             f"{'   loop' if self.loop else ''}")  # fmt: skip
        for c in self.cursors:
            c.setPos(rel)
        if defer_tracks and not self._inside(shown.t):
            self._pending_t = shown.t
            self._tracks_timer.start(0)
        else:
            self._tracks_around(shown.t)
        self._show_draft()

    def _inside(self, t: float) -> bool:
        a, b = self._span
        return a + 0.25 * self.window_s <= t <= b - 0.25 * self.window_s

    def _tracks_around(self, t: float) -> None:
        if self._inside(t) or self.model.closed:  # (a deferred redraw after the close)
            return
        w = self.window_s
        a, b = t - w / 2, t + w / 2
        self._span = (a, b)
        m = self.model
        for name, curve in self.curves.items():
            tr = m.track(name, a, b, max_points=1200)
            curve.setData(tr.t - m.t0, tr.y)
            if len(tr.y):
                self._fit_y(name, float(np.min(tr.y)), float(np.max(tr.y)))
        self.plots["events"].setXRange(a - m.t0, b - m.t0, padding=0)
        self._marker_labels(a, b)

    def _fit_y(self, name: str, lo: float, hi: float) -> None:
        """Keep a track's y range while the data fit it and fill a good part of it: a
        steady axis is easier to read, and one that does not move is not redrawn."""
        old = self._y.get(name)
        if old is not None:
            olo, ohi = old
            span = ohi - olo
            if olo <= lo and hi <= ohi and (hi - lo) >= 0.4 * span:
                return
        pad = 0.08 * (hi - lo) or 1.0
        self._y[name] = (lo - pad, hi + pad)
        self.plots[name].setYRange(lo - pad, hi + pad, padding=0)

    # ------------------------------------------------------------ events drawn

    def _draw_events(self) -> None:
        """The event row: markers as one item of vertical lines (their labels only in the
        window shown), events and candidates as bars - one item per kind, so an hour's
        hundreds of them cost one paint each, not hundreds."""
        m = self.model
        plot = self.plots["events"]
        for item in self._event_items:
            plot.removeItem(item)
        self._event_items = []
        if m.markers:
            ts = np.array([t - m.t0 for t, _ in m.markers])
            x = np.repeat(ts, 3)
            x[2::3] = np.nan
            y = np.tile([0.0, 3.0, np.nan], len(ts))
            lines = pg.PlotDataItem(x, y, connect="finite", pen=pg.mkPen(MARKER_COLOUR, width=1))
            self._add(plot, lines)
        rows = [(src, a) for src, a in m.events_on_screen()]
        own = [a for src, a in rows if src == m.coder]
        others = [a for src, a in rows if src != m.coder]
        self._spans = {}
        for row, (events, colour) in enumerate(((m.spots.candidates, CANDIDATE), (others, OTHER),
                                                (own, OWN))):  # fmt: skip
            if not events:
                continue
            on = np.array([m.time_of(a.onset) for a in events]) - m.t0
            off = np.array([m.time_of(a.offset) for a in events]) - m.t0 + 1.0 / m.fps
            bars = pg.BarGraphItem(x0=on, x1=off, y0=row + 0.1, height=0.8,
                                   brush=pg.mkBrush(colour + "b0"), pen=pg.mkPen(None))  # fmt: skip
            self._add(plot, bars)
            self._spans[row] = (on, off, [a.apex if a.apex is not None else a.onset
                                          for a in events])  # fmt: skip
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

    def _add(self, plot: pg.PlotItem, item: Any) -> None:
        plot.addItem(item)
        self._event_items.append(item)

    def _marker_labels(self, a: float, b: float) -> None:
        """Labels of the markers inside the window shown (made again when it moves)."""
        plot, m = self.plots["events"], self.model
        for item in self._labels_shown:
            plot.removeItem(item)
        self._labels_shown = []
        for t, text in m.markers:
            if a <= t <= b:
                label = pg.TextItem(text, color=MARKER_COLOUR, anchor=(0, 0))
                label.setPos(t - m.t0, 3.0)
                plot.addItem(label)
                self._labels_shown.append(label)

    def _events_clicked(self, ev: Any) -> None:
        """A click on a candidate or an event in the event row goes to its apex."""
        plot = self.plots["events"]
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        if not plot.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = plot.vb.mapSceneToView(ev.scenePos())
        row = int(np.floor(p.y()))
        hit = self._spans.get(row)
        if hit is None:
            return
        on, off, targets = hit
        inside = np.flatnonzero((on <= p.x()) & (p.x() <= off))
        if len(inside):
            self._jump(int(targets[int(inside[0])]))

    def _jump(self, number: int, ev: Any = None) -> None:
        if ev is not None:
            ev.accept()
        self.pause()
        self.show_frame(number, defer_tracks=True)

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

    def _aus_entered(self) -> None:
        self._aus_typed()
        self.view.setFocus()  # typed: back to the keys

    def _notes_entered(self) -> None:
        self._labels(notes=self.notes.text())
        self.view.setFocus()

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

    def _goto(self) -> None:
        text = self.goto.text().strip()
        if not text.isdigit():
            self.say(f"{text!r} is not a frame number", error=True)
            return
        self._jump(int(text))
        self.view.setFocus()

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
        self._last_tick = time.perf_counter()
        self._timer.start(TICK_MS)

    def pause(self) -> None:
        self.direction = 0
        self._timer.stop()

    def set_speed(self, index: int) -> None:
        self.speed_index = index
        self.show_frame(self.model.position)

    def _tick(self) -> None:
        now = time.perf_counter()  # (QElapsedTimer.restart's whole ms would lose time)
        dt, self._last_tick = now - self._last_tick, now
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
        elif k in SPEED_KEYS and not mods & Qt.KeyboardModifier.ControlModifier:
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
        elif mods & Qt.KeyboardModifier.ControlModifier and k in EMOTION_KEYS:
            self.emotion.setCurrentIndex(EMOTION_KEYS.index(k))
            self._labels(emotion=self.emotion.currentText())
        elif k in (key.Key_U, key.Key_T, key.Key_G):
            field = {key.Key_U: self.aus, key.Key_T: self.notes, key.Key_G: self.goto}[k]
            field.setFocus()
            field.selectAll()
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
        self._hr_poll.stop()
        self._tracks_timer.stop()
        # the plots leave the scenes before the widgets go: a repaint queued while the
        # window closes must not reach an axis Qt has already deleted
        self.tracks_view.clear()
        self.view.clear()
        super().closeEvent(ev)


def run_annotate(folder: Path, coder: str, spots: Path | None = None,
                 eeg: tuple[str, ...] = ("Fz", "Cz", "Pz")) -> int:  # fmt: skip
    """Open the coding window and run until it is closed."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    model = CodingSession(folder, coder, spots, eeg)
    try:
        win = CodingWindow(model)
        win.show()
        win.view.setFocus()
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
