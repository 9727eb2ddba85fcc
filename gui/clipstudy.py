"""``mmme clip-study --clips DIR --rater R``: one evaluator rates the candidate clips.

The participant window's parts, without a recording: the clip canvas and decoder
(frames taken by the clip's own clock, its sound when there is an output), then the
same rating screen (emotion, valence 1-9, arousal 1-9). Space starts the next clip;
Esc stops (every answer is saved already; the rater resumes where they stopped).
A rating not given within the time limit is saved as missing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import QApplication, QStackedLayout, QWidget

from mmmelab.clipstudy import RaterPass
from mmmelab.gui.audio import ClipAudio, output_available
from mmmelab.gui.canvas import Canvas
from mmmelab.gui.decoder import ClipDecoder
from mmmelab.gui.rating import RatingPanel

TICK_MS = 5


class ClipStudyWindow(QWidget):
    finished = pyqtSignal()

    def __init__(self, run: RaterPass, rating_limit_s: float = 60.0) -> None:
        super().__init__()
        self.run = run
        self.limit_s = rating_limit_s
        self.setWindowTitle(f"mmme clip study - rater {run.rater}")
        self.setStyleSheet("background: black;")
        self.canvas = Canvas()
        self.rating = RatingPanel(time.monotonic)
        self.rating.submitted.connect(self._rated)
        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.rating)
        self.decoder: ClipDecoder | None = None
        self.audio: ClipAudio | None = None
        self.current: Any = None
        self.t_start = 0.0
        self.t_rating = 0.0
        self.shown = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._missed)
        self._audio_ok = output_available()
        self._wait_text()

    def _wait_text(self) -> None:
        left = self.run.remaining()
        self.stack.setCurrentWidget(self.canvas)
        if not left:
            self.canvas.set_text("Thank you", "Every clip is rated. You may close the window.")
            self.finished.emit()
            return
        done = len(self.run.order) - len(left)
        self.canvas.set_text(f"Clip {done + 1} of {len(self.run.order)}",
                             "Press Space to watch the next clip. Afterwards, say how it made "
                             "you feel.")  # fmt: skip

    def start_next(self) -> None:
        left = self.run.remaining()
        if not left or self.decoder is not None or self.stack.currentIndex() == 1:
            return
        self.current = left[0]
        self.decoder = ClipDecoder(self.current.path)
        self.t_start = 0.0
        self.shown = 0
        self._timer.start(TICK_MS)

    def _tick(self) -> None:
        dec = self.decoder
        if dec is None:
            return
        if not dec.ready.is_set():
            return
        if dec.error:
            self._end_clip()
            return
        now = time.monotonic()
        if not self.t_start:
            if dec.newest() < 0:
                if dec.finished:
                    self._end_clip()
                return
            self.t_start = now
            if self._audio_ok and dec.pcm is not None:
                self.audio = ClipAudio(dec.pcm, time.monotonic, lambda _t: None)
                self.audio.start()
        due = int((now - self.t_start) * dec.fps)
        if dec.finished and due > dec.newest():
            self._end_clip()
            return
        if due > self.shown - 1 and due <= dec.newest():
            image = dec.take(due)
            if image is not None:
                self.canvas.set_image(image)
                self.canvas.repaint()
                self.shown = due + 1

    def _end_clip(self) -> None:
        self._timer.stop()
        if self.audio is not None:
            self.audio.stop()
            self.audio = None
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        self.t_rating = time.monotonic()
        self.stack.setCurrentWidget(self.rating)
        self.rating.begin(self.t_rating + self.limit_s, self.limit_s)
        self._deadline.start(int(self.limit_s * 1000))

    def _rated(self, rating: Any) -> None:
        self._deadline.stop()
        self.run.record(self.current.id, rating.emotion.value, rating.valence, rating.arousal,
                        time.monotonic() - self.t_rating)  # fmt: skip
        self._wait_text()

    def _missed(self) -> None:
        self.rating.end()
        self.run.record(self.current.id, None, None, None, self.limit_s)
        self._wait_text()

    def keyPressEvent(self, ev: QKeyEvent | None) -> None:
        if ev is None:
            return
        rating_shown = self.stack.currentIndex() == 1
        if rating_shown and self.rating.handle_key(ev.key()):
            return
        if ev.key() == Qt.Key.Key_Space:
            self.start_next()
        elif ev.key() == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev: Any) -> None:
        self._timer.stop()
        self._deadline.stop()
        if self.audio is not None:
            self.audio.stop()
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        super().closeEvent(ev)


def run_clip_study(run: RaterPass, rating_limit_s: float = 60.0) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = ClipStudyWindow(run, rating_limit_s)
    win.showFullScreen()
    app.exec()
    return 0
