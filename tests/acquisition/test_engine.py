"""Engine behaviour around the happy path: pre-flight refusals and a device lost mid-session."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections import namedtuple

import numpy as np
import pytest

from mmmelab.acquisition.engine import EngineState, SessionEngine
from mmmelab.analysis.check import check_session
from mmmelab.errors import LabError
from mmmelab.participant import ParticipantInfo
from mmmelab.storage import open_session
from mmmelab.storage.manifest import SessionStatus
from tests.helpers import camera_frames, wait_until

pytestmark = pytest.mark.slow


def test_preflight_refuses_when_the_disk_cannot_hold_the_session(
    small_lab, tiny_protocol, tmp_path, monkeypatch
):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    engine = SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), tmp_path / "o")
    with pytest.raises(LabError, match=r"not enough disk space .* GB are free"):
        engine.connect()
    assert engine.state is EngineState.IDLE
    engine.close()
    assert not any((tmp_path / "o").glob("sub-*"))  # no half-made session folder


def test_preflight_measures_the_disk_and_refuses_one_slower_than_the_camera(
    small_lab, tiny_protocol, tmp_path, monkeypatch
):
    import mmmelab.acquisition.diskcheck as disk_mod

    def slow(_folder):
        return {"mb_s": 1.0, "direct": True, "bytes": 64 << 20, "seconds": 67.0}

    monkeypatch.setattr(disk_mod, "write_speed", slow)
    engine = SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), tmp_path / "o")
    with pytest.raises(LabError, match=r"writes 1 MB/s \(measured, 64 MB\), the recording "
                                       r"needs \d+ MB/s: frames would be lost"):  # fmt: skip
        engine.connect()
    engine.close()
    monkeypatch.undo()
    with SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), tmp_path / "p") as e:
        e.connect()
        assert e.disk["write_mb_s"] > 0 and not e.disk_warning  # the real probe, this disk


def test_write_speed_probe_leaves_nothing_behind(tmp_path):
    from mmmelab.storage.directio import direct_works, write_speed

    got = write_speed(tmp_path, 8 << 20, 1 << 20)
    assert got["bytes"] == 8 << 20 and got["mb_s"] > 0 and got["direct"] == direct_works(tmp_path)
    assert not list(tmp_path.iterdir())


def test_missing_stimuli_are_named_before_anything_records(small_lab, tmp_path):
    from mmmelab.config import shipped
    from mmmelab.protocol import load_protocol

    mmme = load_protocol(shipped("protocols", "mmme"))
    lab = dataclasses.replace(small_lab, stimuli_root=tmp_path / "stimuli")
    engine = SessionEngine(lab, mmme, ParticipantInfo("P01"), tmp_path / "o")
    missing = str(tmp_path / "stimuli" / "mmme" / "practice.mp4")
    with pytest.raises(
        LabError,
        match=r"44 stimulus clip\(s\) of protocol 'MMME' are missing, "
        rf"e\.g\. {re.escape(missing)}",
    ):
        engine.connect()
    engine.close()


def test_camera_lost_mid_session_is_recorded_and_the_rest_keeps_recording(
    small_lab, tiny_protocol, tmp_path
):
    with SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), tmp_path / "o") as eng:
        eng.connect()
        folder = eng.start()
        wait_until(lambda: camera_frames(eng) >= 75, what="75 frames")
        lost_at = eng.clock()
        eng.devices.simlab.camera.unplug()
        eng.run()
        eng.stop()
    with open_session(folder) as s:
        assert s.status is SessionStatus.FAILED
        kinds = {(f["stream"].decode(), f["kind"].decode()) for f in s.faults}
        assert ("camera", "lost") in kinds
        assert s.streams["camera"].host_time[-1] < lost_at + 0.1
        eeg_end = s.streams["eeg"].host_time[-1]
        assert eeg_end > lost_at + 1.0  # EEG went on recording
        assert np.all(np.diff(s.streams["eeg"].sample_index) == 1)
        assert any("camera stopped during the session" in p for p in s.manifest["problems"])
    report = check_session(folder)
    assert not report["ok"]
    assert any("camera: lost" in p for p in report["problems"])
