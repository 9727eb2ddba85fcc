"""The recorder's failure paths: a full disk, a killed or stopped frame writer, a
recorder or marker listener that raises. Each case must end in a readable session
whose problems and counts say what was lost, and a stop within 2 s."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mmmelab.acquisition.engine import SessionEngine
from mmmelab.analysis.check import check_session
from mmmelab.faultcases import SMALL_DISK
from mmmelab.participant import ParticipantInfo
from mmmelab.storage import open_session
from mmmelab.storage.manifest import SessionStatus
from tests.helpers import tmpfs

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def recording(lab, protocol, out: Path) -> Iterator[SessionEngine]:
    """A session that runs until the test stops it (no simulated participant)."""
    with SessionEngine(lab, protocol, ParticipantInfo("P01"), out) as engine:
        engine.connect()
        engine.start(simulate_participant=False)
        yield engine


def run_until(engine: SessionEngine, cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        engine.step()
        if cond():
            return True
    return False


def timed_stop(engine: SessionEngine) -> tuple[Path, float]:
    t0 = time.monotonic()
    folder = engine.stop()
    assert folder is not None
    return folder, time.monotonic() - t0


def camera_frames(engine: SessionEngine) -> int:
    camera = engine.telemetry().camera
    assert camera is not None
    return camera.frames


def test_killed_frame_writer_is_replaced_and_loses_at_most_a_second(
    small_lab, tiny_protocol, tmp_path
):
    with recording(small_lab, tiny_protocol, tmp_path) as engine:
        writer = engine.recording.pipeline.writer
        assert run_until(engine, lambda: camera_frames(engine) > 150, 10)
        os.kill(writer.process.pid, signal.SIGKILL)
        assert run_until(engine, lambda: writer.restarts == 1, 5), "no new writer"
        grabbed = camera_frames(engine)
        assert run_until(engine, lambda: camera_frames(engine) > grabbed + 300, 10)
        folder, stop_s = timed_stop(engine)
    assert stop_s < 2.0
    with open_session(folder) as s:
        cam = s.streams["camera"]
        index = cam.journal["index"]
        assert np.array_equal(index, np.arange(len(index)))  # no duplicate, no hole on disk
        gaps, missing = cam.dropped()
        assert missing <= 150  # at most 1 s at 150 fps
        faults = [(f["kind"].decode(), f["detail"].decode()) for f in s.faults]
    assert any(k == "writer_restart" and "died" in d for k, d in faults)
    report = check_session(folder)
    assert report["streams"]["camera"]["dropped"] == missing  # counted, as it is
    assert any("frame writer" in w for w in report["warnings"])


def test_stopped_frame_writer_is_replaced_before_the_ring_overflows(
    small_lab, tiny_protocol, tmp_path
):
    with recording(small_lab, tiny_protocol, tmp_path) as engine:
        writer = engine.recording.pipeline.writer
        assert run_until(engine, lambda: camera_frames(engine) > 150, 10)
        stopped = writer.process
        os.kill(stopped.pid, signal.SIGSTOP)
        try:
            assert run_until(engine, lambda: writer.restarts == 1, 6), "stall not noticed"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped.pid, signal.SIGCONT)
        # ``restarts`` counts a restart when it begins; the replacement is in place once
        # it has started (imported, its preview kernel compiled) and is writing
        assert run_until(engine, lambda: writer.process is not stopped, 10), "no replacement"
        grabbed = camera_frames(engine)
        assert run_until(engine, lambda: camera_frames(engine) > grabbed + 150, 10)
        assert run_until(engine, lambda: writer.stats()["frames"] > grabbed, 10), "not writing"
        folder, stop_s = timed_stop(engine)
    assert stop_s < 2.0
    report = check_session(folder)
    assert report["streams"]["camera"]["dropped"] <= 150
    assert report["status"] == "aborted"


def test_an_exception_inside_a_recorder_fails_the_stream_not_silently(
    small_lab, tiny_protocol, tmp_path
):
    with recording(small_lab, tiny_protocol, tmp_path) as engine:
        physio = engine.devices.signal_drivers["physio"]
        assert run_until(engine, lambda: engine.recording.recorders["physio"].samples > 500, 10)
        read = physio.read

        def broken(timeout_s: float):
            raise ZeroDivisionError("a bug in the driver")

        physio.read = broken  # type: ignore[method-assign]
        assert run_until(
            engine, lambda: any("physio stopped" in p for p in engine.health.problems), 3
        ), "the engine did not notice the dead recorder within a second or so"
        physio.read = read  # type: ignore[method-assign]
        folder, _ = timed_stop(engine)
    with open_session(folder) as s:
        assert s.status is SessionStatus.ABORTED
        kinds = {(f["stream"].decode(), f["kind"].decode()) for f in s.faults}
    assert ("physio", "lost") in kinds
    report = check_session(folder)
    assert not report["ok"]
    assert any("ZeroDivisionError" in p for p in report["problems"])


def test_a_hung_acqknowledge_cannot_hold_the_save(small_lab, tiny_protocol, tmp_path):
    """A modal dialog in AcqKnowledge blocks every control call: markers to it time
    out (recorded), data flows on, and stop still saves within 2 s, naming the
    device that hung."""
    with recording(small_lab, tiny_protocol, tmp_path) as engine:
        assert run_until(engine, lambda: engine.recording.recorders["physio"].samples > 500, 10)
        engine.devices.simlab.acq.open_dialog(30.0)
        engine.mark("while the dialog is open")
        before = engine.recording.recorders["physio"].samples
        assert run_until(
            engine, lambda: engine.recording.recorders["physio"].samples > before + 3000, 10
        )
        folder, stop_s = timed_stop(engine)
    assert stop_s < 2.0
    report = check_session(folder)
    assert not report["ok"]
    assert report["streams"]["physio"]["dropped"] == 0
    assert any("closing the physio did not finish" in p for p in report["problems"])
    assert any("not placed" in p and "dialog" in p for p in report["problems"])


def test_a_failing_marker_listener_does_not_stop_later_pulses(small_lab, tiny_protocol, tmp_path):
    with recording(small_lab, tiny_protocol, tmp_path) as engine:
        calls = []

        def bad_listener(rec):
            calls.append(rec.code)
            raise RuntimeError("listener bug")

        engine.record.on_marker.append(bad_listener)
        for i in range(3):
            engine.mark(f"note {i}")
        assert run_until(engine, lambda: len(calls) >= 3, 5)
        folder, _ = timed_stop(engine)
    with open_session(folder) as s:
        labels = [m.decode() for m in s.markers["label"]]
    assert {"note 0", "note 1", "note 2"} <= set(labels)
    report = check_session(folder)
    assert any("listener" in p for p in report["problems"])


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 24 MB tmpfs: a disk that really fills up (needs the right to mount)."""
    with tmpfs(tmp_path / "small-disk", SMALL_DISK) as mnt:
        yield mnt


def test_full_disk_stops_the_session_as_failed_and_keeps_what_was_written(
    small_lab, tiny_protocol, small_disk, monkeypatch
):
    real = shutil.disk_usage
    # the pre-flight would rightly refuse this disk; let the session start anyway
    monkeypatch.setattr(
        "mmmelab.acquisition.diskcheck.shutil.disk_usage",
        lambda p: real(p)._replace(free=10**12) if Path(p) == small_disk else real(p),
    )
    with recording(small_lab, tiny_protocol, small_disk) as engine:
        assert run_until(engine, lambda: engine.health.fatal is not None, 30), "disk never filled"
        assert "disk full" in engine.health.fatal
        folder, stop_s = timed_stop(engine)
    assert stop_s < 2.0
    with open_session(folder) as s:  # readable, finalised (on the full disk), failed
        assert s.status is SessionStatus.FAILED
        on_disk = s.streams["camera"].count
        assert on_disk > 100
        assert "disk full" in s.manifest["failure"]
        grabbed = s.manifest["telemetry"]["camera"]["frames"]
    report = check_session(folder)
    assert not report["ok"]
    assert any("disk full" in p for p in report["problems"])
    # frames grabbed after the writer stopped are counted, not silently missing
    assert report["streams"]["camera"]["dropped"] >= grabbed - on_disk > 0
