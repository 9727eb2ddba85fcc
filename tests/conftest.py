"""Shared fixtures: a small simulated lab, a tiny protocol, and a leak guard.

Every test runs under a timeout (pytest-timeout, see pyproject) and must leave no
thread of ours running: the ``no_leftover_threads`` guard fails it otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# liblsl reads this when pylsl is first imported: warnings and errors only.
os.environ.setdefault("LSLAPICFG", str(Path(__file__).parent / "lsl_test.cfg"))

from mmmelab.config import LabConfig, load_lab, shipped
from mmmelab.protocol import Protocol, load_protocol

OUR_THREADS = ("rec-", "sim-", "trigger-bus", "signal-writer", "gui-", "acq-events", "dev-close-",
               "engine-control", "service-", "preview-share")  # fmt: skip
SHM = Path("/dev/shm")


#: helpers an interpreter starts once and keeps for its life (not a test's leftovers)
LONG_LIVED = ("multiprocessing.resource_tracker", "loky.backend.resource_tracker")


def _children() -> set[int]:
    import psutil

    out = set()
    try:
        for p in psutil.Process().children(recursive=True):
            try:
                if not any(h in " ".join(p.cmdline()) for h in LONG_LIVED):
                    out.add(p.pid)
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return out


# This run's tag in the names of the segments the product creates
# (storage.ringbuffer.segment_name); children inherit it. Segments of another run on
# the same machine (another tag) are not this run's to judge.
SHM_TAG = f"t{os.getpid():x}"
os.environ["MMME_SHM_TAG"] = SHM_TAG


def _shm_segments() -> set[str]:
    if not SHM.is_dir():
        return set()
    names = {p.name for p in SHM.iterdir()}
    return {n for n in names if not n.startswith("mmme") or n.startswith(f"mmme{SHM_TAG}_")}


TINY_PROTOCOL = """
[protocol]
name = "tiny"
seed = 3
stimuli_dir = "@demo"
trials = 2

[timing]
rating_limit_s = 25.0

[[practice]]
id = "practice"
file = "practice.mp4"
duration_s = 0.6

[[clips]]
id = "happiness_1"
emotion = "happiness"
file = "happiness_1.mp4"
duration_s = 0.8

[[clips]]
id = "fear_1"
emotion = "fear"
file = "fear_1.mp4"
duration_s = 0.8

[neutral]
id = "neutral"
file = "neutral.mp4"
duration_s = 0.5
"""


@pytest.fixture(autouse=True)
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith(OUR_THREADS)
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"threads left running: {[t.name for t in extra]}"


@pytest.fixture(autouse=True)
def no_leftover_processes_or_shared_memory():
    """A test must not leave a child process (writer, simulator) or a /dev/shm segment."""
    import psutil

    procs, shm = _children(), _shm_segments()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = []
        for pid in _children() - procs:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    extra.append(pid)
            except psutil.Error:
                pass
        segments = _shm_segments() - shm
        if not extra and not segments or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = []
    for pid in extra:
        try:
            names.append(" ".join(psutil.Process(pid).cmdline())[:120])
            psutil.Process(pid).kill()  # do not poison the next test
        except psutil.Error:
            pass
    assert not names, f"child processes left running: {names}"
    assert not segments, f"shared memory left behind: {sorted(segments)}"


def _listening() -> set[tuple[str, int]]:
    """This process's listening TCP sockets (simulated devices' servers, LSL outlets)."""
    import psutil

    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.fixture(autouse=True)
def no_leftover_ports():
    """A test must not leave a server socket open (a simulator not closed)."""
    before = _listening()
    yield
    deadline = time.monotonic() + 3.0
    while (extra := _listening() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra, f"sockets left open: {sorted(extra)}"


def _qt_leftovers() -> tuple[set[int], set[int]]:
    """Visible top-level windows and active timers (by id) of the Qt application."""
    if "PyQt6.QtWidgets" not in sys.modules:
        return set(), set()
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return set(), set()
    app.processEvents()  # deleteLater() and close events that are due
    windows = {id(w) for w in QApplication.topLevelWidgets() if w.isVisible()}
    timers = {
        id(t)
        for owner in [app, *QApplication.topLevelWidgets()]
        for t in owner.findChildren(QTimer)
        if t.isActive()
    }
    return windows, timers


@pytest.fixture(autouse=True)
def no_leftover_windows_or_timers():
    """A GUI test must close its windows and stop its timers."""
    windows, timers = _qt_leftovers()
    yield
    new_windows, new_timers = _qt_leftovers()
    assert not new_windows - windows, f"{len(new_windows - windows)} window(s) left open"
    assert not new_timers - timers, f"{len(new_timers - timers)} Qt timer(s) left running"


@pytest.fixture(autouse=True)
def isolated_run_dir(monkeypatch):
    """Each test's session service has a run folder of its own (a short path: it holds a
    Unix socket), and must have ended when the test does."""
    import shutil
    import signal
    import tempfile

    from mmmelab.acquisition.messages import ServiceInfo

    folder = Path(tempfile.mkdtemp(prefix="mmme-run-", dir="/tmp"))
    monkeypatch.setenv("MMME_RUN_DIR", str(folder))
    yield folder
    left = []
    for name in ("engine", "participant"):
        info = ServiceInfo.read(folder, name)
        if info is None:
            continue
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and _alive(info.pid):
            time.sleep(0.05)
        if _alive(info.pid):
            left.append(f"{name} (process {info.pid})")
            os.kill(info.pid, signal.SIGKILL)  # do not poison the next test
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"session service left running: {left}"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Demo clips go to a per-session temporary cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def small_lab(tmp_path: Path) -> LabConfig:
    """The simulated lab with a small camera ROI, so tests move little data."""
    lab = load_lab(shipped("labs", "simulated"))
    camera = dataclasses.replace(lab.camera, width=256, height=128, queue_frames=300)
    return dataclasses.replace(
        lab, camera=camera, data_root=tmp_path / "sessions", sync_interval_s=1.0
    )


@pytest.fixture
def tiny_protocol_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PROTOCOL)
    return path


@pytest.fixture
def tiny_protocol(tiny_protocol_file: Path) -> Protocol:
    return load_protocol(tiny_protocol_file)


def write_small_lab_toml(path: Path, data_root: Path) -> Path:
    """A lab TOML file like the shipped simulated lab, with a small camera ROI."""
    text = shipped("labs", "simulated").read_text()
    text = text.replace("width = 2040", "width = 256").replace("height = 1080", "height = 128")
    text = text.replace('data_root = "~/mmme-data/sessions"', f'data_root = "{data_root}"')
    path.write_text(text)
    return path
