"""The event-code table shared by the trigger box (TTL byte) and the LSL marker stream.

Every code is one byte (1-255; 0 is "line low"). The same code goes out as a TTL
level on the trigger box, which the camera GPI, the SynAmps event channel and the
MP160 digital inputs all see, and as an LSL string marker ``"<code>|<NAME>|<label>"``.

=====  ===================  ====================================================
code   name                 when
=====  ===================  ====================================================
1      SESSION_START        recording has started on every device
2      SESSION_END          last event before devices stop
3      PRACTICE_START       the practice block begins (not analysed)
4      PRACTICE_END         the practice block is over
10     TRIAL_START          a trial begins; the "press Space" screen is shown
11     CLIP_ONSET           first frame of the emotional clip is shown
12     CLIP_OFFSET          the clip has ended
13     RATING_ONSET         the self-report screen is shown
14     RATING_RESPONSE      the participant submitted the rating in time
15     RATING_MISSED        the rating time limit ran out (answer recorded as missed)
16     NEUTRAL_ONSET        the neutral (relaxation) clip starts
17     NEUTRAL_OFFSET       the neutral clip has ended; the trial is over
20     REMINDER_ON          the CMRR reminder is shown on the auxiliary display
21     REMINDER_OFF         the CMRR reminder is hidden
30     NOTE                 the experimenter marked a moment (free text in the label)
31     PAUSE                the experimenter paused the session
32     RESUME               the session continues after a pause
33     ABORT                the experimenter aborted the session
200    SYNC                 periodic sync pulse, keeps alignment through quiet stretches
=====  ===================  ====================================================

Pulses are host-timed (``pulse_ms``, at least two camera frame periods) and separated
by ``gap_ms`` so that a camera sampling its input once per frame sees every code.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

import numpy as np


class EventCode(enum.IntEnum):
    """The trigger codes every stream receives (the session's event-code table)."""

    SESSION_START = 1
    SESSION_END = 2
    PRACTICE_START = 3
    PRACTICE_END = 4
    TRIAL_START = 10
    CLIP_ONSET = 11
    CLIP_OFFSET = 12
    RATING_ONSET = 13
    RATING_RESPONSE = 14
    RATING_MISSED = 15
    NEUTRAL_ONSET = 16
    NEUTRAL_OFFSET = 17
    REMINDER_ON = 20
    REMINDER_OFF = 21
    NOTE = 30
    PAUSE = 31
    RESUME = 32
    ABORT = 33
    SYNC = 200


#: What each code means (the table above), for the sidecars of exports.
MEANING: dict[EventCode, str] = {
    EventCode.SESSION_START: "recording has started on every device",
    EventCode.SESSION_END: "last event before the devices stop",
    EventCode.PRACTICE_START: "the practice block begins (not analysed)",
    EventCode.PRACTICE_END: "the practice block is over",
    EventCode.TRIAL_START: "a trial begins; the 'press Space' screen is shown",
    EventCode.CLIP_ONSET: "first frame of the emotional clip is shown",
    EventCode.CLIP_OFFSET: "the clip has ended",
    EventCode.RATING_ONSET: "the self-report screen is shown",
    EventCode.RATING_RESPONSE: "the participant submitted the rating in time",
    EventCode.RATING_MISSED: "the rating time limit ran out",
    EventCode.NEUTRAL_ONSET: "the neutral (relaxation) clip starts",
    EventCode.NEUTRAL_OFFSET: "the neutral clip has ended; the trial is over",
    EventCode.REMINDER_ON: "the CMRR reminder is shown on the auxiliary display",
    EventCode.REMINDER_OFF: "the CMRR reminder is hidden",
    EventCode.NOTE: "the experimenter marked a moment (free text)",
    EventCode.PAUSE: "the experimenter paused the session",
    EventCode.RESUME: "the session continues after a pause",
    EventCode.ABORT: "the experimenter aborted the session",
    EventCode.SYNC: "periodic sync pulse (keeps alignment through quiet stretches)",
}
assert set(MEANING) == set(EventCode)

#: Codes the experimenter or the bus adds on top of the paradigm's own sequence.
UNPLANNED = frozenset(
    {
        EventCode.REMINDER_ON,
        EventCode.REMINDER_OFF,
        EventCode.NOTE,
        EventCode.PAUSE,
        EventCode.RESUME,
        EventCode.SYNC,
    }
)

#: One step of a plan: the codes acceptable at that point.
PlanStep = frozenset[EventCode]

_RATING_END: PlanStep = frozenset({EventCode.RATING_RESPONSE, EventCode.RATING_MISSED})


def _one(code: EventCode) -> PlanStep:
    return frozenset({code})


def trial_plan() -> list[PlanStep]:
    """The codes one trial emits, in order."""
    return [
        _one(EventCode.TRIAL_START),
        _one(EventCode.CLIP_ONSET),
        _one(EventCode.CLIP_OFFSET),
        _one(EventCode.RATING_ONSET),
        _RATING_END,
        _one(EventCode.NEUTRAL_ONSET),
        _one(EventCode.NEUTRAL_OFFSET),
    ]


def session_plan(n_practice: int, n_trials: int) -> list[PlanStep]:
    """Every code a complete session of the paradigm emits, in order (unplanned codes aside)."""
    plan = [_one(EventCode.SESSION_START)]
    if n_practice:
        plan.append(_one(EventCode.PRACTICE_START))
        for _ in range(n_practice):
            plan += trial_plan()
        plan.append(_one(EventCode.PRACTICE_END))
    for _ in range(n_trials):
        plan += trial_plan()
    plan.append(_one(EventCode.SESSION_END))
    return plan


def match_plan(plan: Sequence[PlanStep], codes: Iterable[int]) -> int:
    """How many steps of ``plan`` the recorded ``codes`` fulfil, in order.

    Unplanned codes (sync, reminders, notes, pauses) are skipped. The count is the
    longest common subsequence of plan and codes, so one missing or spurious
    marker costs one step, not the rest of the session.
    """
    return common_subsequence(plan, [c for c in codes if c not in UNPLANNED])


def common_subsequence(steps: Sequence[Container[int]], seq: Sequence[int]) -> int:
    """Length of the longest in-order matching of ``steps`` (sets of codes) within ``seq``."""
    return _lcs_table(steps, seq)[-1][-1]


def common_subsequence_pairs(
    steps: Sequence[Container[int]], seq: Sequence[int]
) -> list[tuple[int, int]]:
    """Index pairs (step, position in ``seq``) of a longest in-order matching of ``steps``
    (each a set of the codes it accepts) within ``seq``; in order, the later match kept
    where several are equally long."""
    table = _lcs_table(steps, seq)
    pairs = []
    i, j = len(steps), len(seq)
    while i and j:
        if seq[j - 1] in steps[i - 1] and table[i][j] == table[i - 1][j - 1] + 1:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _lcs_table(steps: Sequence[Container[int]], seq: Sequence[int]) -> list[list[int]]:
    """The longest-common-subsequence table: [i][j] for the first i steps and j codes."""
    table = [[0] * (len(seq) + 1)]
    for step in steps:
        prev, row = table[-1], [0] * (len(seq) + 1)
        for j, code in enumerate(seq, start=1):
            row[j] = prev[j - 1] + 1 if code in step else max(prev[j], row[j - 1])
        table.append(row)
    return table


def code_onsets(levels: np.ndarray, prev_level: int = 0) -> np.ndarray:
    """Indices where ``levels`` (a trigger input's per-sample code) changes to a non-zero
    code; ``prev_level`` is the level before the first sample."""
    if not len(levels):
        return np.zeros(0, dtype=np.int64)
    prev = np.concatenate([[prev_level], levels[:-1]])
    return np.flatnonzero((levels != prev) & (levels != 0))


def trigger_levels(aux: Mapping[str, Any]) -> np.ndarray | None:
    """Per-sample code on a stream's trigger input, from its auxiliary arrays.

    ``trigger``: the 16-bit event word of an EEG amplifier, whose low byte is the
    stimulus code. ``digital``: one column per digital input line (bit i = line i).
    None when the stream has no trigger input. Accepts arrays or HDF5 datasets.
    """
    if "trigger" in aux:
        return np.asarray(aux["trigger"][()]).reshape(-1).astype(np.int64) & 0xFF
    if "digital" in aux:
        bits = np.asarray(aux["digital"][()]).astype(np.int64)
        codes: np.ndarray = (bits << np.arange(bits.shape[1])).sum(axis=1)
        return codes
    return None


def marker_text(code: EventCode, label: str = "") -> str:
    """The LSL marker string for a code: ``"<code>|<NAME>|<label>"``."""
    return f"{int(code)}|{code.name}|{label}"
