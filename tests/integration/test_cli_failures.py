"""What the command line does when things go wrong: damaged sessions are reported as
damaged (never ``ok``, never a hang), bad input gets one line and exit code 2, and
Ctrl-C, SIGTERM and SIGHUP stop and save the recording."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmmelab.acquisition.study import StudyPlan
from mmmelab.analysis.check import check_session
from mmmelab.errors import SessionFormatError
from mmmelab.storage import open_session
from tests.conftest import TINY_PROTOCOL, write_small_lab_toml

pytestmark = pytest.mark.slow


def mmme(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmmelab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-1500:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert words in lines[0], lines[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """One intact simulated session (30 s), copied by each test that damages it."""
    from mmmelab.study import simulate

    out = tmp_path_factory.mktemp("study")
    plan = StudyPlan(participants=1, minutes=0.5, seed=3)
    (folder,) = simulate(out, plan, show=False)
    assert check_session(folder)["ok"]
    return folder


def damaged_copy(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / recorded.name
    shutil.copytree(recorded, copy)
    return copy


def test_a_deleted_or_cut_camera_chunk_is_counted_as_lost(recorded, tmp_path):
    folder = damaged_copy(recorded, tmp_path)
    (folder / "camera" / "frames-00001.raw").unlink()
    chunk = folder / "camera" / "frames-00002.raw"
    os.truncate(chunk, chunk.stat().st_size // 3)
    done = mmme("check", str(folder), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    cam = report["streams"]["camera"]
    lost_cut = 900 - (900 // 3)
    assert cam["dropped"] == 900 + lost_cut
    text = " ".join(report["problems"])
    assert "frames-00001.raw is missing" in text and "frames-00002.raw is cut short" in text


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_a_cut_signals_file_never_hangs_and_counts_what_is_gone(recorded, tmp_path, keep):
    folder = damaged_copy(recorded, tmp_path)
    path = folder / "signals.h5"
    os.truncate(path, int(path.stat().st_size * keep))
    t0 = time.monotonic()
    done = mmme("check", str(folder), "--json", timeout=90)
    assert time.monotonic() - t0 < 30
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert not report["ok"]
    assert any("signals.h5 is cut short" in p for p in report["problems"])
    with open_session(folder) as s:
        for stream in s.streams.values():
            if stream.kind in ("eeg", "physio"):  # nothing past the cut reads as zeros
                data = stream.data[()]
                assert len(data) == stream.count
                assert not (data == 0).all(axis=1).any()
    aligned = mmme("align", str(folder), timeout=90)
    assert aligned.returncode in (0, 2) and "Traceback" not in aligned.stderr


def test_problems_the_recorder_wrote_make_the_check_fail(recorded, tmp_path):
    folder = damaged_copy(recorded, tmp_path)
    manifest = json.loads((folder / "session.json").read_text())
    manifest["problems"] = ["the frame writer did not finish cleanly; see the faults"]
    (folder / "session.json").write_text(json.dumps(manifest))
    report = check_session(folder)
    assert not report["ok"]
    assert (
        "recorder: the frame writer did not finish cleanly; see the faults" in (report["problems"])
    )


def test_corrupt_but_parseable_metadata_is_one_line(recorded, tmp_path):
    folder = damaged_copy(recorded, tmp_path)
    manifest = json.loads((folder / "session.json").read_text())
    manifest["streams"]["eeg"] = "signals.h5"
    (folder / "session.json").write_text(json.dumps(manifest))
    one_line_error(mmme("check", str(folder)), '"streams.eeg" is not an object')


def test_align_on_a_session_it_cannot_write_is_one_line(recorded, tmp_path, monkeypatch):
    from mmmelab.analysis import alignment

    folder = damaged_copy(recorded, tmp_path)

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    with pytest.raises(SessionFormatError, match=r"sync.json: cannot be written"):
        alignment.align_session(folder)


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("/dev/null", "it is a file"),
        ("/proc/mmme", "cannot write sessions there"),
        ("{file}", "it is a file"),
        ("{file}/below", "a part of the path is a file"),
    ],
)
def test_a_bad_out_folder_is_refused_before_any_device(tmp_path, out, words):
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL)
    (tmp_path / "afile").write_text("x")
    out = out.format(file=tmp_path / "afile")
    t0 = time.monotonic()
    done = mmme("record", "--lab", str(lab), "--protocol", str(proto), "--participant", "P01",
                "--out", out)  # fmt: skip
    one_line_error(done, words)
    assert "connecting" not in done.stderr
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--participant", "JohnSmith"], "pseudonymous"),
        (["--participant", "P01", "--session", "-1"], "session number from 1 to 99"),
        (["--participant", "../x"], "pseudonymous"),
    ],
)
def test_bad_participant_or_session_is_one_line(tmp_path, args, words):
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL)
    done = mmme("record", "--lab", str(lab), "--protocol", str(proto), *args)
    one_line_error(done, words)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_a_nan_duration_is_refused_by_the_protocol_check(tmp_path):
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL.replace("duration_s = 0.8", "duration_s = nan", 1))
    done = mmme("record", "--lab", str(lab), "--protocol", str(proto), "--participant", "P01")
    one_line_error(done, "must be a finite number")


def start_recording(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """``mmme record`` in its own process group, as a terminal runs it; returns once it
    records (a participant who never presses Space keeps it recording)."""
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    proto = tmp_path / "p.toml"
    proto.write_text(TINY_PROTOCOL.replace("duration_s = 0.6", "duration_s = 20.0"))  # long
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmmelab", "record", "--lab", str(lab), "--protocol", str(proto),
         "--participant", "P01", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "recording 'tiny'" in line or time.monotonic() > deadline:
            break
    return proc, tmp_path / "out"


@pytest.mark.parametrize(
    ("signals", "code"),
    [([signal.SIGINT], 130), ([signal.SIGINT, signal.SIGINT], 130), ([signal.SIGTERM], 143)],
)
def test_terminal_signals_stop_and_save_without_losing_frames(tmp_path, signals, code):
    proc, out = start_recording(tmp_path)
    try:
        folder = next(out.iterdir())
        journal = folder / "camera" / "journal.bin"
        deadline = time.monotonic() + 30
        while (not journal.exists() or journal.stat().st_size < 64 * 300) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        for sig in signals:
            os.killpg(proc.pid, sig)  # the whole group, as Ctrl-C in a terminal does
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    if len(signals) > 1:
        assert "is being saved" in stderr
    with open_session(folder) as s:
        assert s.status.value == "aborted"
        grabbed = s.manifest["telemetry"]["camera"]["frames"]
        assert s.streams["camera"].count == grabbed  # the ring was drained, nothing lost
    report = check_session(folder)
    assert report["streams"]["camera"]["dropped"] == 0
