"""``mmme annotate SESSION --coder NAME``: the frame-exact coding window.

A view on :class:`mmmelab.analysis.annotations.coding.CodingSession` (the tool's
one model, as the console's is its controller): the face video at any zoom with
its frame number and master time, tracks under it on one time axis with a cursor
at the current frame, the mark in progress and its labels on the right, the
coder's events in a list. Keys (the window's, whenever no text field has focus):

(the keys: :mod:`mmmelab.gui.annotatekeys`)

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
    QLabel,
    QListWidgetItem,
    QMainWindow,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mmmelab.analysis.annotations.coding import (
    KINDS,
    SPEEDS,
    CodingSession,
)
from mmmelab.errors import LabError
from mmmelab.gui.annotatekeys import KEYS_HELP, handle_key
from mmmelab.gui.annotateside import SidePanel
from mmmelab.gui.annotatetracks import TrackPanel

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")

WINDOW_S = 6.0  # seconds of tracks on screen
TICK_MS = 8  # playback clock; frames are shown when their time comes
NO_SKIP_FPS = 75.0  # up to this rate (every speed but 1) each frame is shown in turn
DRAFT = "#81c784"


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
        self.tracks.forget()
        self.show_frame(m.position)
        self._status()

    # ------------------------------------------------------------ layout

    def _build(self) -> None:
        m = self.model
        self.view = pg.GraphicsLayoutWidget()
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.video = self.view.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.video.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.video.addItem(self.image)
        self.gap_text = pg.TextItem("", color="#ff8a65", anchor=(0.5, 0.5))
        self.video.addItem(self.gap_text)
        self.tracks = TrackPanel(m, self.window_s, self._jump)
        self.tracks_view, self.plots = self.tracks, self.tracks.plots
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
        self.side = side = SidePanel(self)
        self.keyframes, self.kind_label, self.kind_box = (
            side.keyframes,
            side.kind_label,
            side.kind_box,
        )
        self.reason, self.aus, self.side_box = side.reason, side.aus, side.side_box
        self.intensity_box, self.au_buttons, self.emotion = (
            side.intensity_box,
            side.au_buttons,
            side.emotion,
        )
        self.notes, self.goto, self.events = side.notes, side.goto, side.events
        self.submit_button, self.status = side.submit_button, side.status
        split.addWidget(side)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.resize(1500, 950)

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
        self.tracks.set_cursor(rel)
        self.tracks.show_at(shown.t, defer_tracks)
        self._show_draft()

    # ------------------------------------------------------------ events drawn

    def _draw_events(self) -> None:
        """The event row (the track panel) and the event list beside."""
        m = self.model
        rows = self.tracks.draw_events()
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

    def _events_clicked(self, ev: Any) -> None:
        self.tracks.events_clicked(ev)

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
        if ev is not None and not handle_key(self, ev):
            super().keyPressEvent(ev)

    def closeEvent(self, ev: Any) -> None:
        self.pause()
        self._hr_poll.stop()
        self.tracks.timer.stop()
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
