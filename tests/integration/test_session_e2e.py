"""A whole session on the simulated lab through the real drivers, and the CLI around it.

Real LSL on loopback, a real pseudo-terminal trigger box, real TCP servers for Curry
and AcqKnowledge, XIMEA's real xiapipy over the simulated libm3api, real HDF5.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmmelab.acquisition.engine import EngineState, SessionEngine
from mmmelab.analysis.check import check_session
from mmmelab.participant import ParticipantInfo
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.storage.frames import JOURNAL_DTYPE
from mmmelab.storage.manifest import SessionStatus
from mmmelab.sync.codes import EventCode
from tests.conftest import TINY_PROTOCOL, write_small_lab_toml
from tests.helpers import camera_frames, wait_until

pytestmark = pytest.mark.slow


def test_engine_records_a_complete_session(small_lab, tiny_protocol, tmp_path):
    out = tmp_path / "out"
    with SessionEngine(
        small_lab, tiny_protocol, ParticipantInfo("P01", 2, 1), out_root=out, seed=5
    ) as engine:
        engine.connect()
        folder = engine.start()
        engine.remind(True)
        engine.remind(False)
        engine.mark("participant moved")
        engine.run()
        t0 = time.monotonic()
        engine.stop()
        assert time.monotonic() - t0 < 2.0
        assert engine.state is EngineState.FINISHED
    assert folder.name.startswith("sub-P01_ses-02_")
    report = check_session(folder)
    assert report["ok"], report["problems"]
    streams = report["streams"]
    assert streams["camera"]["dropped"] == 0 and streams["camera"]["count"] > 100
    assert abs(streams["camera"]["rate_hz"] - 150.0) < 0.5
    assert streams["eeg"]["channels"] == 64 and streams["eeg"]["rate_hz"] == 1000.0
    assert streams["physio"]["channels"] == 5 and streams["physio"]["digital_channels"] == 8
    assert streams["physio"]["rate_hz"] == 1000.0
    sent = streams["markers"]["count"]
    for name in ("camera", "eeg", "physio"):
        assert streams[name]["trigger_edges"] == sent, name
    assert report["markers"] == {"expected": 25, "found": 25}
    with open_session(folder) as s:
        assert s.status is SessionStatus.COMPLETE
        assert s.manifest["simulated"] == ["camera", "eeg", "physio", "triggerbox"]
        assert s.manifest["participant"] == {
            "id": "P01",
            "session": 2,
            "consent_level": 1,
            "notes": "",
        }
        codes = [int(c) for c in s.markers["code"]]
        assert EventCode.REMINDER_ON in codes and EventCode.NOTE in codes
        assert len(s.trials) == 3 and list(s.trials["practice"]) == [1, 0, 0]
        assert all(s.trials["valence"][~s.trials["missed"].astype(bool)] >= 1)
        eeg = s.streams["eeg"]
        assert isinstance(eeg, SignalStream)
        idle = eeg.aux["trigger"][()].reshape(-1)
        assert set(np.unique(idle & 0xFF)) >= {0, 1, 10, 11}
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        assert np.all(np.diff(cam.device_time_s) > 0)
        # every sample and frame carries a master-clock time within the session
        t_start = s.manifest["clock"]["start_master_s"]
        assert cam.host_time[0] >= t_start - 1 and eeg.host_time[-1] > cam.host_time[0]


def test_cli_demo_then_check_json(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL)
    rec = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmmelab",
            "record",
            "--lab",
            str(lab),
            "--protocol",
            str(proto),
            "--participant",
            "P02",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert rec.returncode == 0, rec.stderr[-2000:]
    assert "SIMULATED DEVICES" in rec.stderr and "check:   ok" in rec.stdout
    # a line per phase with the camera's health and each stream's live sync
    assert re.search(r"\] rating .*\| camera \d+ fps, ring \d+%", rec.stderr), rec.stderr
    assert re.search(r"sync: camera [\d.]+ ms, eeg [\d.]+ ms", rec.stderr), rec.stderr
    assert "Traceback" not in rec.stderr
    folder = next((tmp_path / "out").iterdir())
    chk = subprocess.run(
        [sys.executable, "-m", "mmmelab", "check", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chk.returncode == 0
    report = json.loads(chk.stdout)
    assert set(report) >= {"ok", "streams", "markers", "problems"}
    assert report["ok"] is True and report["problems"] == []
    for entry in report["streams"].values():
        assert {"kind", "count", "rate_hz", "gaps", "dropped", "channels", "trigger_edges"} <= set(
            entry
        )
    kinds = {e["kind"] for e in report["streams"].values()}
    assert kinds == {"camera", "eeg", "physio", "markers"}
    assert report["markers"]["expected"] == report["markers"]["found"] == 25


def test_check_fails_with_nonzero_exit_on_a_broken_session(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "session.json").write_text("{")
    chk = subprocess.run(
        [sys.executable, "-m", "mmmelab", "check", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chk.returncode == 2 and "Traceback" not in chk.stderr
    assert "session.json: is not valid JSON" in chk.stderr


def _journal_frames(folder: Path) -> int:
    path = folder / "camera" / "journal.bin"
    return path.stat().st_size // JOURNAL_DTYPE.itemsize if path.exists() else 0


def _shm_segments() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("psm_*")} if Path("/dev/shm").is_dir() else set()


def _record(lab: Path, proto: Path, out: Path, participant: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mmmelab", "record", "--lab", str(lab), "--protocol", str(proto),
         "--participant", participant, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _recording_folder(out: Path) -> Path:
    """The session folder once its camera has 300 frames and 1.5 s more after them (so
    signals.h5 has flushed at least once more)."""
    deadline = time.monotonic() + 60
    folder = None
    while time.monotonic() < deadline:
        folders = list(out.iterdir()) if out.exists() else []
        if folders and _journal_frames(folders[0]) > 300:
            folder = folders[0]
            break
        time.sleep(0.05)
    assert folder is not None, "the recorder never got going"
    seen = _journal_frames(folder)
    wait_until(lambda: _journal_frames(folder) > seen + 225, 20, "1.5 s more frames")
    return folder


def test_a_killed_headless_cli_leaves_the_recording_to_the_service(tmp_path):
    """``mmme record`` SIGKILLed: the service records on, then stops and saves the
    session once it has had no console for HEADLESS_ORPHAN_S."""
    import psutil

    from mmmelab.acquisition.headless import HEADLESS_ORPHAN_S
    from mmmelab.acquisition.messages import ServiceInfo

    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL.replace("duration_s = 0.8", "duration_s = 60.0"))
    out = tmp_path / "out"
    proc = _record(lab, proto, out, "P05")
    try:
        folder = _recording_folder(out)
        info = ServiceInfo.read()
        assert info is not None
        proc.kill()
        proc.wait(10)  # (its stderr stays open: the service writes its log there)
        t_kill = time.monotonic()
        grabbed = _journal_frames(folder)
        wait_until(lambda: _journal_frames(folder) > grabbed + 300, 10, "recording on")
        psutil.Process(info.pid).wait(HEADLESS_ORPHAN_S + 30)
        ended_s = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert HEADLESS_ORPHAN_S - 1 <= ended_s <= HEADLESS_ORPHAN_S + 20
    with open_session(folder) as s:
        assert s.status is SessionStatus.ABORTED
        details = " | ".join(
            d.decode() if isinstance(d, bytes) else str(d) for d in s.faults["detail"]
        )
        assert "the console was lost" in details and "no console for" in details
    report = check_session(folder)
    assert report["streams"]["camera"]["dropped"] == 0
    assert {"camera", "eeg", "physio"} <= set(report["streams"])


def test_a_killed_recorder_leaves_a_readable_session(tmp_path):
    """The session service (the process that records) is SIGKILLed: what it wrote is
    readable, and the CLI says in one line that it is gone."""
    import psutil

    from mmmelab.acquisition.messages import ServiceInfo
    from mmmelab.drivers.lsl import local_clock

    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL.replace("duration_s = 0.8", "duration_s = 30.0"))
    out = tmp_path / "out"
    shm_before = _shm_segments()
    proc = _record(lab, proto, out, "P03")
    try:
        folder = _recording_folder(out)
        info = ServiceInfo.read()
        assert info is not None, "no session service"
        service = psutil.Process(info.pid)
        children = service.children()
        writers = [c for c in children if "mmmelab.storage.writer" in " ".join(c.cmdline())]
        assert len(writers) == 1
        t_kill = local_clock()
        service.kill()
        service.wait(10)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2
    assert "Traceback" not in err
    [said] = [line for line in err.splitlines() if line.startswith("mmme record: error:")]
    assert "the session service stopped" in said and f"readable: {folder}" in said
    # the orphaned writer drains the ring and exits by itself
    gone, alive = psutil.wait_procs(writers, timeout=10)
    assert not alive, "the frame writer outlived its recorder"
    with open_session(folder) as s:
        assert s.status is SessionStatus.RECORDING
        assert any("did not finish" in p for p in s.problems)
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        nf = cam.journal["acq_nframe"].astype(np.int64)
        assert nf[0] == 1 and np.all(np.diff(nf) == 1)  # no frame missing up to the end
        # every frame the camera delivered more than 1 s before the kill is on disk
        assert cam.host_time[-1] >= t_kill - 1.0
        last = cam.frames[cam.count - 1]
        assert last.shape == (128, 256) and last.max() > 0
        eeg = s.streams["eeg"]
        assert eeg.count > 1000 and eeg.data.shape[1] == 64
        assert len(s.markers) >= 3
    report = check_session(folder)
    assert report["ok"] is False
    assert any("did not finish" in p for p in report["problems"])
    # the killed recorder's shared memory is reclaimed (by its resource tracker)
    deadline = time.monotonic() + 10
    while _shm_segments() - shm_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _shm_segments() - shm_before


def test_engine_records_with_the_acquire_framing(small_lab, tiny_protocol, tmp_path):
    import dataclasses

    from mmmelab.config import EegProtocol

    lab = dataclasses.replace(
        small_lab, eeg=dataclasses.replace(small_lab.eeg, protocol=EegProtocol.ACQUIRE)
    )
    with SessionEngine(lab, tiny_protocol, ParticipantInfo("P04"), out_root=tmp_path) as engine:
        engine.connect()
        folder = engine.start()
        engine.run()
        engine.stop()
    report = check_session(folder)
    assert report["ok"], report["problems"]
    eeg = report["streams"]["eeg"]
    assert eeg["channels"] == 64 and eeg["rate_hz"] == 1000.0 and eeg["gaps"] == 0
    assert eeg["trigger_edges"] == report["streams"]["markers"]["count"]
    with open_session(folder) as s:
        assert s.manifest["devices"]["eeg"]["protocol"] == "acquire"
        word = s.streams["eeg"].aux["trigger"][()].reshape(-1)
        assert set(np.unique(word >> 8)) == {0xFF}  # the idle high byte is kept apart


def test_trigger_box_unplugged_mid_session_is_recorded_and_the_session_finishes(
    small_lab, tiny_protocol, tmp_path
):
    with SessionEngine(
        small_lab, tiny_protocol, ParticipantInfo("P05"), out_root=tmp_path
    ) as engine:
        engine.connect()
        folder = engine.start()
        wait_until(lambda: camera_frames(engine) >= 75, what="75 frames")
        engine.devices.simlab.triggerbox.vanish()
        engine.run()
        t0 = time.monotonic()
        engine.stop()
        assert time.monotonic() - t0 < 2.0
    with open_session(folder) as s:
        assert s.status is SessionStatus.COMPLETE  # the paradigm ran to its end
        assert not s.markers["ttl_ok"].all() and s.markers["ttl_ok"][0]
        assert len(s.markers) >= 25  # LSL markers kept going
        assert ("triggerbox", "lost") in {
            (f["stream"].decode(), f["kind"].decode()) for f in s.faults
        }
    report = check_session(folder)
    assert not report["ok"]
    assert report["markers"]["found"] == report["markers"]["expected"]
    assert any("triggerbox: lost" in p for p in report["problems"])
    assert report["streams"]["eeg"]["trigger_edges"] < report["streams"]["markers"]["count"]


def test_an_existing_lsl_stream_is_recorded_with_its_clock(small_lab, tiny_protocol, tmp_path):
    import dataclasses

    import pylsl

    from mmmelab.config import LslStreamConfig
    from mmmelab.drivers.lsl import local_clock

    info = pylsl.StreamInfo(
        "mmme-test-eyetracker", "Gaze", 3, 120.0, pylsl.cf_float32, "mmme-test-eyetracker-1"
    )
    chans = info.desc().append_child("channels")
    for label in ("x", "y", "pupil"):
        chans.append_child("channel").append_child_value("label", label)
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()

    def send() -> None:
        # a regular-rate device: timestamps from its sample clock, not from wake-ups
        t0, k = local_clock(), 0
        while not stop.is_set():
            outlet.push_sample([k, -k, 3.5], t0 + k / 120)
            k += 1
            time.sleep(max(0.0, t0 + k / 120 - local_clock()))

    sender = threading.Thread(target=send, name="sim-eyetracker", daemon=True)
    sender.start()
    lab = dataclasses.replace(
        small_lab, lsl_streams=(LslStreamConfig(name="mmme-test-eyetracker", label="gaze"),)
    )
    try:
        with SessionEngine(lab, tiny_protocol, ParticipantInfo("P06"), out_root=tmp_path) as eng:
            eng.connect()
            folder = eng.start()
            eng.run()
            eng.stop()
    finally:
        stop.set()
        sender.join(2)
    report = check_session(folder)
    assert report["ok"], report["problems"]
    gaze = report["streams"]["gaze"]
    assert gaze["kind"] == "lsl" and gaze["channels"] == 3 and gaze["count"] > 100
    with open_session(folder) as s:
        stream = s.streams["gaze"]
        assert stream.channels == ["x", "y", "pupil"]
        lsl_t = stream.aux["lsl_time"][()].reshape(-1)
        offset = stream.aux["lsl_offset"][()].reshape(-1)
        master = lsl_t + offset
        assert np.all(np.abs(master - stream.host_time) < 0.5)  # same clock, small latency
        x = stream.data[:, 0]
        assert np.all(np.diff(x) == 1)  # every sample, in order
