"""Clip decoding off the GUI thread (PyAV).

``ClipDecoder`` opens a clip, decodes its whole sound track to PCM (a 60 s clip
is a few MB) and then decodes video frames ahead of the display, into a bounded
buffer, on its own thread (``gui-decoder``). The participant window takes frames
by index; it never waits on the decoder.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_CHANNELS = 2


class ClipDecoder:
    """Decode ``path`` ahead of display. ``close()`` stops the thread (idempotent)."""

    def __init__(self, path: Path, ahead: int = 24, fit: tuple[int, int] | None = None) -> None:
        """``fit`` (width, height of the screen area): frames are scaled to fill it
        (aspect kept) here, as BGRA (Qt's RGB32), so that showing one is a plain copy;
        without it frames are the clip's own size, RGB."""
        self.path = Path(path)
        self.ahead = ahead
        self.fit = fit
        self.error: str = ""
        self.fps = 30.0
        self.n_frames: int | None = None
        self.pcm: bytes | None = None  # s16 interleaved stereo at AUDIO_RATE, or None
        self.ready = threading.Event()  # stream info and the sound track are known
        self.finished = False
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._newest = -1
        self._taken = -1
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._main, name="gui-decoder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ display side

    def newest(self) -> int:
        """Index of the newest decoded frame (-1: none yet)."""
        return self._newest

    def take(self, index: int) -> np.ndarray | None:
        """Frame ``index`` (H x W x 3 RGB, or x 4 BGRA when fitted); frames before it
        are released."""
        with self._cond:
            image = self._frames.get(index)
            for old in [i for i in self._frames if i <= index]:
                del self._frames[old]
            self._taken = max(self._taken, index)
            self._cond.notify_all()
        return image

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    # ------------------------------------------------------------ decoder thread

    def _main(self) -> None:
        try:
            with av.open(str(self.path)) as container:
                video = container.streams.video[0]
                rate = video.average_rate or video.base_rate or Fraction(30)
                self.fps = float(rate)
                if video.frames:
                    self.n_frames = int(video.frames)
                if container.streams.audio:
                    self.pcm = self._audio()
                self.ready.set()
                video.thread_type = "AUTO"
                size = fitted(video.width, video.height, self.fit)
                for index, frame in enumerate(container.decode(video)):
                    if not self._wait_room(index):
                        return
                    if size is None:
                        image = frame.to_ndarray(format="rgb24")
                    else:
                        scaled = frame.reformat(width=size[0], height=size[1], format="bgra")
                        image = scaled.to_ndarray()
                    with self._cond:
                        self._frames[index] = image
                        self._newest = index
            self.n_frames = self._newest + 1
        except (av.FFmpegError, OSError, IndexError) as exc:
            self.error = f"{self.path.name}: cannot be decoded ({exc})"
            logger.error("%s", self.error)
        finally:
            self.finished = True
            self.ready.set()

    def _wait_room(self, index: int) -> bool:
        with self._cond:
            while not self._stop and index - self._taken > self.ahead:
                self._cond.wait(0.5)
            return not self._stop

    def _audio(self) -> bytes | None:
        """The whole sound track as s16 stereo PCM (its own pass over the file)."""
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        parts: list[bytes] = []
        with av.open(str(self.path)) as container:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().tobytes())
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().tobytes())
        return b"".join(parts) or None


def fitted(width: int, height: int, area: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size a ``width`` x ``height`` picture has when scaled to fill ``area`` with
    its aspect kept (even sizes), or None without an area."""
    if area is None or area[0] < 2 or area[1] < 2 or width < 1 or height < 1:
        return None
    scale = min(area[0] / width, area[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
