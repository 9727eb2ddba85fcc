"""Clip sound through Qt Multimedia (``QAudioSink``, push mode).

The sink starts when the first video frame is shown; the time its output becomes
active is reported, so every presentation logs its audio start relative to the
first frame. Without an audio output device (a server, CI) nothing plays and the
caller records that, once per session, as a stimulus fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PyQt6.QtCore import QIODevice, QObject, QTimer
from PyQt6.QtMultimedia import QAudio, QAudioFormat, QAudioSink, QMediaDevices

from mmmelab.gui.decoder import AUDIO_CHANNELS, AUDIO_RATE

logger = logging.getLogger(__name__)

FEED_MS = 10


def output_available() -> bool:
    return not QMediaDevices.defaultAudioOutput().isNull()


class ClipAudio(QObject):
    """Plays one clip's PCM; ``on_started(t)`` is called when the output becomes active."""

    def __init__(
        self, pcm: bytes, clock: Callable[[], float], on_started: Callable[[float], None]
    ) -> None:
        super().__init__()
        fmt = QAudioFormat()
        fmt.setSampleRate(AUDIO_RATE)
        fmt.setChannelCount(AUDIO_CHANNELS)
        fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        self._pcm = pcm
        self._pos = 0
        self._clock = clock
        self._on_started = on_started
        self._reported = False
        self.sink = QAudioSink(QMediaDevices.defaultAudioOutput(), fmt, self)
        self.sink.stateChanged.connect(self._state)
        self._io: QIODevice | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(FEED_MS)
        self._timer.timeout.connect(self._feed)

    def start(self) -> None:
        self._io = self.sink.start()
        self._feed()
        self._timer.start()

    def _feed(self) -> None:
        if self._io is None:
            return
        free = self.sink.bytesFree()
        if free <= 0 or self._pos >= len(self._pcm):
            return
        chunk = self._pcm[self._pos : self._pos + free - free % 4]
        written = self._io.write(chunk)
        if written > 0:
            self._pos += written

    def _state(self, state: QAudio.State) -> None:
        if state == QAudio.State.ActiveState and not self._reported:
            self._reported = True
            self._on_started(self._clock())

    def stop(self) -> None:
        self._timer.stop()
        self.sink.stop()
        self._io = None
