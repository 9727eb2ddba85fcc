"""The supervisor's decisions: the session's final status, a failed stop step, a fatal fault."""

from __future__ import annotations

import pytest

from mmmelab.acquisition.supervision import Supervisor
from mmmelab.storage.manifest import SessionStatus
from mmmelab.streams import FaultKind

pytestmark = pytest.mark.timeout(30)

C, A, F = SessionStatus.COMPLETE, SessionStatus.ABORTED, SessionStatus.FAILED


def _supervisor() -> tuple[Supervisor, list[tuple], list[int]]:
    faults: list[tuple] = []
    aborts: list[int] = []
    return Supervisor(lambda *row: faults.append(row), lambda: aborts.append(1)), faults, aborts


@pytest.mark.parametrize(
    ("requested", "complete", "recorder_failed", "expected"),
    [
        (None, True, False, C),  # the paradigm ran to its end
        (None, False, False, A),  # stopped early
        (None, True, True, F),  # a stream died in a session that looks complete
        (None, False, True, A),  # aborted anyway: the abort is the story
        (A, True, True, A),  # what the caller asked for stands
        (F, True, False, F),
    ],
)
def test_outcome_without_a_fatal_fault(requested, complete, recorder_failed, expected):
    health, _, _ = _supervisor()
    assert health.outcome(requested, complete, recorder_failed) is expected


def test_a_fatal_fault_fails_the_session_keeps_its_first_reason_and_aborts_once():
    health, faults, aborts = _supervisor()
    health.fail("disk full: camera frames could not be written to /x")
    health.fail("the signal writer failed")
    assert health.fatal == "disk full: camera frames could not be written to /x"
    assert aborts == [1]
    assert faults == [("session", FaultKind.FATAL, 1, health.fatal)]
    assert health.problems == [health.fatal]
    assert health.outcome(C, True, False) is F and health.outcome(None, False, False) is F


def test_a_fatal_fault_is_kept_even_when_recording_it_fails():
    def broken(*_):
        raise OSError("the signal writer is gone")

    health = Supervisor(broken, lambda: None)
    health.fail("the signal writer failed")
    assert health.fatal == "the signal writer failed"


def test_a_failed_stop_step_becomes_a_problem_and_the_next_steps_run(caplog):
    health, _, _ = _supervisor()

    def step(x):
        raise RuntimeError(f"bad {x}")

    assert health.safely("closing the trigger bus", step, 3) is None
    assert health.safely("final telemetry", lambda: {"ok": 1}) == {"ok": 1}
    assert health.problems == ["closing the trigger bus failed: RuntimeError('bad 3')"]
    assert "closing the trigger bus failed" in caplog.text
