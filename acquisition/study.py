"""A simulated study: complete sessions written faster than real time (``mmme simulate``).

Each session is written through the real writers - :class:`SessionWriter` (manifest,
``signals.h5`` by its writer process) and :class:`FrameWriter` (camera chunks and
journal) - from the simulated lab's models (``acquisition.simulation``): 64-channel
EEG, ECG/PPG/RSP/SKT/EDA, a small synthetic face, and the MMME paradigm's markers.
Every device has its own clock (offset and drift) and sees the shared trigger, so
``mmme align`` puts the session on the master clock exactly as it does a live one;
a simulated session then opens with :func:`mmmelab.storage.open_session` like a
recorded one.

The ground truth is in the manifest under ``simulation_truth``: every micro- and
macro-expression (onset, apex, offset on the master clock and as camera frames),
and whether this participant's heart rate responds to micro-expressions (it rises
by ``rise_bpm``, ``delay_s`` after the onset). The truth is also written as the
session's consensus annotation file by the caller (``mmme simulate``).

Runs in the caller's thread; the signal writer is its usual child process.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmmelab.acquisition.studysim import SessionSimulator
from mmmelab.config import LabConfig, load_lab, shipped
from mmmelab.errors import LabError
from mmmelab.protocol import Protocol, load_protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyPlan:
    """What to simulate. ``responders``: how many participants (the first ones) have the
    heart-rate response after micro-expressions; None = every other participant."""

    participants: int = 8
    minutes: float = 10.0
    camera_width: int = 64
    camera_height: int = 48
    fps: float = 150.0
    eeg_channels: int = 64
    rate_hz: float = 1000.0
    me_per_clip: float = 1.3
    mae_per_clip: float = 0.6
    responders: int | None = None
    seed: int = 1
    bad_eeg_channels: int = 1  # channels made noisy (for bad-channel detection)
    dropped_frames: int = 0  # places where the camera drops two frames
    hr_response_to: tuple[str, ...] = ("ME",)  # expression kinds the heart rate answers
    hr_response: tuple[float, float, float] | None = None  # rise bpm, delay s, width s
    hr_response_at: str = "onset"  # the delay counts from the expression's onset or apex
    min_gap_s: float = 6.0  # between expression onsets
    # emotion-specific physiology and EEG after each expression (0: none), scaling
    # synth.EMOTION_PHYSIO and the EEG's alpha/beta change (for recognition studies)
    emotion_scale: float = 0.0
    emotion_scale_eeg: float | None = None  # the EEG's own scale (None: emotion_scale)
    # each participant sees the clips in their own seeded order (counterbalanced), not
    # the protocol's one order: short sessions then cover every emotion
    order_per_participant: bool = False

    def __post_init__(self) -> None:
        if self.hr_response_at not in ("onset", "apex"):
            raise LabError(f"hr_response_at must be 'onset' or 'apex', not {self.hr_response_at!r}")

    def eeg_scale(self) -> float:
        return self.emotion_scale if self.emotion_scale_eeg is None else self.emotion_scale_eeg

    def responder(self, k: int) -> bool:
        if self.responders is None:
            return k % 2 == 0
        return k < self.responders


def short_trials(clip_s: float, neutral_s: float) -> Any:
    """The shipped MMME protocol with every clip ``clip_s`` and the neutral clip
    ``neutral_s`` long: short trials, so that a short simulated session holds several
    (the benchmarks and tests use it)."""
    from mmmelab.config import shipped
    from mmmelab.protocol import load_protocol

    proto = load_protocol(shipped("protocols", "mmme"))
    clips = tuple(dataclasses.replace(c, duration_s=clip_s) for c in proto.clips)
    neutral = dataclasses.replace(proto.neutral, duration_s=neutral_s)
    return dataclasses.replace(proto, clips=clips, neutral=neutral)


def repeated_clip_protocol(
    path: Path,
    n_clips: int,
    clip_s: float,
    neutral_s: float,
    seed: int,
    rating_limit_s: float = 25.0,
) -> Path:
    """Write a protocol file of ``n_clips`` happiness clips of ``clip_s`` in fixed order,
    each followed by the neutral clip of ``neutral_s`` (the demo clips; the benchmarks'
    sessions of a planned length). Returns ``path``."""
    clips = "".join(
        f'\n[[clips]]\nid = "clip{i}"\nemotion = "happiness"\nfile = "bench.mp4"\n'
        f"duration_s = {clip_s!r}\n"
        for i in range(n_clips)
    )
    path.write_text(
        f'[protocol]\nname = "{path.stem}"\nseed = {seed}\nstimuli_dir = "@demo"\n'
        f'order = "fixed"\n\n[timing]\nrating_limit_s = {rating_limit_s!r}\n\n'
        f'[neutral]\nid = "neutral"\nfile = "neutral.mp4"\nduration_s = {neutral_s!r}\n' + clips
    )
    return path


def simulate_study(
    out: Path,
    plan: StudyPlan,
    progress: Callable[[int, float], None] | None = None,
    lab: LabConfig | None = None,
    protocol: Protocol | None = None,
) -> list[Path]:
    """Write ``plan.participants`` complete sessions under ``out``; returns their folders.

    ``progress(participant, fraction)`` is called as each session is written.
    The caller aligns them (``mmme align``) and writes their annotations.
    """
    lab = lab or load_lab(shipped("labs", "simulated"))
    protocol = protocol or load_protocol(shipped("protocols", "mmme"))
    protocol = dataclasses.replace(protocol, practice=())
    folders = []
    report = progress or (lambda _k, _f: None)
    for k in range(plan.participants):
        sim = SessionSimulator(plan, lab, protocol, k, out)
        folders.append(sim.write(functools.partial(report, k)))
    return folders
