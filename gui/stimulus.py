"""The participant's stimulus window: instructions, "press Space", clips with sound,
the self-report screen and the neutral clip.

Timing: a clip's frames are put on the screen by a precise single-shot timer at
each frame's due time (:class:`~mmmelab.acquisition.presentation.FrameSchedule`).
Each frame is painted at once (``repaint``) and its display time taken right
after; the first displayed frame of the emotional clip is the clip onset sent to
the engine. Every shown frame goes to the session's ``stimulus_frames`` log and
each presentation's dropped/repeated counts and audio start to ``presentations``.
Decoding runs on its own thread and starts while the "press Space" screen is up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtMultimedia import QMediaDevices
from PyQt6.QtWidgets import QStackedLayout, QWidget

from mmmelab.acquisition.messages import PhaseInfo
from mmmelab.acquisition.paradigm import Phase, Rating
from mmmelab.acquisition.presentation import FrameSchedule
from mmmelab.config import ScreensConfig
from mmmelab.gui.audio import ClipAudio, output_available
from mmmelab.gui.canvas import TEXTS, Canvas, PhotodiodePatch
from mmmelab.gui.controller import EngineController
from mmmelab.gui.decoder import ClipDecoder
from mmmelab.gui.displaycheck import TEST_SECONDS, display_verdicts
from mmmelab.gui.rating import RatingPanel
from mmmelab.streams import AudioState, FaultKind, StimulusKind
from mmmelab.sync.codes import EventCode

logger = logging.getLogger(__name__)

RETRY_MS = 2  # the decoder was behind: look again this soon
FLUSH_FRAMES = 30  # frames per batch to the session log


@dataclass
class Playback:
    decoder: ClipDecoder
    schedule: FrameSchedule
    audio: ClipAudio | None = None
    flushed: int = 0
    waited: int = 0  # ticks spent waiting for the decoder to open the file


class StimulusWindow(QWidget):
    """The participant's screen. Driven by the controller's ``phase_changed``."""

    display_checked = pyqtSignal(object)  # the clip and display check's record (dict)

    def __init__(self, controller: EngineController, screens: ScreensConfig) -> None:
        super().__init__()
        self.setWindowTitle("mmme-lab - participant")
        self.setStyleSheet("background: black;")
        self.controller = controller
        self.clock = controller.clock
        self.canvas = Canvas(self)
        self.rating = RatingPanel(self.clock, self)
        self.rating.submitted.connect(self._rated)
        self._stack = QStackedLayout(self)
        self._stack.addWidget(self.canvas)
        self._stack.addWidget(self.rating)
        self.patch: PhotodiodePatch | None = None
        self._corner = screens.photodiode_corner
        if screens.photodiode:
            self.patch = PhotodiodePatch(self, screens.photodiode_size_px)
        self.info: PhaseInfo | None = None
        self.playback: Playback | None = None
        self._preloaded: ClipDecoder | None = None
        self._started_first = False
        self._audio_ok = output_available()
        self._audio_reported = False
        self.schedules: list[FrameSchedule] = []  # every presentation, for summaries
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._screens = screens
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        controller.phase_changed.connect(self.on_phase)
        self.canvas.set_text(*TEXTS["wait"])

    # ------------------------------------------------------------ paradigm

    def on_phase(self, info: PhaseInfo) -> None:
        if self.playback is not None and self.playback.schedule.kind == StimulusKind.DISPLAY_CHECK:
            self._end_test()  # the session began: the display check gives way
        self.info = info
        phase = info.phase
        if phase is Phase.WAIT_SPACE:
            self._stop_playback()
            self._show_text(
                "pause" if info.paused else ("next" if self._started_first else "welcome")
            )
            self._preload(info.clip_path)
        elif phase is Phase.CLIP:
            if self.playback is None:  # the wait limit started it, not a Space press
                self._start(StimulusKind.CLIP, math.nan)
        elif phase is Phase.RATING:
            self._stop_playback()
            self._show_rating(info)
            self._preload(self.controller.neutral_path())
        elif phase is Phase.NEUTRAL:
            self.rating.end()
            self._stack.setCurrentWidget(self.canvas)
            self._start(StimulusKind.NEUTRAL, math.nan)
        elif phase in (Phase.DONE, Phase.ABORTED):
            self._stop_playback()
            self.rating.end()
            self._show_text("done" if phase is Phase.DONE else "aborted")

    def _show_text(self, key: str) -> None:
        self._stack.setCurrentWidget(self.canvas)
        self.canvas.set_text(*TEXTS[key])

    def _show_rating(self, info: PhaseInfo) -> None:
        limit = self.controller.protocol.timing.rating_limit_s
        deadline = info.deadline if info.deadline is not None else self.clock() + limit
        self.rating.begin(deadline, limit)
        self._stack.setCurrentWidget(self.rating)
        self._flip_patch()
        self.rating.repaint()
        self.controller.log_display(
            EventCode.RATING_ONSET, deadline - limit, self.clock(), info.clip_id
        )

    def _rated(self, rating: Rating) -> None:
        self.controller.rate(rating, self.clock())

    # ------------------------------------------------------------ input

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        if event is None:
            return
        key = event.key()
        info = self.info
        if info is not None and info.phase is Phase.RATING and self.rating.handle_key(key):
            return
        if (
            key == Qt.Key.Key_Space
            and info is not None
            and info.phase is Phase.WAIT_SPACE
            and not info.paused
            and self.playback is None
        ):
            self._start(StimulusKind.CLIP, self.clock())
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------ playback

    # ------------------------------------------------------------ display check

    def test_clip(self, path: Path | None, seconds: float = TEST_SECONDS) -> bool:
        """Play ``seconds`` of the clip at ``path`` with its sound, before Start (the
        clip and display check); ``display_checked`` follows with the record. False
        when something plays already or there is no clip."""
        if self.playback is not None or path is None or self.info is not None:
            return False
        decoder = ClipDecoder(path, fit=(self.canvas.width(), self.canvas.height()))
        schedule = FrameSchedule(
            fps=decoder.fps,
            trial=-1,
            practice=True,
            kind=StimulusKind.DISPLAY_CHECK,
            clip_id="display check",
        )
        self._test_s = seconds
        self._test_flips = self.patch.flips if self.patch is not None else 0
        self.playback = Playback(decoder, schedule)
        self._tick()
        return True

    def _end_test(self) -> None:
        pb = self.playback
        if pb is None or pb.schedule.kind != StimulusKind.DISPLAY_CHECK:
            return
        sched = pb.schedule
        times = sched.rows()["t_display"].tolist()  # the frames shown, never logged
        device = QMediaDevices.defaultAudioOutput()
        audio = {
            "clip_has_sound": pb.decoder.pcm is not None,
            "device": None if device.isNull() else device.description(),
            "offset_ms": None if math.isnan(sched.audio_offset_s)
            else round(sched.audio_offset_s * 1000.0, 1),
        }  # fmt: skip
        photodiode = {
            "enabled": self.patch is not None,
            "corner": self._corner.value,
            "size_px": self._screens.photodiode_size_px,
            "flips": (self.patch.flips - self._test_flips) if self.patch is not None else 0,
        }
        screen = self.screen()
        refresh = float(screen.refreshRate()) if screen is not None else 0.0
        record = display_verdicts(refresh, sched.fps, times, sched.dropped, sched.repeated,
                                  sched.late_max_s, audio, photodiode)  # fmt: skip
        record["clip"] = str(pb.decoder.path.name)
        self._timer.stop()
        self.playback = None
        if pb.audio is not None:
            pb.audio.stop()
        pb.decoder.close()
        self.canvas.set_text(*TEXTS["wait"])
        self.display_checked.emit(record)

    def _preload(self, path: Path | None) -> None:
        if self._preloaded is not None:
            self._preloaded.close()
        fit = (self.canvas.width(), self.canvas.height())
        self._preloaded = ClipDecoder(path, fit=fit) if path is not None else None

    def _start(self, kind: int, t_space: float) -> None:
        info = self.info
        decoder = self._preloaded
        self._preloaded = None
        if info is None:
            return
        if decoder is None:  # nothing to play: the trial goes on, and the session says so
            self.controller.fault("stimulus", FaultKind.LOST, f"no clip file for {info.clip_id!r}")
            if kind == StimulusKind.CLIP:
                self.controller.clip_onset(self.clock())
            return
        self._started_first = True
        schedule = FrameSchedule(
            fps=decoder.fps,
            trial=info.index,
            practice=info.practice,
            kind=kind,
            clip_id=info.clip_id if kind == StimulusKind.CLIP else "neutral",
            t_space=t_space,
        )
        self.playback = Playback(decoder, schedule)
        self.schedules.append(schedule)
        self._tick()

    def _opened(self, pb: Playback) -> bool:
        """Whether the (preloaded) decoder knows the clip; handles a clip that cannot play."""
        decoder = pb.decoder
        if not decoder.ready.is_set():
            pb.waited += 1
            self._timer.start(RETRY_MS)
            return False
        pb.schedule.fps = decoder.fps
        pb.schedule.n_frames = decoder.n_frames
        if decoder.error or (decoder.finished and decoder.newest() < 0):
            self.controller.fault("stimulus", FaultKind.LOST, decoder.error or "clip has no frames")
            if pb.schedule.kind == StimulusKind.CLIP:  # the trial goes on; its onset is now
                self.controller.clip_onset(self.clock())
            self._stop_playback()
            return False
        return True

    def _tick(self) -> None:
        pb = self.playback
        if pb is None:
            return
        sched = pb.schedule
        if not sched.started and not self._opened(pb):
            return
        sched.n_frames = pb.decoder.n_frames  # known once the decoder reached the end
        index = sched.pick(self.clock(), pb.decoder.newest())
        if index is not None:
            image = pb.decoder.take(index)
            if image is not None:
                self._present(pb, index, image)
        now = self.clock()
        nxt = sched.next_change(now)
        if sched.due_index(now) > sched.last_index or not sched.started:
            self._timer.start(RETRY_MS)  # the decoder is behind: look again soon
        elif math.isfinite(nxt):
            self._timer.start(max(0, int((nxt - now) * 1000)))
        if sched.kind == StimulusKind.DISPLAY_CHECK:  # the display check: nothing is logged
            if sched.started and (now - sched.onset >= self._test_s or not math.isfinite(nxt)):
                self._timer.stop()
                QTimer.singleShot(0, self._end_test)
            return
        if sched.shown - pb.flushed >= FLUSH_FRAMES:
            pb.flushed = sched.shown
            self.controller.log_frames(sched, final=False)

    def _present(self, pb: Playback, index: int, image: np.ndarray) -> None:
        first = not pb.schedule.started
        self.canvas.set_image(image)
        if first:
            self._flip_patch()
        self.canvas.repaint()
        t_display = self.clock()
        pb.schedule.displayed(index, t_display)
        if first:
            if pb.schedule.kind == StimulusKind.CLIP:
                self.controller.clip_onset(t_display)
            self._start_audio(pb)

    def _start_audio(self, pb: Playback) -> None:
        if pb.decoder.pcm is None:
            return
        if not self._audio_ok:
            pb.schedule.audio = AudioState.NO_DEVICE
            # the display check reports it itself
            if pb.schedule.kind == StimulusKind.DISPLAY_CHECK:
                return
            if not self._audio_reported:
                self._audio_reported = True
                self.controller.fault(
                    "stimulus",
                    FaultKind.WARNING,
                    "no audio output device: clip sound is not played",
                )
            return
        try:
            pb.audio = ClipAudio(pb.decoder.pcm, self.clock, pb.schedule.audio_started)
            pb.audio.start()
        except RuntimeError as exc:
            pb.schedule.audio = AudioState.FAILED
            self.controller.fault("stimulus", FaultKind.LOST, f"clip sound failed: {exc}")

    def _stop_playback(self) -> None:
        self._timer.stop()
        pb, self.playback = self.playback, None
        if pb is None:
            return
        if pb.audio is not None:
            pb.audio.stop()
        pb.decoder.close()
        if pb.schedule.kind != StimulusKind.DISPLAY_CHECK:
            self.controller.log_frames(pb.schedule, final=True)

    def _flip_patch(self) -> None:
        if self.patch is not None:
            self.patch.flip()

    # ------------------------------------------------------------ window

    def resizeEvent(self, event: object) -> None:
        if self.patch is not None:
            s = self.patch.width()
            x = 0 if "left" in self._corner.value else self.width() - s
            y = 0 if "top" in self._corner.value else self.height() - s
            self.patch.move(x, y)
            self.patch.raise_()

    def dropped_frames(self) -> int:
        return sum(s.dropped for s in self.schedules)

    def repeated_frames(self) -> int:
        return sum(s.repeated for s in self.schedules)

    def shutdown(self) -> None:
        self._stop_playback()
        if self._preloaded is not None:
            self._preloaded.close()
            self._preloaded = None
        self.rating.end()
