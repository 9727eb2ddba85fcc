"""The protocol: the paradigm a session runs, loaded from TOML (:func:`load_protocol`).

Its stimulus clips with their target emotion, the practice block, the trial order
(fixed, or shuffled with the protocol's seed) and the phase durations. The loader
returns frozen dataclasses and raises :class:`~mmmelab.errors.ConfigError` naming
the file, the dotted key and what is allowed; ``Protocol.to_dict`` is the snapshot
each session keeps in its manifest. A base module: it imports no layer.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmmelab.errors import ConfigError
from mmmelab.tomlcheck import Table, jsonable, load_toml, read_settings, resolve_dir, setting

DEMO_STIMULI = "@demo"  # stimuli_dir of the protocols that play the generated demo clips


class Emotion(enum.StrEnum):
    """The seven target emotions of the MMME paradigm."""

    HAPPINESS = "happiness"
    SURPRISE = "surprise"
    SADNESS = "sadness"
    FEAR = "fear"
    ANGER = "anger"
    DISGUST = "disgust"
    CONTEMPT = "contempt"


@dataclass(frozen=True)
class Clip:
    """One stimulus clip. ``emotion`` is None for practice and neutral clips."""

    id: str
    file: str
    duration_s: float
    emotion: Emotion | None = None


@dataclass(frozen=True)
class Timing:
    """The paradigm's time limits (s): for the rating, and for pressing Space (0: none)."""

    rating_limit_s: float = setting(25.0, lo=1.0, hi=600.0)
    # 0 = wait for the participant indefinitely
    wait_space_limit_s: float = setting(0.0, lo=0.0, hi=3600.0)


@dataclass(frozen=True)
class Protocol:
    """A paradigm: practice block, then ``trials`` in a fixed or seeded random order."""

    name: str
    seed: int
    stimuli_dir: str
    timing: Timing
    clips: tuple[Clip, ...]
    practice: tuple[Clip, ...]
    neutral: Clip
    trial_order: tuple[str, ...]
    source_file: str = ""

    def clip(self, clip_id: str) -> Clip:
        for c in self.clips:
            if c.id == clip_id:
                return c
        raise KeyError(clip_id)

    def trials(self) -> list[Clip]:
        """The main-block clips in presentation order (practice excluded)."""
        return [self.clip(cid) for cid in self.trial_order]

    def planned_duration_s(self, response_s: float | None = None) -> float:
        """Upper bound of the session length, for the pre-flight disk check."""
        rating = self.timing.rating_limit_s if response_s is None else response_s
        per_trial = [
            c.duration_s + rating + self.neutral.duration_s
            for c in (*self.practice, *self.trials())
        ]
        return sum(per_trial) + 5.0 * len(per_trial) + 10.0

    def all_clips(self) -> list[Clip]:
        """Every clip the protocol plays: practice, main block, the neutral clip."""
        return [*self.practice, *self.clips, self.neutral]

    def stimuli_path(self, stimuli_root: Path, demo_dir: Path) -> Path:
        if self.stimuli_dir == DEMO_STIMULI:
            return demo_dir
        return resolve_dir(stimuli_root, self.stimuli_dir)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def _clip(t: Table, emotion_required: bool) -> Clip:
    cid = t.text("id")
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,32}", cid):
        raise t.error("id", f"is {cid!r}; use 1-32 letters, digits, '_' or '-'")
    file = t.text("file")
    duration = t.number("duration_s", lo=0.0, hi=3600.0, lo_open=True)
    emotion: Emotion | None = None
    if emotion_required or t.has("emotion"):
        allowed = [e.value for e in Emotion]
        emotion = Emotion(t.text("emotion", choices=allowed))
    t.done()
    return Clip(id=cid, file=file, duration_s=duration, emotion=emotion)


def load_protocol(path: Path | str) -> Protocol:
    """Load and validate a protocol file; the trial order is fixed here (seeded)."""
    path = Path(path)
    top = Table(path, load_toml(path))
    head = top.table("protocol", required=True)
    name = head.text("name")
    seed = head.integer("seed", 0, lo=0)
    stimuli_dir = head.text("stimuli_dir")
    order_mode = head.text("order", "random", choices=["random", "fixed"])
    n_trials = head.integer("trials", 0, lo=0, hi=10_000)
    head.done()
    timing = read_settings(Timing, top.table("timing"))
    clips = tuple(_clip(t, emotion_required=True) for t in top.tables("clips", required=True))
    if not clips:
        raise ConfigError(str(path), "clips", "must list at least one clip ([[clips]])")
    practice = tuple(_clip(t, emotion_required=False) for t in top.tables("practice"))
    neutral = _clip(top.table("neutral", required=True), emotion_required=False)
    top.done()
    ids = [c.id for c in (*clips, *practice, neutral)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(str(path), "clips", f"clip ids must be unique; repeated: {dupes}")
    if n_trials and n_trials != len(clips):
        raise ConfigError(
            str(path),
            "protocol.trials",
            f"is {n_trials} but {len(clips)} clips are listed; each clip is shown "
            f"once, so list exactly {n_trials} clips (or drop the key)",
        )
    order = [c.id for c in clips]
    if order_mode == "random":
        random.Random(seed).shuffle(order)
    return Protocol(
        name=name,
        seed=seed,
        stimuli_dir=stimuli_dir,
        timing=timing,
        clips=clips,
        practice=practice,
        neutral=neutral,
        trial_order=tuple(order),
        source_file=str(path),
    )
