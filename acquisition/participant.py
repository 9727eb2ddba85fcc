"""A simulated participant for headless sessions: presses Space, answers the ratings.

Deterministic for a given seed. Reaction times are drawn per trial; the answer
names the clip's target emotion with ``accuracy`` probability, otherwise another
emotion; ``miss_rate`` of ratings are left unanswered (recorded as missed).
"""

from __future__ import annotations

import random

from mmmelab.acquisition.paradigm import Paradigm, Phase, Rating
from mmmelab.protocol import Emotion

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
    """Acts on a :class:`Paradigm` when ``act(now)`` is called; ``next_action()`` says when."""

    def __init__(
        self,
        paradigm: Paradigm,
        seed: int = 0,
        space_delay_s: tuple[float, float] = (0.3, 0.8),
        rating_delay_s: tuple[float, float] = (0.8, 1.6),
        accuracy: float = 0.7,
        miss_rate: float = 0.0,
    ) -> None:
        self.paradigm = paradigm
        self._rng = random.Random(seed)
        self.space_delay_s = space_delay_s
        self.rating_delay_s = rating_delay_s
        self.accuracy = accuracy
        self.miss_rate = miss_rate
        self._due: float | None = None
        self._phase: Phase | None = None
        self._will_miss = False

    def next_action(self, now: float) -> float | None:
        phase = self.paradigm.phase
        if phase != self._phase:
            self._phase = phase
            self._due = None
            if phase is Phase.WAIT_SPACE:
                self._due = now + self._rng.uniform(*self.space_delay_s)
            elif phase is Phase.RATING:
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
        if self.paradigm.phase is Phase.WAIT_SPACE:
            self.paradigm.space(now)
        elif self.paradigm.phase is Phase.RATING:
            self.paradigm.rate(self._answer(), now)

    def _answer(self) -> Rating:
        trial = self.paradigm.results[-1]
        target = trial.clip.emotion
        if target is None or self._rng.random() > self.accuracy:
            emotion = self._rng.choice(list(Emotion))
        else:
            emotion = target
        valence = min(9, max(1, _VALENCE[emotion] + self._rng.randint(-1, 1)))
        arousal = self._rng.randint(3, 8)
        return Rating(emotion, valence, arousal)
