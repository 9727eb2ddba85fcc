"""The MMME paradigm as a state machine: practice block, then trials.

One trial: ``WAIT_SPACE`` (the participant presses Space) -> ``CLIP`` (the
emotional clip plays) -> ``RATING`` (category, valence 1-9, arousal 1-9 within
the limit; a missed answer is recorded as missed) -> ``NEUTRAL`` (the relaxation
clip) -> next trial. Every transition emits its event code (see
:mod:`mmmelab.sync.codes`) through ``emit(code, label, t)``, where ``t`` is when
the event happened on the master clock (a displayed frame, a key press, a due
transition); the order is exactly ``session_plan``.

``pause`` holds the session before the next trial: it takes effect at once in
the "press Space" screen, else when the running trial ends. Recording goes on
throughout; PAUSE and RESUME are markers.

The machine is pure logic: it never sleeps and owns no thread. Whoever drives
it (the headless runner, later the GUI through the controller) calls the input
methods and ``tick(now)``; ``next_deadline()`` says when the next timed
transition is due. Times are master-clock seconds.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from mmmelab.protocol import Clip, Emotion, Protocol
from mmmelab.sync.codes import EventCode

logger = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    """The paradigm's phases, in the order a trial runs through them."""

    IDLE = "idle"
    WAIT_SPACE = "wait_space"
    CLIP = "clip"
    RATING = "rating"
    NEUTRAL = "neutral"
    DONE = "done"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Rating:
    """The participant's self-report after a clip: the emotion, valence and arousal (1-9
    each)."""

    emotion: Emotion
    valence: int
    arousal: int


@dataclass
class TrialResult:
    """One trial as it ran: its clip, the onsets on the master clock (s) and the rating (or
    that it was missed)."""

    index: int
    practice: bool
    clip: Clip
    clip_onset: float = float("nan")
    rating_onset: float = float("nan")
    rating: Rating | None = None
    response_time_s: float = float("nan")

    @property
    def missed(self) -> bool:
        return self.rating is None


class ParadigmError(ValueError):
    """An input that does not fit the current phase (a programming error upstream)."""


class Paradigm:
    """State machine of one session. ``on_phase(phase, trial)`` listeners see every change;
    ``on_trial_done(result)`` listeners see every finished trial."""

    def __init__(self, protocol: Protocol, emit: Callable[[EventCode, str, float], None]) -> None:
        self.protocol = protocol
        self._emit = emit
        self.schedule: list[tuple[bool, Clip]] = [(True, c) for c in protocol.practice] + [
            (False, c) for c in protocol.trials()
        ]
        self.phase = Phase.IDLE
        self.position = -1
        self.deadline: float | None = None
        self.results: list[TrialResult] = []
        self.on_phase: list[Callable[[Phase, TrialResult | None], None]] = []
        self.on_trial_done: list[Callable[[TrialResult], None]] = []
        self.paused = False
        self.pause_pending = False
        self._wait_left: float | None = None

    @property
    def current(self) -> TrialResult | None:
        return (
            self.results[-1]
            if self.results and self.phase not in (Phase.IDLE, Phase.DONE)
            else None
        )

    @property
    def n_practice(self) -> int:
        return len(self.protocol.practice)

    def _set(self, phase: Phase, deadline: float | None) -> None:
        self.phase = phase
        self.deadline = deadline
        for cb in self.on_phase:
            cb(phase, self.current)

    def _need(self, *phases: Phase) -> None:
        if self.phase not in phases:
            raise ParadigmError(f"not possible in phase {self.phase.value}")

    # ------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        self._need(Phase.IDLE)
        self._emit(EventCode.SESSION_START, self.protocol.name, now)
        if self.n_practice:
            self._emit(EventCode.PRACTICE_START, "", now)
        self._next_trial(now)

    def space(self, now: float) -> None:
        """The clip starts; ``now`` is its onset (the Space press headless, the first
        displayed frame under the GUI)."""
        self._need(Phase.WAIT_SPACE)
        if self.paused:
            raise ParadigmError("the session is paused")
        trial = self.results[-1]
        trial.clip_onset = now
        self._emit(EventCode.CLIP_ONSET, trial.clip.id, now)
        self._set(Phase.CLIP, now + trial.clip.duration_s)

    def rate(self, rating: Rating, now: float) -> None:
        """The participant submitted the self-report within the limit."""
        self._need(Phase.RATING)
        for name, value in (("valence", rating.valence), ("arousal", rating.arousal)):
            if not 1 <= value <= 9:
                raise ParadigmError(f"{name} {value} is outside 1-9")
        trial = self.results[-1]
        trial.rating = rating
        trial.response_time_s = now - trial.rating_onset
        self._emit(
            EventCode.RATING_RESPONSE,
            f"{rating.emotion.value} v{rating.valence} a{rating.arousal}",
            now,
        )
        self._start_neutral(now)

    def pause(self, now: float) -> None:
        """Hold before the next trial (at once if the "press Space" screen is up)."""
        if self.paused or self.pause_pending or self.phase in (Phase.DONE, Phase.ABORTED):
            return
        if self.phase is Phase.WAIT_SPACE:
            self._hold(now)
        else:
            self.pause_pending = True

    def resume(self, now: float) -> None:
        """Go on: the "press Space" screen of the next trial is up again."""
        if self.pause_pending:
            self.pause_pending = False
            return
        if not self.paused:
            return
        self.paused = False
        self._emit(EventCode.RESUME, "", now)
        left = self._wait_left
        self._set(Phase.WAIT_SPACE, now + left if left is not None else None)

    def _hold(self, now: float) -> None:
        self.paused = True
        self._wait_left = None if self.deadline is None else max(0.0, self.deadline - now)
        self._emit(EventCode.PAUSE, "", now)
        self._set(Phase.WAIT_SPACE, None)

    def abort(self, now: float) -> None:
        if self.phase in (Phase.DONE, Phase.ABORTED):
            return
        self._emit(EventCode.ABORT, self.phase.value, now)
        self._emit(EventCode.SESSION_END, "aborted", now)
        self._set(Phase.ABORTED, None)

    def tick(self, now: float) -> None:
        """Run the timed transitions that are due at ``now``."""
        while self.deadline is not None and now >= self.deadline:
            due = self.deadline
            if self.phase is Phase.CLIP:
                trial = self.results[-1]
                self._emit(EventCode.CLIP_OFFSET, trial.clip.id, due)
                trial.rating_onset = due
                self._emit(EventCode.RATING_ONSET, trial.clip.id, due)
                self._set(Phase.RATING, due + self.protocol.timing.rating_limit_s)
            elif self.phase is Phase.RATING:
                self._emit(EventCode.RATING_MISSED, self.results[-1].clip.id, due)
                self._start_neutral(due)
            elif self.phase is Phase.NEUTRAL:
                self._end_trial(due)
            elif self.phase is Phase.WAIT_SPACE:
                self.space(due)  # the wait limit ran out: the clip starts anyway
            else:
                break

    def next_deadline(self) -> float | None:
        return self.deadline

    # ------------------------------------------------------------ internals

    def _next_trial(self, now: float) -> None:
        self.position += 1
        practice, clip = self.schedule[self.position]
        index = self.position if practice else self.position - self.n_practice
        self.results.append(TrialResult(index=index, practice=practice, clip=clip))
        self._emit(
            EventCode.TRIAL_START,
            f"{'practice' if practice else 'trial'} {index + 1} {clip.id}",
            now,
        )
        limit = self.protocol.timing.wait_space_limit_s
        self._set(Phase.WAIT_SPACE, now + limit if limit else None)
        if self.pause_pending:
            self.pause_pending = False
            self._hold(now)

    def _start_neutral(self, now: float) -> None:
        self._emit(EventCode.NEUTRAL_ONSET, self.protocol.neutral.id, now)
        self._set(Phase.NEUTRAL, now + self.protocol.neutral.duration_s)

    def _end_trial(self, now: float) -> None:
        trial = self.results[-1]
        self._emit(EventCode.NEUTRAL_OFFSET, self.protocol.neutral.id, now)
        for cb in self.on_trial_done:
            cb(trial)
        last_practice = trial.practice and self.position == self.n_practice - 1
        if last_practice:
            self._emit(EventCode.PRACTICE_END, "", now)
        if self.position + 1 < len(self.schedule):
            self._next_trial(now)
        else:
            self._emit(EventCode.SESSION_END, "complete", now)
            self._set(Phase.DONE, None)
