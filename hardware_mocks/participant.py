"""A simulated participant for headless sessions: presses Space, answers the ratings.

It sees what a participant sees - which screen is up (``wait_space``, ``rating``,
...) and the clip just watched - and acts as one does: a Space press or an answer
(emotion, valence 1-9, arousal 1-9), through callbacks the simulated lab wires to
the paradigm (:func:`mmmelab.acquisition.simulation.simulated_participant`).

Deterministic for a given seed. Reaction times are drawn per trial; the answer
names the clip's target emotion with ``accuracy`` probability, otherwise another
emotion; ``miss_rate`` of ratings are left unanswered (recorded as missed).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mmmelab.protocol import Emotion

WAIT_SPACE, RATING = "wait_space", "rating"  # the screens it acts on (the paradigm's phases)
Screen = Callable[[], tuple[str, Emotion | None]]  # (phase, the last clip's target emotion)

_VALENCE = {
    Emotion.HAPPINESS: 8,
    Emotion.SURPRISE: 6,
    Emotion.SADNESS: 2,
    Emotion.FEAR: 2,
    Emotion.ANGER: 2,
    Emotion.DISGUST: 2,
    Emotion.CONTEMPT: 3,
}


class SimulatedParticipant:
    """Acts when ``act(now)`` is called (s, master clock; on the engine's control
    thread); ``next_action(now)`` says when it next will."""

    def __init__(
        self,
        screen: Screen,
        press_space: Callable[[float], None],
        answer: Callable[[Emotion, int, int, float], None],
        seed: int = 0,
        space_delay_s: tuple[float, float] = (0.3, 0.8),
        rating_delay_s: tuple[float, float] = (0.8, 1.6),
        accuracy: float = 0.7,
        miss_rate: float = 0.0,
    ) -> None:
        self.screen, self.press_space, self.answer = screen, press_space, answer
        self._rng = random.Random(seed)
        self.space_delay_s = space_delay_s
        self.rating_delay_s = rating_delay_s
        self.accuracy = accuracy
        self.miss_rate = miss_rate
        self._due: float | None = None
        self._phase: str | None = None
        self._will_miss = False

    def next_action(self, now: float) -> float | None:
        phase, _ = self.screen()
        if phase != self._phase:
            self._phase = phase
            self._due = None
            if phase == WAIT_SPACE:
                self._due = now + self._rng.uniform(*self.space_delay_s)
            elif phase == RATING:
                self._will_miss = self._rng.random() < self.miss_rate
                self._due = (
                    None if self._will_miss else now + self._rng.uniform(*self.rating_delay_s)
                )
        return self._due

    def act(self, now: float) -> None:
        due = self.next_action(now)
        if due is None or now < due:
            return
        self._due = None
        phase, target = self.screen()
        if phase == WAIT_SPACE:
            self.press_space(now)
        elif phase == RATING:
            emotion, valence, arousal = self._rating(target)
            self.answer(emotion, valence, arousal, now)

    def _rating(self, target: Emotion | None) -> tuple[Emotion, int, int]:
        if target is None or self._rng.random() > self.accuracy:
            emotion = self._rng.choice(list(Emotion))
        else:
            emotion = target
        valence = min(9, max(1, _VALENCE[emotion] + self._rng.randint(-1, 1)))
        arousal = self._rng.randint(3, 8)
        return emotion, valence, arousal
