"""Stimulus presentation bookkeeping: which clip frame is due, and what was shown.

Pure logic, no Qt: the participant window (``gui/``) asks :class:`FrameSchedule`
which frame to show at each refresh and reports when it was shown; the schedule
counts dropped and repeated frames and builds the session's presentation logs
(``stimulus_frames``, ``presentations``; see :mod:`mmmelab.storage.session`).

Definitions (per presentation of one clip):

- a frame is *due* at ``onset + index / fps``; the onset is the display time of
  frame 0;
- *dropped*: frames never shown because a later frame was already due when the
  display could next be updated;
- *repeated*: refreshes at which a new frame was due but not yet decoded, so the
  previous frame stayed up past its time;
- *late*: display time minus due time of each shown frame (its maximum is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mmmelab.storage.session import PRESENTATION_DTYPE, STIMULUS_FRAME_DTYPE
from mmmelab.streams import AudioState

# A refresh a hair before a frame's due time shows that frame (timer granularity).
EARLY_S = 0.002


@dataclass
class FrameSchedule:
    """The frame clock of one clip presentation. Times are master-clock seconds.

    Used on one thread (the GUI thread in the console). ``rows()`` returns the
    frames shown since the last call, for the session log.
    """

    fps: float
    trial: int
    practice: bool
    kind: int
    clip_id: str
    n_frames: int | None = None  # None when the file does not say
    t_space: float = math.nan
    onset: float = math.nan
    last_index: int = -1
    t_end: float = math.nan
    shown: int = 0
    dropped: int = 0
    repeated: int = 0
    late_max_s: float = 0.0
    lateness_s: list[float] = field(default_factory=list)  # each shown frame's, s
    audio: int = AudioState.NONE
    audio_offset_s: float = math.nan
    _repeat_target: int = -1
    _pending: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return not math.isnan(self.onset)

    def due_index(self, now: float) -> int:
        """The frame that should be on the screen at ``now`` (0 before the onset)."""
        if not self.started:
            return 0
        index = int(math.floor((now - self.onset + EARLY_S) * self.fps))
        if self.n_frames is not None:
            index = min(index, self.n_frames - 1)
        return max(0, index)

    def next_change(self, now: float) -> float:
        """When the next frame is due (master clock); +inf after the last frame."""
        if not self.started:
            return now
        index = self.due_index(now)
        if self.n_frames is not None and index >= self.n_frames - 1:
            return math.inf
        return self.onset + (index + 1) / self.fps

    def pick(self, now: float, newest_decoded: int) -> int | None:
        """The frame to show at this refresh, or None to leave the screen as it is.

        ``newest_decoded`` is the newest frame index the decoder has ready (-1: none).
        Counts a repeat when the due frame is not decoded yet.
        """
        target = self.due_index(now)
        if target <= self.last_index:
            return None
        if newest_decoded <= self.last_index:
            if self.started and target != self._repeat_target:
                self.repeated += 1  # once per due frame that was not ready
                self._repeat_target = target
            return None
        return min(target, newest_decoded)

    def displayed(self, index: int, t_display: float) -> None:
        """Frame ``index`` was handed to the screen at ``t_display``."""
        if not self.started:
            self.onset = t_display - index / self.fps
        if index > self.last_index + 1:
            self.dropped += index - self.last_index - 1
        due = self.onset + index / self.fps
        self.late_max_s = max(self.late_max_s, t_display - due)
        self.lateness_s.append(t_display - due)
        self.last_index = index
        self.shown += 1
        self.t_end = t_display
        self._pending.append((index, due, t_display))

    def audio_started(self, t_audio: float) -> None:
        self.audio = AudioState.PLAYED
        self.audio_offset_s = t_audio - self.onset if self.started else math.nan

    def rows(self) -> np.ndarray:
        """The shown frames not yet returned, as ``STIMULUS_FRAME_DTYPE`` rows."""
        out = np.array(
            [(self.trial, self.practice, self.kind, i, due, t) for i, due, t in self._pending],
            dtype=STIMULUS_FRAME_DTYPE,
        )
        self._pending.clear()
        return out

    def summary(self) -> np.ndarray:
        """This presentation as one ``PRESENTATION_DTYPE`` row."""
        return np.array(
            [
                (
                    self.trial,
                    self.practice,
                    self.kind,
                    self.clip_id[:32].encode(),
                    self.t_space,
                    self.onset,
                    self.t_end,
                    self.fps,
                    self.shown,
                    self.dropped,
                    self.repeated,
                    self.late_max_s * 1000.0,
                    self.audio,
                    self.audio_offset_s * 1000.0,
                )
            ],
            dtype=PRESENTATION_DTYPE,
        )
