"""The session format round trip: what the writers put in, open_session gives back."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mmmelab.errors import SessionFormatError
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.storage.frames import (
    JOURNAL_DTYPE,
    FrameGeometry,
    FrameWriter,
    frame_stride,
)
from mmmelab.storage.framestore import FrameStore
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import TRIAL_DTYPE
from mmmelab.storage.sessionwriter import SessionWriter
from mmmelab.storage.signals import SignalSpec
from mmmelab.streams import AuxSpec, StreamKind

W, H = 64, 48


def _frame(i: int) -> np.ndarray:
    return ((np.arange(W * H) + i * 7) % 251).astype(np.uint8).reshape(H, W)


def write_session(root, n_frames=25, per_chunk=10, blocks=((0, 40), (40, 40), (100, 40))):
    fields = {
        "participant": {"id": "P01", "session": 1, "consent_level": 1, "notes": ""},
        "clock": {"master": "test"},
        "simulated": ["camera"],
        "protocol": {"practice": [], "trial_order": []},
    }
    w = SessionWriter(root, fields, "P01", 1)
    eeg = SignalSpec(
        "eeg", StreamKind.EEG, 1000.0, ("C3", "C4"), "uV", (AuxSpec("trigger", "<u2"),)
    )
    geometry = FrameGeometry(W, H, frames_per_chunk=per_chunk)
    w.open_streams(geometry, [eeg], camera_info={"fps": 150.0})
    assert w.signals is not None
    frames = FrameWriter(w.camera_folder, geometry)
    rec = np.zeros(1, JOURNAL_DTYPE)
    for i in range(n_frames):
        rec["acq_nframe"] = i + 1 + (i >= 20)  # one frame lost after frame 20
        rec["ts_us"] = i * 6667
        rec["host_time"] = 100.0 + i / 150
        rec["gpi_level"] = i % 2
        frames.append(_frame(i), rec)
    frames.close()
    for first, n in blocks:
        data = np.arange(first, first + n, dtype=np.float32)[:, None].repeat(2, axis=1)
        w.signals.append(
            "eeg",
            first,
            data,
            host_time=200.0 + (first + n) / 1000,
            aux={"trigger": np.full(n, first % 256, np.uint16)},
        )
    w.signals.marker(1, 11, "happiness_1", 1.0, 1.001, 1.021, True)
    w.signals.fault(2.0, "camera", "dropped", 1, "acq_nframe jumped from 20 to 22")
    w.signals.log(
        "trials",
        np.array(
            [(0, 0, b"happiness_1", b"happiness", b"fear", 3, 7, 0, 1.5, 10.0, 70.0)],
            dtype=TRIAL_DTYPE,
        ),
    )
    return w


def test_round_trip(tmp_path):
    w = write_session(tmp_path)
    w.finalize(SessionStatus.COMPLETE)
    with open_session(w.folder) as s:
        assert s.status is SessionStatus.COMPLETE and not s.problems
        assert s.consent_level == 1 and s.simulated == ["camera"]
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        assert cam.count == 25 and cam.rate_hz == 150.0
        for i in (0, 9, 10, 24, -1):
            np.testing.assert_array_equal(cam.frames[i], _frame(i % 25))
        assert not cam.frames[3].flags.owndata  # memory-mapped, not copied
        assert cam.dropped() == (1, 1)
        np.testing.assert_allclose(cam.host_time, 100.0 + np.arange(25) / 150)
        assert cam.frames.rgb(0).shape == (H // 2, W // 2, 3)
        eeg = s.streams["eeg"]
        assert isinstance(eeg, SignalStream)
        assert eeg.count == 120 and eeg.channels == ["C3", "C4"] and eeg.rate_hz == 1000.0
        np.testing.assert_array_equal(
            eeg.sample_index, np.r_[np.arange(0, 80), np.arange(100, 140)]
        )
        np.testing.assert_array_equal(eeg.data[:, 0], eeg.sample_index.astype(np.float32))
        assert eeg.gaps() == (1, 20)
        ht = eeg.host_time
        assert ht[79] == pytest.approx(200.080) and ht[0] == pytest.approx(200.080 - 0.079)
        assert eeg.aux["trigger"][()].reshape(-1)[100] == 100
        assert s.markers["label"][0] == b"happiness_1" and s.markers["code"][0] == 11
        assert s.faults["kind"][0] == b"dropped"
        assert s.trials["chosen_emotion"][0] == b"fear" and s.trials["valence"][0] == 3


def test_entry_point_reads_everything(tmp_path, monkeypatch):
    w = write_session(tmp_path)
    w.finalize(SessionStatus.COMPLETE)
    monkeypatch.chdir(tmp_path.parent)  # the external frame files must not depend on the cwd
    with h5py.File(w.folder / "session.h5", "r") as f:
        assert f["eeg/data"].shape == (120, 2)
        assert f["markers/log"].shape == (1,)
        assert json.loads(f.attrs["manifest"])["status"] == "complete"
        # External raw files resolve next to session.h5 with the ${ORIGIN} prefix
        # (or HDF5_EXTFILE_PREFIX='${ORIGIN}' in the environment of any HDF5 tool).
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_efile_prefix(b"${ORIGIN}")
        frames = h5py.Dataset(h5py.h5d.open(f.id, b"camera/frames", dapl=dapl))
        assert frames.shape == (25, frame_stride(W, H))
        np.testing.assert_array_equal(frames[13, : W * H].reshape(H, W), _frame(13))


def test_unfinished_session_opens_and_says_so(tmp_path):
    w = write_session(tmp_path)
    assert w.signals is not None
    w.signals.close()  # data flushed, but finalize never ran (like a crash)
    with open_session(w.folder) as s:
        assert s.status is SessionStatus.RECORDING
        assert any("did not finish" in p for p in s.problems)
        assert s.streams["camera"].count == 25 and s.streams["eeg"].count == 120


def test_torn_journal_record_is_ignored(tmp_path):
    w = write_session(tmp_path, n_frames=5)
    assert w.signals is not None
    w.signals.close()
    with open(w.folder / "camera" / "journal.bin", "ab") as fh:
        fh.write(b"\x01" * 10)
    store = FrameStore(w.folder / "camera")
    assert len(store) == 5 and store.torn_records


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "session.json is missing"),
        ("{not json", "is not valid JSON (line 1"),
        ('{"format": "other"}', "not an mmme-lab session manifest"),
        ('{"format": "mmme-session", "format_version": 99}', "format_version 99 is not supported"),
        (
            '{"format": "mmme-session", "format_version": 1, "status": "weird"}',
            "status 'weird' is not one of",
        ),
    ],
)
def test_bad_manifests_get_clear_errors(tmp_path, content, words):
    folder = tmp_path / "s"
    folder.mkdir()
    if content is not None:
        (folder / "session.json").write_text(content)
    with pytest.raises(SessionFormatError, match=words.replace("(", r"\(")):
        open_session(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(SessionFormatError, match="no such folder"):
        open_session(tmp_path / "missing")


def test_row_reader_reads_rows_directly_or_says_why_not(tmp_path, monkeypatch):
    import errno
    import os

    w = write_session(tmp_path)
    w.finalize(SessionStatus.COMPLETE)
    store = FrameStore(w.camera_folder)
    try:
        for y0, y1 in ((0, H), (7, 30), (H - 1, H)):
            reader = store.row_reader(y0, y1)
            for i in (0, 9, 10, 24):
                np.testing.assert_array_equal(reader.read(i), _frame(i)[y0:y1])
        with pytest.raises(ValueError, match="outside the frame"):
            store.row_reader(30, 10)
        with pytest.raises(IndexError):
            store.row_reader(0, H).read(25)
    finally:
        store.close()
    real_open = os.open

    def no_direct(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    store = FrameStore(w.camera_folder)
    try:
        np.testing.assert_array_equal(store.row_reader(3, 9).read(12), _frame(12)[3:9])
        assert store.direct_reads is False and "no direct I/O" in store.direct_fallback
    finally:
        store.close()
