"""``mmme bench faults``: one short recording per fault, and what became of it.

Each case records the simulated lab (small camera ROI, every device), injects one
fault after ``PRE_S`` seconds, records ``POST_S`` more, stops, then reads the
session back as an analyst would. One row per fault::

    fault            what was done
    session_readable open_session works and the manifest is final (or, for a
                     killed recorder, readable as far as it got)
    lost_s           per stream: seconds of data lost beyond the fault's own gap
                     (a stall or a disconnection loses its own length by nature;
                     a stream whose device is gone for good is "ended")
    recorded         the session holds a fault row or problem for it
    shown            the operator is told: the check summary printed at the end
                     of a recording names it
    check_truthful   ``mmme check`` is not ok, and counts at least every frame or
                     sample that is truly missing (camera: the simulator's own count)
    stop_s           time taken by ``stop()``

Cases that need a privilege this machine lacks (mounting a small disk) are
reported with ``"skipped"`` and the reason, never silently left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.acquisition.engine import SessionEngine
from mmmelab.analysis.check import check_session
from mmmelab.config import LabConfig, load_lab, shipped
from mmmelab.errors import LabError
from mmmelab.participant import ParticipantInfo
from mmmelab.protocol import Protocol, load_protocol
from mmmelab.storage import open_session

PRE_S = 2.0
POST_S = 3.0
TARGET_LOST_S = 1.0
TARGET_STOP_S = 2.0

Inject = Callable[[SessionEngine], dict[str, float]]  # returns each stream's own gap, s

LONG_PROTOCOL = """
[protocol]
name = "faults"
seed = 1
stimuli_dir = "@demo"
trials = 1

[[practice]]
id = "practice"
file = "practice.mp4"
duration_s = 30.0

[[clips]]
id = "happiness_1"
emotion = "happiness"
file = "happiness_1.mp4"
duration_s = 0.8

[neutral]
id = "neutral"
file = "neutral.mp4"
duration_s = 0.5
"""


def _lab(root: Path) -> LabConfig:
    lab = load_lab(shipped("labs", "simulated"))
    camera = dataclasses.replace(lab.camera, width=256, height=128, queue_frames=300)
    return dataclasses.replace(
        lab,
        camera=camera,
        data_root=root,
        stimuli_root=root / "stimuli",
        sync_interval_s=1.0,
    )


def _protocol(root: Path) -> tuple[Path, Protocol]:
    path = root / "faults.toml"
    path.write_text(LONG_PROTOCOL)
    return path, load_protocol(path)


# ---------------------------------------------------------------- the faults


def _eeg(engine: SessionEngine) -> Any:
    return engine.devices.simlab.eeg_server


def eeg_disconnect(engine: SessionEngine) -> dict[str, float]:
    server = _eeg(engine)
    server.faults.disconnect_down_s = 0.5
    server.faults.disconnect_at_block = server.blocks_sent + 1
    return {"eeg": 0.5 + 0.3}  # down time plus the reconnect back-off


def eeg_stall(engine: SessionEngine) -> dict[str, float]:
    server = _eeg(engine)
    server.faults.stall_s = 1.0
    server.faults.stall_at_block = server.blocks_sent + 1
    return {}  # a stall delays data, it must not lose any


def eeg_garbage(engine: SessionEngine) -> dict[str, float]:
    server = _eeg(engine)
    server.faults.malformed_blocks = {server.blocks_sent + 2, server.blocks_sent + 5}
    return {"eeg": 0.1}  # two malformed blocks are skipped (40 ms each)


def ndt_vendor_stop(engine: SessionEngine) -> dict[str, float]:
    engine.devices.simlab.acq.stop_from_ui()
    return {"physio": float("inf")}  # acquisition is over in AcqKnowledge


def ndt_connection_drop(engine: SessionEngine) -> dict[str, float]:
    acq = engine.devices.simlab.acq
    acq.faults.disconnect_at_block = acq.samples_sent // acq.block + 1
    return {}  # acquisition goes on in AcqKnowledge: only the restart's own time is lost


def ndt_blocking_call(engine: SessionEngine) -> dict[str, float]:
    engine.devices.simlab.acq.open_dialog(POST_S + 5.0)  # still open at stop
    engine.mark("note while a dialog is open in AcqKnowledge")
    return {}  # data flows on behind the dialog; markers to AcqKnowledge time out


def triggerbox_unplugged(engine: SessionEngine) -> dict[str, float]:
    engine.devices.simlab.triggerbox.vanish()
    return {}


def camera_unplugged(engine: SessionEngine) -> dict[str, float]:
    engine.devices.simlab.camera.unplug()
    return {"camera": float("inf")}


def frame_writer_sigkill(engine: SessionEngine) -> dict[str, float]:
    assert engine.recording.pipeline is not None and engine.recording.pipeline.writer is not None
    os.kill(engine.recording.pipeline.writer.process.pid, signal.SIGKILL)
    return {}


def frame_writer_sigstop_3s(engine: SessionEngine) -> dict[str, float]:
    assert engine.recording.pipeline is not None and engine.recording.pipeline.writer is not None
    pid = engine.recording.pipeline.writer.process.pid
    os.kill(pid, signal.SIGSTOP)

    def resume() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    _after(engine, 3.0, resume)
    return {}


def signal_writer_killed(engine: SessionEngine) -> dict[str, float]:
    assert engine.record.writer is not None and engine.record.writer.signals is not None
    os.kill(engine.record.writer.signals._proc.pid, signal.SIGKILL)
    return {"eeg": float("inf"), "physio": float("inf")}  # the session is stopped


def recorder_exception(engine: SessionEngine) -> dict[str, float]:
    driver = engine.devices.signal_drivers["physio"]

    def broken(timeout_s: float) -> Any:
        raise ZeroDivisionError("injected bug in the physiology driver")

    driver.read = broken  # type: ignore[method-assign]  # the injected fault
    return {"physio": float("inf")}


def bus_listener_exception(engine: SessionEngine) -> dict[str, float]:
    def bad(rec: Any) -> None:
        raise RuntimeError("injected bug in a marker listener")

    engine.record.on_marker.append(bad)
    engine.mark("after the bad listener")
    return {}


_TIMERS: list[tuple[float, Callable[[], None]]] = []


def _after(engine: SessionEngine, seconds: float, action: Callable[[], None]) -> None:
    _TIMERS.append((time.monotonic() + seconds, action))


def _run_timers() -> None:
    now = time.monotonic()
    for item in list(_TIMERS):
        if item[0] <= now:
            _TIMERS.remove(item)
            item[1]()


ENGINE_CASES: dict[str, Inject] = {
    "eeg_server_disconnect": eeg_disconnect,
    "eeg_server_stall_1s": eeg_stall,
    "eeg_server_garbage": eeg_garbage,
    "ndt_connection_drop": ndt_connection_drop,
    "ndt_vendor_stop": ndt_vendor_stop,
    "ndt_blocking_call": ndt_blocking_call,
    "trigger_box_unplugged": triggerbox_unplugged,
    "camera_unplugged": camera_unplugged,
    "frame_writer_sigkill": frame_writer_sigkill,
    "frame_writer_sigstop_3s": frame_writer_sigstop_3s,
    "signal_writer_killed": signal_writer_killed,
    "recorder_exception": recorder_exception,
    "bus_listener_exception": bus_listener_exception,
}


# ---------------------------------------------------------------- measuring


def _lost(report: dict[str, Any], own_gap: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entry in report["streams"].items():
        if entry["kind"] == "markers":
            continue
        gap = own_gap.get(name, 0.0)
        if gap == float("inf"):
            out[name] = "ended"
            continue
        rate = entry["rate_hz"] or 1.0
        out[name] = round(max(0.0, entry["dropped"] / rate - gap), 3)
    return out


def _row(
    name: str,
    folder: Path | None,
    own_gap: dict[str, float],
    stop_s: float | None,
    truth_frames: int | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"fault": name, "stop_s": round(stop_s, 3) if stop_s else stop_s}
    try:
        if folder is None:
            raise LabError("no session folder")
        with open_session(folder) as s:
            kinds = [f["kind"].decode() for f in s.faults]
            problems = list(s.manifest.get("problems", [])) + list(s.problems)
            final = s.status.value != "recording" or name.endswith("_sigkill")
        report = check_session(folder)
    except LabError as exc:
        return row | {"session_readable": False, "error": str(exc)}
    row["session_readable"] = final
    row["lost_s"] = _lost(report, own_gap)
    row["recorded"] = bool(problems) or bool(kinds)
    row["shown"] = bool(report["problems"] or report["warnings"])
    cam = report["streams"].get("camera", {})
    missing = (
        max(0, truth_frames - cam.get("count", 0)) if truth_frames is not None else 0
    )  # frames the simulated camera sent that are not on disk
    counted = cam.get("dropped", 0)
    row["check_truthful"] = (not report["ok"]) and (
        counted >= missing or own_gap.get("camera") == float("inf")
    )
    row["status"] = report["status"]
    row["meets_targets"] = bool(
        row["session_readable"]
        and row["recorded"]
        and row["shown"]
        and row["check_truthful"]
        and all(v == "ended" or v <= TARGET_LOST_S for v in row["lost_s"].values())
        and (stop_s is None or stop_s <= TARGET_STOP_S)
    )
    return row


def _engine_case(name: str, inject: Inject, root: Path) -> dict[str, Any]:
    lab = _lab(root)
    _, protocol = _protocol(root)
    _TIMERS.clear()
    engine = SessionEngine(lab, protocol, ParticipantInfo("P01"), root / "sessions", seed=3)
    folder = None
    stop_s = None
    truth_frames = None
    try:
        engine.connect()
        folder = engine.start(simulate_participant=False)
        _spin(engine, PRE_S)
        own_gap = inject(engine)
        _spin(engine, POST_S)
        t0 = time.monotonic()
        engine.stop()
        stop_s = time.monotonic() - t0
        # what the camera driver received: every one of them should be on disk
        camera = engine.telemetry().camera
        truth_frames = camera.frames if camera is not None else 0
    finally:
        for _, action in list(_TIMERS):
            action()
        _TIMERS.clear()
        engine.close()
    return _row(name, folder, own_gap, stop_s, truth_frames)


def _spin(engine: SessionEngine, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and engine.health.fatal is None:
        engine.step()
        _run_timers()


def bench_faults(progress: Callable[[str], None], only: list[str] | None = None) -> dict[str, Any]:
    """Every fault case, each in its own temporary folder; the rows and a summary."""
    from mmmelab.faultcases import _cli_case, _enospc_case, _gui_case  # they use the above

    cases: list[tuple[str, Callable[[Path], dict[str, Any]]]] = [
        (n, functools.partial(_engine_case, n, f)) for n, f in ENGINE_CASES.items()
    ]
    cases += [
        ("enospc_mid_session", _enospc_case),
        ("enospc_at_stop", functools.partial(_enospc_case, at_stop=True)),
        ("sigint", lambda root: _cli_case("sigint", [signal.SIGINT], root)),
        ("double_sigint", lambda root: _cli_case("double_sigint", [signal.SIGINT] * 2, root)),
        ("sigterm", lambda root: _cli_case("sigterm", [signal.SIGTERM], root)),
        ("recorder_sigkill", lambda root: _cli_case("recorder_sigkill", [signal.SIGKILL], root)),
        ("gui_sigkill", _gui_case),
    ]  # fmt: skip
    rows = []
    for name, run in cases:
        if only and name not in only:
            continue
        progress(f"fault: {name}")
        with tempfile.TemporaryDirectory(prefix=f"mmme-fault-{name}-") as tmp:
            try:
                rows.append(run(Path(tmp)))
            except Exception as exc:  # a case that crashes is a result, not an abort
                logging.getLogger(__name__).exception("fault case %s crashed", name)
                rows.append({"fault": name, "error": f"{type(exc).__name__}: {exc}",
                             "meets_targets": False})  # fmt: skip
    ran = [r for r in rows if "skipped" not in r]
    return {
        "benchmark": "faults",
        "targets": {"lost_s_max": TARGET_LOST_S, "stop_s_max": TARGET_STOP_S},
        "rows": rows,
        "met": sum(bool(r.get("meets_targets")) for r in ran),
        "of": len(ran),
        "skipped": [r["fault"] for r in rows if "skipped" in r],
    }
