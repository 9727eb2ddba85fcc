"""The fault cases of ``mmme bench faults`` that need more than an engine in this
process: a disk that fills up (a small tmpfs, mounted when this machine allows it),
signals to a recording process (SIGINT, SIGTERM, SIGKILL) and SIGKILL to a GUI
process. Each returns one row as :mod:`mmmelab.faultbench` describes.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.acquisition.engine import SessionEngine
from mmmelab.analysis.check import check_session
from mmmelab.errors import LabError
from mmmelab.faultbench import PRE_S, TARGET_LOST_S, TARGET_STOP_S, _lab, _protocol, _row, _spin
from mmmelab.participant import ParticipantInfo

SMALL_DISK = "24m"


def mount_small_disk(mnt: Path, size: str = SMALL_DISK) -> str:
    """Mount a tmpfs of ``size`` at ``mnt`` (created): a disk that really fills up.
    Returns "" on success, else why not (mounting needs the right to)."""
    mnt.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    return "" if done.returncode == 0 else (done.stderr.decode().strip() or "mount failed")


def unmount(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def _fill(folder: Path) -> None:
    """Write a filler file until the disk is full."""
    block = bytes(1 << 20)
    with open(folder / "filler.bin", "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
                fh.flush()


def _enospc_case(root: Path, at_stop: bool = False) -> dict[str, Any]:
    name = "enospc_at_stop" if at_stop else "enospc_mid_session"
    mnt = root / "small-disk"
    refused = mount_small_disk(mnt)
    if refused:
        return {"fault": name, "skipped": refused}
    try:
        real = shutil.disk_usage

        def roomy(path: Any) -> Any:  # the pre-flight would rightly refuse this disk
            usage = real(path)
            return usage._replace(free=10**12) if Path(path) == mnt else usage

        shutil.disk_usage = roomy  # the pre-flight's view; the writer still meets ENOSPC
        lab = _lab(root)
        _, protocol = _protocol(root)
        engine = SessionEngine(lab, protocol, ParticipantInfo("P01"), mnt, seed=3)
        folder = None
        stop_s = None
        try:
            engine.connect()
            folder = engine.start(simulate_participant=False)
            if at_stop:  # the disk fills in the very moment the session is stopped
                _spin(engine, 1.0)
                _fill(mnt)
            else:
                _spin(engine, 30.0)
            t0 = time.monotonic()
            engine.stop()
            stop_s = time.monotonic() - t0
        finally:
            engine.close()
            shutil.disk_usage = real
        # the disk itself is the fault's gap: everything after it filled is its own loss
        row = _row(name, folder, {}, stop_s, None)
        row["lost_s"] = {k: "ended" for k in row.get("lost_s", {})}
        row["failure"] = engine.health.fatal
        row["meets_targets"] = bool(
            row.get("session_readable") and row.get("recorded") and row.get("check_truthful")
            and (stop_s or 99) <= TARGET_STOP_S
            and row.get("status") in (("aborted", "failed") if at_stop else ("failed",))
        )  # fmt: skip
        return row
    finally:
        unmount(mnt)


def _small_lab_file(root: Path) -> Path:
    from mmmelab.config import shipped as _shipped

    lab_text = _shipped("labs", "simulated").read_text()
    for old, new in (
        ("width = 2040", "width = 256"),
        ("height = 1080", "height = 128"),
        ('data_root = "~/mmme-data/sessions"', f'data_root = "{root}"'),
        ('stimuli_root = "~/mmme-data/stimuli"', f'stimuli_root = "{root / "stimuli"}"'),
    ):
        lab_text = lab_text.replace(old, new)
    lab_path = root / "lab.toml"
    lab_path.write_text(lab_text)
    return lab_path


def _wait_for(proc: subprocess.Popen[bytes], text: str, timeout_s: float) -> bytes:
    """What ``proc`` wrote on stderr up to and including ``text`` (bounded wait)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            seen += chunk
            if text.encode() in seen:
                return seen
    raise LabError(f"the child never said {text!r}: {seen.decode(errors='replace')[-300:]}")


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip


def _sigkill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` alone (reaped), then wait for the writers it left."""
    _sigkill_recorder(proc.pid, lambda: proc.wait(10))


def _sigkill_service() -> None:
    """SIGKILL the session service (the process that records), then wait for the
    writers it left."""
    from mmmelab.acquisition.messages import ServiceInfo

    info = ServiceInfo.read()
    if info is None:
        raise LabError("no session service to kill")
    _sigkill_recorder(info.pid, None)


def _sigkill_recorder(pid: int, reap: Callable[[], object] | None) -> None:
    """SIGKILL process ``pid`` alone and wait for it (``reap``: its starter's wait),
    then wait (bounded) for the writer processes it left, which must finish their
    files by themselves; one that never does is killed (the session shows it)."""
    import psutil

    process = psutil.Process(pid)
    try:
        left = process.children(recursive=True)
    except psutil.Error:
        left = []
    process.kill()
    if reap is not None:
        reap()
    else:
        process.wait(10)
    _, alive = psutil.wait_procs(left, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """The child and its pipe gone, whatever happened."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def _killed_row(name: str, out: Path) -> dict[str, Any]:
    """A killed process: the session says 'recording' (check reports it) and the
    frames and signals up to the kill are readable."""
    folders = sorted(out.glob("sub-*")) if out.exists() else []
    row = _row(name, folders[0] if folders else None, {}, None, None)
    row["recorded"] = row.get("status") == "recording"
    if folders:  # what was kept: every stream up to the kill (PRE_S into the recording)
        streams = check_session(folders[0])["streams"].items()
        row["on_disk_s"] = {
            n: round(e["count"] / (e["rate_hz"] or 1.0), 2)
            for n, e in streams
            if e["kind"] != "markers"
        }
    row["meets_targets"] = bool(
        row.get("session_readable")
        and row["recorded"]
        and row.get("check_truthful")
        and all(v >= PRE_S - TARGET_LOST_S for v in row.get("on_disk_s", {"-": 0}).values())
    )
    return row


def _cli_case(name: str, signals: list[int], root: Path) -> dict[str, Any]:
    proto_path, _ = _protocol(root)
    lab_path = _small_lab_file(root)
    out = root / "sessions"
    proc = _spawn(["-m", "mmmelab", "record", "--lab", str(lab_path), "--protocol",
                   str(proto_path), "--participant", "P01", "--out", str(out)])  # fmt: skip
    try:
        seen = _wait_for(proc, "recording 'faults'", 60)
        time.sleep(PRE_S)
        if signals == [signal.SIGKILL]:  # the recorder: the session service
            _sigkill_service()
            return _killed_row(name, out)
        t0 = time.monotonic()
        for sig in signals:
            os.killpg(proc.pid, sig)
            time.sleep(0.05)
        _, rest = proc.communicate(timeout=60)
        stop_s = time.monotonic() - t0
    finally:
        _reap(proc)
    err = (seen + rest).decode(errors="replace")
    folders = sorted(out.glob("sub-*")) if out.exists() else []
    row = _row(name, folders[0] if folders else None, {}, stop_s, None)
    row["exit_code"] = proc.returncode
    row["traceback"] = "Traceback" in err
    row["recorded"] = row.get("status") == "aborted"
    row["check_truthful"] = bool(row.get("lost_s")) and all(
        v == 0.0 for v in row["lost_s"].values()
    )
    row["shown"] = "stopping and saving" in err
    row["meets_targets"] = bool(
        row.get("session_readable") and row["recorded"] and row["shown"]
        and row["check_truthful"] and not row["traceback"]
        and stop_s <= TARGET_STOP_S  # from the signal to the process's exit
    )  # fmt: skip
    return row


def _gui_case(root: Path) -> dict[str, Any]:
    """The GUI process (console, engine, simulators) SIGKILLed mid-recording."""
    proto_path, _ = _protocol(root)
    lab_path = _small_lab_file(root)
    out = root / "sessions"
    proc = _spawn(["-m", "mmmelab.gui.devtools.bench", "--lab", str(lab_path), "--protocol",
                   str(proto_path), "--out", str(out), "--seconds", "120"])  # fmt: skip
    try:
        _wait_for(proc, "recording ", 90)
        time.sleep(PRE_S)
        _sigkill(proc)
    finally:
        _reap(proc)
    return _killed_row("gui_sigkill", out)
