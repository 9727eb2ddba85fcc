"""The console in another process than the session: killed, the recording goes on and
is saved; ``mmme attach`` opens a console on it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from PyQt6.QtCore import Qt

from mmmelab.acquisition.messages import ControllerState, ServiceInfo, run_dir
from mmmelab.acquisition.paradigm import Phase
from mmmelab.analysis.check import check_session
from mmmelab.gui.app import LabApp
from mmmelab.gui.controller import EngineController
from mmmelab.gui.participant import ParticipantWindows
from mmmelab.storage import open_session
from tests.conftest import write_small_lab_toml
from tests.helpers import wait_until

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STREAMS = {"camera", "eeg", "physio"}


@pytest.fixture
def service_dir(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    monkeypatch.setenv("MMME_RUN_DIR", str(folder))
    return folder


def _console_recording(tmp_path: Path, protocol_file: Path, orphan_s: float):
    """A console process recording a session: (its process, the session folder, the
    service's process)."""
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "sessions")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.gui.console_child", str(lab), str(protocol_file),
         str(tmp_path / "sessions"), str(orphan_s)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the console prints once it records (or dies: "")
    assert line.startswith("recording "), f"the console did not start recording: {line!r}"
    folder = Path(line.split(" ", 1)[1].strip())
    info = ServiceInfo.read(run_dir())
    windows = ServiceInfo.read(run_dir(), "participant")  # the participant's windows
    assert info is not None and info.pid != proc.pid
    assert windows is not None and windows.pid not in (proc.pid, info.pid)
    return proc, folder, psutil.Process(info.pid), psutil.Process(windows.pid)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _frames_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_killed_console_leaves_the_recording_going_and_then_saved(
    tmp_path, tiny_protocol_file, service_dir
):
    """SIGKILL to the console mid-session: the service records on, and with no
    console for the orphan time it stops the session cleanly, every stream saved;
    the participant's windows end with it."""
    proc, folder, service, windows = _console_recording(tmp_path, tiny_protocol_file, 3.0)
    size = _frames_on_disk(folder)
    wait_until(lambda: _frames_on_disk(folder) > size, 10, "the recording writing")
    _kill(proc)
    size = _frames_on_disk(folder)
    wait_until(lambda: _frames_on_disk(folder) > size, 2, "writing after the console died")
    service.wait(60)  # stopped after 3 s alone, saved, gone (not our child: no exit code)
    windows.wait(20)
    assert not (service_dir / "engine.json").exists()
    assert not (service_dir / "participant.json").exists()
    report = check_session(folder)
    assert STREAMS <= set(report["streams"]), report["streams"].keys()
    for name in STREAMS:
        assert report["streams"][name]["count"] > 0, (name, report["streams"][name])
    with open_session(folder) as session:
        assert session.status.value == "aborted"
        details = " ".join(_text(d) for d in session.faults["detail"])
    assert "the console was lost" in details and "no console for" in details


def test_mmme_attach_reopens_the_console_on_the_running_session(
    qtbot, tmp_path, tiny_protocol_file, service_dir
):
    """After the console is killed, an attached console shows the recording as it is,
    its live views read the service's shared memory, it reaches the participant's
    windows (still up, in their own process), and it ends the session."""
    proc, folder, service, windows = _console_recording(tmp_path, tiny_protocol_file, 60.0)
    _kill(proc)
    info = ServiceInfo.read()
    assert info is not None
    controller = EngineController.attach(info)
    assert controller.in_service and controller.state is ControllerState.RECORDING
    assert controller.folder == folder and controller.phase is not None
    assert controller.phase.phase is Phase.WAIT_SPACE  # nobody pressed Space
    participant = ParticipantWindows.open()
    assert participant.pid == windows.pid  # found again, not a new process
    app = LabApp(controller.lab, controller.protocol, controller=controller,
                 participant=participant)  # fmt: skip
    app.show()
    app.catch_up()
    qtbot.waitUntil(app.console.pause_button.isEnabled, timeout=20_000)  # it knows
    qtbot.waitUntil(lambda: app.console.preview.shown > 3, timeout=20_000)  # shared memory
    eeg = controller.snapshot("eeg", 1.0)
    assert len(eeg.data) > 100 and eeg.data.shape[1] == len(controller.streams()["eeg"])
    app.console.pause_button.setFocus()  # not a text field: Space is not typing
    qtbot.keyClick(app.console, Qt.Key.Key_Space)  # typed on the console: to their window
    qtbot.waitUntil(lambda: controller.phase.phase is Phase.CLIP, timeout=20_000)
    with qtbot.waitSignal(controller.finished, timeout=60_000) as done:
        controller.abort()
    assert done.args[0].folder == folder and done.args[0].status == "aborted"
    app.console.close()
    app.shutdown()
    service.wait(60)
    windows.wait(20)
    with open_session(folder) as session:
        assert session.status.value == "aborted"
        frames = session.logs["stimulus_frames"]
        assert len(frames) > 0  # the clip played in the participant's process, logged
    assert os.listdir(service_dir) == []


def test_the_console_says_at_once_when_the_service_dies(qtbot, small_lab, tiny_protocol,
                                                        tmp_path, service_dir):  # fmt: skip
    """The console of ``mmme demo`` (the engine in the service): it records, its preview
    and plots read shared memory; SIGKILL to the service is told within a second, and
    what was recorded is readable."""
    from mmmelab.acquisition.consolelink import start_service
    from mmmelab.acquisition.messages import Setup

    setup = Setup(small_lab, tiny_protocol, tmp_path / "sessions", run_checks=False)
    controller = EngineController.attach(start_service(), setup)
    app = LabApp(small_lab, tiny_protocol, participant_id="P01", controller=controller)
    app.show()
    app.connect_devices()
    qtbot.waitUntil(lambda: app.console.preview.shown > 3, timeout=20_000)  # before Start
    app.console.setup.override.setChecked(True)
    qtbot.waitUntil(app.console.start_button.isEnabled, timeout=20_000)
    qtbot.mouseClick(app.console.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.state is ControllerState.RECORDING, timeout=20_000)
    shown = app.console.preview.shown
    qtbot.waitUntil(lambda: app.console.preview.shown > shown + 3, timeout=20_000)
    qtbot.waitUntil(lambda: app.console.plots is not None and app.console.plots.updates > 3,
                    timeout=20_000)  # fmt: skip
    folder = controller.folder
    assert folder is not None
    journal = folder / "camera" / "journal.bin"  # 64 bytes a frame: two seconds recorded
    qtbot.waitUntil(lambda: journal.exists() and journal.stat().st_size >= 64 * 300,
                    timeout=20_000)  # fmt: skip
    info = ServiceInfo.read()
    assert info is not None
    writers = psutil.Process(info.pid).children(recursive=True)  # frames, signals
    with qtbot.waitSignal(controller.failed, timeout=1_000) as lost:
        os.kill(info.pid, signal.SIGKILL)
    assert "session service stopped" in lost.args[0]
    assert controller.state is ControllerState.FAILED
    psutil.Process(info.pid).wait(10)
    psutil.wait_procs(writers, timeout=20)  # they see their parent gone, save and exit
    with open_session(folder) as session:  # readable, as a killed recorder leaves it
        assert session.streams["camera"].count >= 300
        assert session.streams["eeg"].count > 1000 and session.streams["physio"].count > 1000
    app.console.ask = lambda question: True
    app.console.close()
    app.shutdown()
