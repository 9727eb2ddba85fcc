"""The timeline of a simulated session (``mmme simulate``): the paradigm's trials
with the micro- and macro-expressions placed in them, every device's clock (offset
and drift) and the trigger code a stream sees at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmmelab.protocol import Protocol
from mmmelab.sync.codes import EventCode

if TYPE_CHECKING:
    from mmmelab.acquisition.study import StudyPlan

logger = logging.getLogger(__name__)

EMOTIONS = ("happiness", "surprise", "sadness", "fear", "anger", "disgust", "contempt")
BLOCK_S = 0.1  # samples per signal block, as the live drivers deliver them
MASTER_START_S = 5000.0  # master clock (pylsl.local_clock) at the first sample
PULSE_S, GAP_S = 0.02, 0.02  # trigger pulse width and spacing (as the lab config)


@dataclass
class Clock:
    """A device clock: device time = (master - start) * (1 + drift) + offset."""

    start_master: float
    offset_s: float
    drift_ppm: float

    def device(self, master: np.ndarray | float) -> Any:
        return (np.asarray(master) - self.start_master) * (
            1 + self.drift_ppm * 1e-6
        ) + self.offset_s

    def master(self, device: np.ndarray | float) -> Any:
        return (np.asarray(device) - self.offset_s) / (
            1 + self.drift_ppm * 1e-6
        ) + self.start_master


@dataclass
class Timeline:
    """A simulated session's plan: markers, trials and expressions on the master clock (s)."""

    markers: list[tuple[int, float, str]]  # (code, t_on master, label)
    trials: list[dict[str, Any]]
    expressions: list[dict[str, Any]]  # kind, onset, apex, offset (master s), emotion, trial
    end_s: float


def place(
    rng: np.random.Generator, lo: float, hi: float, n: int, taken: list[float], gap: float = 6.0
) -> list[float]:
    """Up to ``n`` times in [``lo``, ``hi``) at least ``gap`` s from each other and from
    ``taken`` (which they are added to), in order."""
    out: list[float] = []
    for _ in range(50 * max(n, 1)):
        if len(out) >= n:
            break
        t = float(rng.uniform(lo, hi))
        if all(abs(t - u) > gap for u in [*taken, *out]):
            out.append(t)
    return sorted(out)


def plan_timeline(plan: StudyPlan, protocol: Protocol, rng: np.random.Generator) -> Timeline:
    """Markers, trials and expressions of one session on the master clock."""
    t = MASTER_START_S + 1.0
    end = MASTER_START_S + plan.minutes * 60.0 - 2.0
    markers: list[tuple[int, float, str]] = [(EventCode.SESSION_START, t, "")]
    trials: list[dict[str, Any]] = []
    expressions: list[dict[str, Any]] = []
    order = list(protocol.trial_order)
    if plan.order_per_participant:
        order = [order[i] for i in rng.permutation(len(order))]
    neutral = protocol.neutral.duration_s
    k = 0
    t += 1.0
    while True:
        clip = protocol.clip(order[k % len(order)])
        rating_s = float(rng.uniform(3.0, 9.0))
        if t + 1.0 + clip.duration_s + rating_s + neutral + 1.0 > end:
            break
        t_space = t + float(rng.uniform(0.5, 2.0))
        onset, offset = t_space + 0.05, t_space + 0.05 + clip.duration_s
        markers += [
            (EventCode.TRIAL_START, t, clip.id),
            (EventCode.CLIP_ONSET, onset, clip.id),
            (EventCode.CLIP_OFFSET, offset, clip.id),
            (EventCode.RATING_ONSET, offset + 0.1, clip.id),
            (EventCode.RATING_RESPONSE, offset + 0.1 + rating_s, clip.id),
            (EventCode.NEUTRAL_ONSET, offset + 0.3 + rating_s, ""),
            (EventCode.NEUTRAL_OFFSET, offset + 0.3 + rating_s + neutral, ""),
        ]
        target = clip.emotion.value if clip.emotion else "others"
        chosen = target if rng.random() < 0.7 else EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        trials.append(
            {
                "index": k,
                "clip_id": clip.id,
                "target": target,
                "chosen": chosen,
                "valence": int(rng.integers(1, 10)),
                "arousal": int(rng.integers(1, 10)),
                "rt": rating_s,
                "clip_onset": onset,
                "clip_offset": offset,
                "rating_onset": offset + 0.1,
            }
        )
        taken: list[float] = []
        n_me = int(rng.poisson(plan.me_per_clip))
        for tm in place(rng, onset + 3.0, offset - 3.0, n_me, taken, plan.min_gap_s):
            taken.append(tm)
            dur = float(rng.uniform(0.15, 0.5))
            expressions.append(
                {
                    "kind": "ME",
                    "onset": tm,
                    "apex": tm + dur * float(rng.uniform(0.3, 0.6)),
                    "offset": tm + dur,
                    "emotion": target,
                    "trial": k,
                }
            )
        for tm in place(
            rng,
            onset + 3.0,
            offset - 3.0,
            int(rng.poisson(plan.mae_per_clip)),
            taken,
            plan.min_gap_s,
        ):
            taken.append(tm)
            dur = float(rng.uniform(0.6, 4.0))
            expressions.append(
                {
                    "kind": "MaE",
                    "onset": tm,
                    "apex": tm + dur * 0.4,
                    "offset": tm + dur,
                    "emotion": target,
                    "trial": k,
                }
            )
        t = offset + 0.3 + rating_s + neutral + 0.5
        k += 1
    markers.append((EventCode.SESSION_END, end, ""))
    sync_t = MASTER_START_S + 3.5
    while sync_t < end:
        markers.append((EventCode.SYNC, sync_t, ""))
        sync_t += 5.0
    markers.sort(key=lambda m: m[1])
    # keep pulses apart, as the bus does (a code never overlaps the previous one)
    spaced: list[tuple[int, float, str]] = []
    for code, tm, label in markers:
        if spaced and tm < spaced[-1][1] + PULSE_S + GAP_S:
            tm = spaced[-1][1] + PULSE_S + GAP_S
        spaced.append((code, tm, label))
    expressions.sort(key=lambda e: e["onset"])
    return Timeline(spaced, trials, expressions, end + 1.0)


def trigger_code(master_t: np.ndarray, on: np.ndarray, codes: np.ndarray, latency: float) -> Any:
    """The code on the trigger lines at each master time (0 between pulses)."""
    idx = np.searchsorted(on + latency, master_t, side="right") - 1
    level = np.zeros(len(master_t), np.int64)
    ok = idx >= 0
    high = ok & (master_t < on[np.clip(idx, 0, None)] + latency + PULSE_S)
    level[high] = codes[idx[high]]
    return level
