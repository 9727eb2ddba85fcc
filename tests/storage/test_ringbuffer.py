"""The shared-memory frame ring and the preview kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmmelab.errors import LabError
from mmmelab.storage.frames import JOURNAL_DTYPE, PAGE, debayer_half
from mmmelab.storage.preview import PreviewBuffer, preview_shape, render
from mmmelab.storage.ringbuffer import FrameRing


@pytest.fixture
def ring():
    r = FrameRing.create(4, 1000, consumers=(True, False))
    yield r
    r.close()


def frame(i: int) -> np.ndarray:
    return np.full(1000, i, np.uint8)


def test_slots_are_page_aligned_and_frames_arrive_in_order(ring):
    assert ring.slot_bytes == PAGE and ring.slots.ctypes.data % PAGE == 0
    rec = np.zeros(1, JOURNAL_DTYPE)
    for i in range(3):
        rec["acq_nframe"] = i + 1
        assert ring.push(frame(i), rec)
    assert ring.pending(0) == 3 and ring.fill_frac(0) == 0.75
    view, meta = ring.get(0, 1)
    assert view[0] == 1 and meta["acq_nframe"][0] == 2
    ring.release(0, 2)
    assert ring.pending(0) == 1 and ring.high_water_frac(0) == 0.75
    seq, view, meta = ring.latest()
    assert seq == 2 and view[999] == 2 and ring.still_valid(seq)


def test_full_ring_drops_the_new_frame_and_counts_it(ring):
    for i in range(4):
        assert ring.push(frame(i))
    assert ring.claim() is None  # the writer is a whole ring behind
    assert not ring.push(frame(9))
    assert ring.overflow == 1 and ring.high_water_frac(0) == 1.0
    view, _ = ring.get(0, 0)
    assert view[0] == 0  # unwritten data was not overwritten
    ring.release(0)
    assert ring.push(frame(5)) and ring.get(0, 3)[0][0] == 5


def test_a_latest_only_consumer_never_holds_the_producer():
    r = FrameRing.create(4, 1000, consumers=(False,))
    try:
        for i in range(20):
            assert r.push(frame(i))
        seq, view, _ = r.latest()
        assert seq == 19 and view[0] == 19 and r.overflow == 0
        assert not r.still_valid(seq - 4)
    finally:
        r.close()


def test_another_process_attaches_by_name_and_the_owner_frees_it(ring):
    ring.push(frame(42))
    code = (
        "from mmmelab.storage.ringbuffer import FrameRing\n"
        f"r = FrameRing.attach({ring.name!r})\n"
        "v, m = r.get(0, 0); print(int(v[0]), r.n_slots); r.release(0); r.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "4"]
    assert ring.pending(0) == 0  # the other process's release is seen here
    name = ring.name
    ring.close()
    with pytest.raises(LabError, match="does not exist"):
        FrameRing.attach(name)


def test_preview_kernel_matches_the_numpy_debayer():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (64, 96), dtype=np.uint8)
    out = np.empty((*preview_shape(64, 96, 1), 3), np.uint8)
    render(raw, out, 1, "RGGB")
    ref = debayer_half(raw, "RGGB")
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    small = np.empty((*preview_shape(64, 96, 2), 3), np.uint8)
    render(raw, small, 2, "RGGB")
    assert small.shape == (16, 24, 3)
    expect = ref.astype(float).reshape(16, 2, 24, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - expect).max() <= 1.5


def test_preview_buffer_publishes_the_latest():
    buf = PreviewBuffer.create(8, 12)
    try:
        assert buf.latest() is None
        raw = np.zeros((32, 48), np.uint8)
        raw[1::2, 1::2] = 200  # blue pixels of an RGGB mosaic
        buf.publish(raw, 2, "RGGB", acq_nframe=17)
        seq, nframe, image = buf.latest()
        assert (seq, nframe) == (1, 17) and image.shape == (8, 12, 3)
        assert image[..., 2].min() == 200 and image[..., 0].max() == 0
    finally:
        buf.close()


def test_segments_are_named_for_their_owner_and_this_test_run(ring):
    """The name says product, run tag and creating process, so a leftover in /dev/shm is
    traced to its owner and another test run's segments are not judged as this one's."""
    from tests.conftest import SHM_TAG, _shm_segments

    name = ring.name.lstrip("/")
    assert name.startswith(f"mmme{SHM_TAG}_ring{os.getpid():x}_")
    assert name in _shm_segments()
    foreign = Path("/dev/shm") / f"mmmeother_ring1_{os.getpid():x}"
    foreign.write_bytes(b"")
    try:
        assert foreign.name not in _shm_segments()  # another run's: not ours to judge
    finally:
        foreign.unlink()
