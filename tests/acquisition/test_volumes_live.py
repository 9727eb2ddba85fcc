"""A live session striped over two volumes: every frame read back wherever it went,
and a second volume that fills up (a real tmpfs) or disappears mid-session leaving a
readable session whose faults say so, its frames taken over by the first volume."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmmelab.analysis.check import check_session
from mmmelab.config import LabConfig
from mmmelab.storage import open_session
from mmmelab.storage.consolidate import consolidate
from tests.acquisition.test_failure_paths import camera_frames, recording, run_until, timed_stop
from tests.helpers import tmpfs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def striped(lab: LabConfig, second: Path) -> LabConfig:
    """``lab`` with its frames striped over its data root and ``second``, in small chunks."""
    return dataclasses.replace(lab, volumes=(lab.data_root, second), frames_per_chunk=30)


def volume_faults(folder: Path) -> list[str]:
    with open_session(folder) as s:
        return [f["detail"].decode() for f in s.faults if f["kind"] == b"volume_lost"]


def camera_problems(report: dict) -> list[str]:
    return [p for p in report["problems"] if "camera" in p or "frame" in p]


def assert_every_frame_in_order(folder: Path) -> np.ndarray:
    """Every grabbed frame is on disk exactly once, in order; returns the volume of each."""
    with open_session(folder) as s:
        cam = s.streams["camera"]
        index = cam.journal["index"]
        assert np.array_equal(index, np.arange(len(index)))
        acq = cam.journal["acq_nframe"].astype(np.int64)
        assert np.all(np.diff(acq) == 1)  # no frame lost
        store = cam.frames
        for i in range(0, len(store), 7):  # each readable (bytes on its volume)
            assert store[i].shape == (store.height, store.width)
        assert not store.missing
        grabbed = s.manifest["telemetry"]["camera"]["frames"]
        assert len(index) == grabbed
        return np.asarray(cam.journal["volume"])


def test_a_striped_session_puts_every_other_chunk_on_the_second_volume(
    small_lab, tiny_protocol, tmp_path
):
    lab = striped(small_lab, tmp_path / "vol1")
    with recording(lab, tiny_protocol, tmp_path / "out") as engine:
        assert run_until(engine, lambda: camera_frames(engine) > 400, 15)
        tel = engine.telemetry().camera
        assert tel is not None
        folder, stop_s = timed_stop(engine)
    assert [v.volume for v in tel.volumes] == [0, 1]
    assert all(v.in_stripe and v.free_bytes > 0 for v in tel.volumes)
    assert stop_s < 2.0
    volumes = assert_every_frame_in_order(folder)
    chunks = np.arange(len(volumes)) // 30
    assert np.array_equal(volumes, chunks % 2)  # round-robin by chunk, nothing moved
    second = tmp_path / "vol1" / folder.name / "camera"
    assert sorted(p.name for p in second.glob("frames-*.raw"))[:2] == [
        "frames-00001.raw",
        "frames-00003.raw",
    ]
    report = check_session(folder)
    assert not camera_problems(report), report["problems"]  # (stopped early: aborted)
    cam = report["streams"]["camera"]
    assert [v["frames"] for v in cam["volumes"]] == np.bincount(volumes).tolist()
    assert all(v["present"] for v in cam["volumes"])
    # gathered into one folder, every frame the same
    consolidate(folder, tmp_path / "gathered")
    with open_session(folder) as a, open_session(tmp_path / "gathered" / folder.name) as b:
        fa, fb = a.streams["camera"].frames, b.streams["camera"].frames
        assert len(fa) == len(fb) and len(fb.volumes) == 1
        assert all(np.array_equal(fa[i], fb[i]) for i in range(0, len(fa), 5))


@pytest.fixture
def small_volume(tmp_path) -> Iterator[Path]:
    """A 3 MB tmpfs: a second volume that fills after about 90 frames of 32 kB."""
    with tmpfs(tmp_path / "small-volume", "3m") as mnt:
        yield mnt


def test_a_second_volume_that_fills_leaves_the_stripe_and_loses_no_frame(
    small_lab, tiny_protocol, tmp_path, small_volume
):
    lab = striped(small_lab, small_volume)
    with recording(lab, tiny_protocol, tmp_path / "out") as engine:
        writer = engine.recording.pipeline.writer
        assert run_until(engine, lambda: bool(writer.lost_volumes), 20), "the volume never filled"
        grabbed = camera_frames(engine)
        assert run_until(engine, lambda: camera_frames(engine) > grabbed + 300, 10)
        assert engine.health.fatal is None  # the session goes on
        tel = engine.telemetry().camera
        assert tel is not None
        folder, _ = timed_stop(engine)
    assert "left the stripe (disk full)" in tel.warning
    assert [v.in_stripe for v in tel.volumes] == [True, False]
    [fault] = volume_faults(folder)
    assert fault.startswith("volume 1 (") and "disk full" in fault
    volumes = assert_every_frame_in_order(folder)
    on_small = int((volumes == 1).sum())
    assert 0 < on_small < 100  # what fitted stays there, the rest went to volume 0
    assert volumes[-1] == 0
    report = check_session(folder)
    assert not camera_problems(report), report["problems"]  # (stopped early: aborted)
    assert any("disk full" in w for w in report["warnings"])


def test_a_second_volume_that_disappears_leaves_a_readable_session_saying_what_is_gone(
    small_lab, tiny_protocol, tmp_path
):
    lab = striped(small_lab, tmp_path / "vol1")
    with recording(lab, tiny_protocol, tmp_path / "out") as engine:
        assert run_until(engine, lambda: camera_frames(engine) > 200, 15)
        (tmp_path / "vol1").rename(tmp_path / "vol1-unplugged")
        writer = engine.recording.pipeline.writer
        assert run_until(engine, lambda: bool(writer.lost_volumes), 5), "the loss went unseen"
        grabbed = camera_frames(engine)
        assert run_until(engine, lambda: camera_frames(engine) > grabbed + 150, 10)
        folder, _ = timed_stop(engine)
    [fault] = volume_faults(folder)
    assert "is gone" in fault or "No such file" in fault
    with open_session(folder) as s:
        cam = s.streams["camera"]
        [(why, n)] = cam.frames.missing.items()
        assert why.startswith("volume 1 (") and why.endswith("is gone") and n >= 60
        assert any(why in p for p in s.problems)
        assert cam.count > 300 and set(cam.journal["volume"].tolist()) == {0}
        journalled = cam.frames.journal_records
    report = check_session(folder)
    assert any("is gone" in p for p in camera_problems(report))  # which frames, and why
    assert [v["present"] for v in report["streams"]["camera"]["volumes"]] == [True, False]
    assert journalled == s.manifest["telemetry"]["camera"]["frames"]
