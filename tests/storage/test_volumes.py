"""Frames striped over several volumes: read back frame by frame wherever each one
is, a lost volume named with the frames it took, and ``mmme consolidate``."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mmmelab.errors import LabError
from mmmelab.storage import open_session
from mmmelab.storage.frames import JOURNAL_DTYPE, FrameGeometry, FrameWriter
from mmmelab.storage.framestore import FrameStore
from tests.helpers import simulate_short_session, tmpfs

pytestmark = pytest.mark.timeout(120)


def _frame(i: int) -> np.ndarray:
    return (np.arange(10 * 40, dtype=np.int64).reshape(10, 40) * 7 + i * 13).astype(np.uint8)


def test_frames_written_by_two_volume_writers_read_back_in_order(tmp_path: Path):
    cam, vol1 = tmp_path / "session" / "camera", tmp_path / "vol1" / "camera"
    geo = FrameGeometry(width=40, height=10, frames_per_chunk=5)
    w0 = FrameWriter(cam, geo)
    w1 = FrameWriter(vol1, geo, volume=1, journal_folder=cam)
    rec = np.zeros(1, JOURNAL_DTYPE)
    for i in range(33):  # chunk k on volume k % 2; frames 12..14 of chunk 2 taken over by 1
        rec["acq_nframe"] = i
        (w1 if (i // 5) % 2 or 12 <= i <= 14 else w0).append_at(i, _frame(i), rec)
    w0.close()
    w1.close()
    meta = json.loads((cam / "camera.json").read_text())
    (cam / "camera.json").write_text(json.dumps(meta | {"volumes": [".", str(vol1)]}))
    store = FrameStore(cam)
    assert len(store) == 33 and not store.missing
    for i in range(33):
        assert np.array_equal(store[i], _frame(i)), i
    assert list(store.journal["volume"][10:16]) == [0, 0, 1, 1, 1, 1]
    with store.blocks(0, None, 4) as blocks:
        got = [f for _, b in blocks for f in b.copy()]
    assert all(np.array_equal(g, _frame(i)) for i, g in enumerate(got)) and len(got) == 33
    store.close()
    shutil.rmtree(tmp_path / "vol1")  # the volume is gone
    lost = FrameStore(cam)
    assert len(lost) == 33 - 15 - 3  # chunks 1, 3, 5 (15) and frames 12..14
    [(why, n)] = lost.missing.items()
    assert n == 18 and why.startswith("volume 1 (") and why.endswith("is gone")
    kept = [0, 1, 2, 3, 4, 10, 11, 20, 21, 22, 23, 24, 30, 31, 32]
    assert list(lost.journal["acq_nframe"]) == kept
    assert all(np.array_equal(lost[k], _frame(i)) for k, i in enumerate(kept))
    lost.close()


def _stripe(folder: Path, volume: Path) -> None:
    """Move every odd chunk of a recorded session to another volume, as a striped
    recording would have left it: its files there, its records in journal-v01.bin."""
    cam = folder / "camera"
    meta = json.loads((cam / "camera.json").read_text())
    journal = np.fromfile(cam / "journal.bin", JOURNAL_DTYPE)
    odd = (journal["index"] // meta["frames_per_chunk"]) % 2 == 1
    journal["volume"][odd] = 1
    volume.mkdir(parents=True)
    for f in sorted(cam.glob("frames-*.raw")):
        if int(f.stem.split("-")[1]) % 2:
            shutil.move(f, volume / f.name)
    journal[~odd].tofile(cam / "journal.bin")
    journal[odd].tofile(cam / "journal-v01.bin")
    (cam / "camera.json").write_text(json.dumps(meta | {"volumes": [".", str(volume)]}))


def _digests(folder: Path) -> list[str]:
    with open_session(folder) as s:
        frames = s.streams["camera"].frames
        return [hashlib.sha256(frames[i].tobytes()).hexdigest() for i in range(len(frames))]


@pytest.fixture(scope="module")
def striped(tmp_path_factory):
    root = tmp_path_factory.mktemp("striped")
    folder = simulate_short_session(root / "rec", minutes=0.25)
    want = _digests(folder)
    _stripe(folder, root / "vol1" / folder.name / "camera")
    return root, folder, want


def test_a_striped_session_opens_frame_for_frame(striped):
    root, folder, want = striped
    assert len(list((root / "vol1").rglob("frames-*.raw"))) >= 1
    assert _digests(folder) == want
    with open_session(folder) as s:
        assert not [p for p in s.problems if "camera" in p]


def test_check_names_a_lost_volume_and_the_frames_it_took(striped):
    from mmmelab.analysis.check import check_session

    root, folder, want = striped
    vol = root / "vol1"
    vol.rename(root / "vol1-away")  # the drive is gone
    try:
        report = check_session(folder)
        with open_session(folder) as s:
            kept = len(s.streams["camera"].frames)
    finally:
        (root / "vol1-away").rename(vol)
    assert not report["ok"] and 0 < kept < len(want)
    lost = [p for p in report["problems"] if "volume 1 (" in p and "is gone" in p]
    assert len(lost) == 1 and f"{len(want) - kept} journalled" in lost[0]


def test_consolidate_gathers_and_verifies(striped, tmp_path: Path):
    from mmmelab.cli import main

    root, folder, want = striped
    assert main(["consolidate", str(folder), "--to", str(tmp_path / "all")]) == 0
    moved = tmp_path / "all" / folder.name
    meta = json.loads((moved / "camera" / "camera.json").read_text())
    assert "volumes" not in meta and meta["frames_lost"] == {}
    assert not list((moved / "camera").glob("journal-v*"))
    assert _digests(moved) == want  # every frame, from its own folder now
    with open_session(moved) as s:
        assert s.manifest == json.loads((folder / "session.json").read_text())
    assert main(["consolidate", str(folder), "--to", str(tmp_path / "all")]) == 2  # not twice


def test_consolidate_refuses_a_target_without_room_in_one_line(striped, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    from mmmelab.cli import main
    from mmmelab.storage import consolidate as mod

    _, folder, _ = striped
    monkeypatch.setattr(mod.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(1, 0, 1))
    assert main(["consolidate", str(folder), "--to", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GB free, the session needs" in err
    assert not list((tmp_path / "small").iterdir())  # nothing written
    with pytest.raises(LabError, match="no camera recording"):
        mod.consolidate(tmp_path, tmp_path / "x")


def _feed(ring, n: int, at=None) -> None:
    """Push ``n`` frames (frame i: every byte ``i % 251``), as the camera would; ``at``
    is called with the frame number before each push."""
    from mmmelab.storage.frames import JOURNAL_DTYPE as JD

    rec = np.zeros(1, JD)
    for i in range(n):
        if at is not None:
            at(i)
        rec["acq_nframe"] = i
        while ring.claim() is None:  # a writer behind: wait, as the ring would hold
            time.sleep(0.0005)
        ring.push(np.full(64 * 64, i % 251, np.uint8), rec)
        time.sleep(0.001)


def _striped_writers(tmp_path: Path, second: Path, lost: list[str]):
    from mmmelab.storage.ringbuffer import FrameRing
    from mmmelab.storage.writerproc import FrameWriterProcess

    cam = tmp_path / "s" / "camera"
    cam.mkdir(parents=True)
    geo = FrameGeometry(width=64, height=64, frames_per_chunk=10)
    ring = FrameRing.create(32, 64 * 64, consumers=(True, True, False))
    return (
        cam,
        ring,
        FrameWriterProcess(cam, geo, ring, volumes=[second], on_volume_lost=lost.append),
    )


def _every_frame(cam: Path, n: int) -> np.ndarray:
    store = FrameStore(cam)
    try:
        assert len(store) == n and not store.missing
        assert np.array_equal(store.journal["acq_nframe"], np.arange(n))
        for i in range(n):
            assert (store[i] == i % 251).all(), i
        return np.asarray(store.journal["volume"])
    finally:
        store.close()


def test_writer_processes_stripe_by_chunk_and_a_full_volume_hands_over(tmp_path: Path):
    lost: list[str] = []
    cam, ring, writers = _striped_writers(tmp_path, tmp_path / "v1" / "camera", lost)
    try:
        _feed(ring, 200)
        assert writers.stop() and not lost and ring.overflow == 0
    finally:
        ring.close()
    volumes = _every_frame(cam, 200)
    assert np.array_equal(volumes, (np.arange(200) // 10) % 2)
    with tmpfs(tmp_path / "small", "1m") as mnt:  # 4 kB frames: full after about 250
        lost.clear()
        cam2 = tmp_path / "t"
        cam, ring, writers = _striped_writers(cam2, mnt / "camera", lost)
        try:
            _feed(ring, 800)
            assert writers.stop() and ring.overflow == 0
        finally:
            ring.close()
        [msg] = lost
        assert (
            msg.startswith(f"volume 1 ({mnt / 'camera'}) stopped at frame ") and "disk full" in msg
        )
        volumes = _every_frame(cam, 800)  # not one frame lost
        assert 100 < (volumes == 1).sum() < 300 and (volumes[-100:] == 0).all()


def test_writer_processes_go_on_when_a_volume_disappears(tmp_path: Path):
    lost: list[str] = []
    cam, ring, writers = _striped_writers(tmp_path, tmp_path / "v1" / "camera", lost)

    def unplug(i: int) -> None:
        if i == 300:
            (tmp_path / "v1").rename(tmp_path / "v1-gone")

    try:
        _feed(ring, 700, unplug)
        assert writers.stop() and ring.overflow == 0
    finally:
        ring.close()
    [msg] = lost
    assert "gone" in msg or "No such file" in msg
    store = FrameStore(cam)
    try:
        [(why, n)] = store.missing.items()
        assert why == f"volume 1 ({tmp_path / 'v1' / 'camera'}) is gone" and n >= 140
        assert len(store) + n == 700  # every frame journalled once: kept or named as gone
        assert all(
            (store[k] == int(a) % 251).all() for k, a in enumerate(store.journal["acq_nframe"])
        )
        assert (store.journal["acq_nframe"][-300:] == np.arange(400, 700)).all()
    finally:
        store.close()
