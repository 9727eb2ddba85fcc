"""Stimulus frame accounting (pure logic) and the live signal window."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.presentation import FrameSchedule
from mmmelab.streams import AudioState, StimulusKind


def _schedule(n_frames: int | None = 10) -> FrameSchedule:
    return FrameSchedule(
        fps=10.0, trial=2, practice=False, kind=StimulusKind.CLIP, clip_id="c", n_frames=n_frames
    )


def _show(s: FrameSchedule, now: float, newest: int) -> int | None:
    index = s.pick(now, newest)
    if index is not None:
        s.displayed(index, now)
    return index


def test_on_time_frames_are_neither_dropped_nor_repeated():
    s = _schedule()
    assert _show(s, 100.0, 0) == 0  # the first shown frame sets the onset
    assert s.onset == 100.0
    for k in range(1, 10):
        assert s.next_change(100.0 + (k - 1) / 10 + 0.001) == pytest.approx(100.0 + k / 10)
        assert _show(s, 100.0 + k / 10 + 0.001, 9) == k
    assert (s.shown, s.dropped, s.repeated) == (10, 0, 0)
    assert math.isinf(s.next_change(101.0))  # the last frame stays up
    rows = s.rows()
    assert list(rows["frame"]) == list(range(10))
    np.testing.assert_allclose(rows["t_due"], 100.0 + np.arange(10) / 10)
    assert len(s.rows()) == 0  # handed out once


def test_a_late_refresh_drops_the_frames_it_skipped():
    s = _schedule()
    _show(s, 0.0, 9)
    assert _show(s, 0.35, 9) == 3  # frames 1 and 2 were never on the screen
    assert s.dropped == 2
    assert s.late_max_s == pytest.approx(0.05)
    row = s.summary()[0]
    assert (row["frames_shown"], row["frames_dropped"]) == (2, 2)


def test_a_slow_decoder_repeats_once_per_due_frame():
    s = _schedule()
    _show(s, 0.0, 0)
    assert s.pick(0.1, 0) is None  # frame 1 due, not decoded: frame 0 stays up
    assert s.pick(0.102, 0) is None  # asking again for the same frame is not another repeat
    assert s.repeated == 1
    assert _show(s, 0.12, 1) == 1
    assert s.dropped == 0


def test_audio_start_is_relative_to_the_first_frame():
    s = _schedule()
    _show(s, 5.0, 0)
    s.audio_started(5.012)
    row = s.summary()[0]
    assert row["audio"] == AudioState.PLAYED
    assert row["audio_offset_ms"] == pytest.approx(12.0, abs=1e-3)


def test_signal_window_keeps_the_newest_seconds_across_the_wrap():
    w = SignalWindow(n_channels=3, rate_hz=100.0, seconds=1.0)
    for k in range(25):  # 25 blocks of 7 samples: wraps the 100-sample ring
        block = np.arange(k * 7, k * 7 + 7, dtype=np.float32)[:, None] * np.array([1, 10, 100])
        w.push(block, host_time=float(k))
    snap = w.snapshot(0.5, channels=[2, 0])
    assert snap.total == 175 and snap.t_last == 24.0
    np.testing.assert_array_equal(snap.data[:, 1], np.arange(125, 175))
    np.testing.assert_array_equal(snap.data[:, 0], np.arange(125, 175) * 100)
    assert snap.times()[-1] == 24.0
    assert snap.times()[0] == pytest.approx(24.0 - 49 / 100.0)
    assert w.snapshot(5.0).data.shape == (100, 3)  # never more than it holds


def test_a_shared_signal_window_reads_the_same_in_another_process():
    """The console in another process attaches by the window's ref and sees what was
    pushed, across the wrap, with the newest time; detaching frees nothing, the
    maker's close frees the memory."""
    import multiprocessing

    w = SignalWindow(n_channels=2, rate_hz=100.0, seconds=1.0, shared=True)
    try:
        for k in range(40):  # 280 samples through a 200-sample ring
            block = np.arange(k * 7, k * 7 + 7, dtype=np.float32)[:, None] * np.array([1, -1])
            w.push(block, host_time=100.0 + k)
        ref = w.ref
        assert ref is not None and ref.shown == 100
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            total, t_last, data = pool.apply(_read_shared_window, (ref,))
        assert total == 280 and t_last == 139.0
        np.testing.assert_array_equal(data[:, 0], np.arange(180, 280))
        np.testing.assert_array_equal(data[:, 1], -np.arange(180, 280))
        here = SignalWindow.attach(ref)
        here.close()  # a reader's close leaves the window to its maker
        assert w.snapshot(0.1).total == 280
    finally:
        w.close()
    assert SignalWindow(n_channels=1, rate_hz=10.0).ref is None  # not shared: no ref


def _read_shared_window(ref):
    window = SignalWindow.attach(ref)
    try:
        snap = window.snapshot(5.0)  # asks for more than it shows: gets the shown second
        return snap.total, snap.t_last, snap.data
    finally:
        window.close()
