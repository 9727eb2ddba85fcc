"""Helpers shared by the tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def collect(driver: Any, samples: int, timeout_s: float = 10.0) -> list:
    """Read blocks from a signal driver until ``samples`` samples arrived."""
    blocks: list = []
    deadline = time.monotonic() + timeout_s
    while sum(len(b.data) for b in blocks) < samples:
        assert time.monotonic() < deadline, "no data"
        blocks.extend(driver.read(0.2))
    return blocks


def contiguous(blocks: list) -> bool:
    """Whether each block starts where the one before ended (no gap, no overlap)."""
    starts = [b.first_sample for b in blocks]
    ends = [b.first_sample + len(b.data) for b in blocks]
    return starts[1:] == ends[:-1]


def wait_until(cond: Any, timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Poll ``cond()`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:g} s"
        time.sleep(0.01)


def camera_frames(engine: Any) -> int:
    """Frames the engine's camera recorder has grabbed so far."""
    camera = engine.telemetry().camera
    return camera.frames if camera is not None else 0


def simulate_short_session(root: Any, seed: int = 5, minutes: float = 0.6) -> Any:
    """A small simulated session with 12 s clips (so it holds clip markers), two
    dropped frames and physiology, aligned: for the coding tool's tests."""

    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session

    proto = short_trials(12.0, 2.0)
    plan = StudyPlan(participants=1, minutes=minutes, dropped_frames=1, me_per_clip=2.0,
                     seed=seed)  # fmt: skip
    folder = simulate_study(root, plan, protocol=proto)[0]
    align_session(folder)
    return folder


@contextlib.contextmanager
def tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mnt``: a disk that really fills up (the test is
    skipped where mounting is not allowed); unmounted afterwards."""
    from mmmelab.faultcases import mount_small_disk, unmount

    refused = mount_small_disk(mnt, size)
    if refused:
        pytest.skip(f"cannot mount a small tmpfs here: {refused}")
    try:
        yield mnt
    finally:
        unmount(mnt)
