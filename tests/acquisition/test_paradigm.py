"""The paradigm state machine, driven with explicit times (no clock, no threads)."""

from __future__ import annotations

import pytest

from mmmelab.acquisition.paradigm import Paradigm, ParadigmError, Phase, Rating
from mmmelab.acquisition.simulation import simulated_participant
from mmmelab.protocol import Emotion, Protocol
from mmmelab.sync.codes import EventCode, match_plan, session_plan

E = EventCode


def make(protocol: Protocol) -> tuple[Paradigm, list[tuple[EventCode, str]]]:
    emitted: list[tuple[EventCode, str]] = []
    return Paradigm(protocol, lambda code, label, t: emitted.append((code, label))), emitted


def test_one_trial_step_by_step(tiny_protocol):
    p, out = make(tiny_protocol)
    p.start(0.0)
    assert [c for c, _ in out] == [E.SESSION_START, E.PRACTICE_START, E.TRIAL_START]
    assert p.phase is Phase.WAIT_SPACE and p.next_deadline() is None  # waits indefinitely
    p.tick(1000.0)
    assert p.phase is Phase.WAIT_SPACE
    with pytest.raises(ParadigmError):
        p.rate(Rating(Emotion.FEAR, 5, 5), 1.0)
    p.space(10.0)
    assert p.phase is Phase.CLIP and out[-1] == (E.CLIP_ONSET, "practice")
    assert p.next_deadline() == pytest.approx(10.6)
    p.tick(10.59)
    assert p.phase is Phase.CLIP
    p.tick(10.6)
    assert p.phase is Phase.RATING
    assert [c for c, _ in out[-2:]] == [E.CLIP_OFFSET, E.RATING_ONSET]
    assert p.next_deadline() == pytest.approx(35.6)  # 25 s limit
    with pytest.raises(ParadigmError, match="valence 0 is outside 1-9"):
        p.rate(Rating(Emotion.FEAR, 0, 5), 11.0)
    p.rate(Rating(Emotion.FEAR, 3, 7), 12.6)
    assert p.phase is Phase.NEUTRAL
    assert out[-2] == (E.RATING_RESPONSE, "fear v3 a7") and out[-1][0] is E.NEUTRAL_ONSET
    trial = p.results[0]
    assert trial.practice and trial.response_time_s == pytest.approx(2.0)
    assert trial.clip_onset == 10.0 and trial.rating_onset == pytest.approx(10.6)
    p.tick(13.1)
    assert [c for c, _ in out[-3:]] == [E.NEUTRAL_OFFSET, E.PRACTICE_END, E.TRIAL_START]
    assert p.phase is Phase.WAIT_SPACE and not p.results[-1].practice


def test_missed_rating_is_recorded_as_missed(tiny_protocol):
    p, out = make(tiny_protocol)
    done = []
    p.on_trial_done.append(done.append)
    p.start(0.0)
    p.space(1.0)
    p.tick(1.6)
    p.tick(1.6 + 25.0)
    assert out[-2][0] is E.RATING_MISSED and out[-1][0] is E.NEUTRAL_ONSET
    # the neutral clip starts when the limit ran out, not when tick was called
    assert p.next_deadline() == pytest.approx(1.6 + 25.0 + 0.5)
    p.tick(100.0)
    assert done and done[0].missed and done[0].rating is None


def test_a_whole_session_emits_exactly_the_plan(tiny_protocol):
    p, out = make(tiny_protocol)
    sim = simulated_participant(p, seed=1, miss_rate=0.5)
    t = 0.0
    p.start(t)
    while p.phase is not Phase.DONE:
        t += 0.01
        p.tick(t)
        sim.act(t)
        assert t < 500
    codes = [c for c, _ in out]
    plan = session_plan(1, 2)
    assert len(codes) == len(plan) == 2 + 2 + 3 * 7
    assert all(code in step for code, step in zip(codes, plan, strict=True))
    assert match_plan(plan, codes) == len(plan)
    assert [r.clip.id for r in p.results] == ["practice", *tiny_protocol.trial_order]


def test_abort_ends_the_session_with_abort_and_end(tiny_protocol):
    p, out = make(tiny_protocol)
    p.start(0.0)
    p.space(1.0)
    p.abort(1.2)
    assert p.phase is Phase.ABORTED
    assert [c for c, _ in out[-2:]] == [E.ABORT, E.SESSION_END]
    p.abort(2.0)
    assert out[-1][0] is E.SESSION_END and len([c for c, _ in out if c is E.ABORT]) == 1


def test_plan_matching_counts_missing_and_ignores_extras():
    plan = session_plan(0, 2)
    full = [next(iter(step)) for step in plan]
    assert match_plan(plan, full) == len(plan)
    noisy = [E.SYNC, *full[:5], E.REMINDER_ON, E.NOTE, *full[5:], E.SYNC]
    assert match_plan(plan, noisy) == len(plan)
    missing_one = full[:3] + full[4:]
    assert match_plan(plan, missing_one) == len(plan) - 1
    spurious = full[:3] + [E.CLIP_ONSET, E.CLIP_ONSET] + full[3:]
    assert match_plan(plan, spurious) == len(plan)
    assert match_plan(plan, []) == 0


def test_pause_holds_before_the_next_trial_and_resume_goes_on(tiny_protocol):
    p, emitted = make(tiny_protocol)
    p.start(0.0)
    p.space(1.0)
    p.pause(1.5)  # during the clip: takes effect when the trial is over
    assert p.pause_pending and not p.paused
    p.tick(1.0 + 0.6)  # clip over -> rating
    p.rate(Rating(Emotion.HAPPINESS, 5, 5), 2.0)
    p.tick(10.0)  # neutral over -> next trial's "press Space", held
    assert p.phase is Phase.WAIT_SPACE and p.paused
    assert emitted[-1][0] is EventCode.PAUSE
    with pytest.raises(ParadigmError):
        p.space(11.0)  # Space does nothing while paused
    p.resume(12.0)
    assert not p.paused and emitted[-1][0] is EventCode.RESUME
    p.space(12.5)
    assert p.phase is Phase.CLIP
