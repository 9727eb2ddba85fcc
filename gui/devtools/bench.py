"""``mmme bench gui``: the whole GUI on the simulated lab while recording at 150 fps.

The console, the participant window and the reminder window run as in a session
(offscreen when there is no display). A scripted participant presses Space and
answers the ratings with posted key events; the experimenter's reminder key is
posted every ``REMIND_EVERY_S``. Measured from the start of the recording:

The engine runs in the session service (its own process), as ``mmme demo`` runs it.

- ``event_loop_p99_ms`` / ``event_loop_max_ms``: lateness of a 10 ms precise timer on
  the GUI thread;
- ``preview_fps`` / ``plot_fps``: camera preview frames and plot redraws per second;
- ``console_fps``: redraws of the console window per second (paints within 5 ms
  counted as one);
- ``stimulus_frame_lateness_ms_p99``: shown minus due time of the clip frames;
- ``reminder_latency_ms_p95``: key event posted -> reminder window painted;
- ``stimulus_frames_dropped`` (and repeated): over every clip presentation;
- ``dropped``: camera frames lost meanwhile.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[str], None]

TICK_S = 0.010
REMIND_EVERY_S = 1.7
TARGETS = {
    "event_loop_p99_ms": ("<=", 10.0),
    "event_loop_max_ms": ("<=", 25.0),
    "preview_fps": (">=", 25.0),
    "plot_fps": (">=", 25.0),
    "reminder_latency_ms_p95": ("<=", 10.0),
    "stimulus_frames_dropped": ("==", 0),
    "stimulus_frame_lateness_ms_p99": ("<=", 4.0),
    "dropped": ("==", 0),
}
PAINT_BUCKET_S = 0.005  # paints of the console this close together are one redraw


def _quiet(_: str) -> None:
    pass


def bench_gui(seconds: float = 60.0, progress: Progress = _quiet) -> dict[str, Any]:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    from mmmelab.acquisition.study import repeated_clip_protocol
    from mmmelab.config import load_lab, shipped
    from mmmelab.protocol import load_protocol

    app = QApplication.instance() or QApplication(["mmme-bench-gui"])
    work = Path(tempfile.mkdtemp(prefix="mmme-gui-bench-"))
    run_dir = os.environ.get("MMME_RUN_DIR")
    os.environ["MMME_RUN_DIR"] = str(work / "run")  # its own service, whatever else runs
    try:
        lab = load_lab(shipped("labs", "simulated"))
        lab = dataclasses.replace(lab, data_root=work)
        # one trial takes about 10 s (Space, 5 s clip, answer, 3 s neutral); the disk
        # pre-flight check plans for the longest case, so no more trials than needed
        # (the scripted participant answers within 1.6 s)
        path = work / "gui-bench.toml"
        n_clips = max(2, int(seconds / 9.5) + 1)
        protocol = load_protocol(repeated_clip_protocol(path, n_clips, 5.0, 3.0, 5, 4.0))
        return _run(app, lab, protocol, work, seconds, progress)
    finally:
        if run_dir is None:
            os.environ.pop("MMME_RUN_DIR", None)
        else:
            os.environ["MMME_RUN_DIR"] = run_dir
        shutil.rmtree(work, ignore_errors=True)


def _run(
    app: Any, lab: Any, protocol: Any, work: Path, seconds: float, progress: Progress
) -> dict[str, Any]:
    from mmmelab.gui.devtools.scripted import scripted_session

    setup: dict[str, Any] = {}

    def preview_phase(lab_app: Any) -> None:
        setup.update(_preview_phase(app, lab_app, progress))

    with scripted_session(
        app, lab, protocol, work, "P9001", progress, before_start=preview_phase, in_service=True
    ) as lab_app:
        result = _measure(app, lab_app, lab, seconds, progress)
    result.update(setup)
    for name, rule in SETUP_TARGETS.items():
        result["targets_met"][name] = _meets(result.get(name), *rule)
    return result


PREVIEW_S = 3.0
SETUP_TARGETS = {"preview_phase_fps": (">=", 25.0), "check_rig_s": ("<=", 15.0)}


def _preview_phase(app: Any, lab_app: Any, progress: Progress) -> dict[str, Any]:
    """Before Start: the camera preview's rate, then every set-up check from the console."""
    from mmmelab.gui.devtools.scripted import wait

    console, controller = lab_app.console, lab_app.controller
    progress(f"preview phase: {PREVIEW_S:g} s of live preview, then the set-up checks")
    wait(app, lambda: console.preview.shown > 0, 10)
    t0, shown0 = controller.clock(), console.preview.shown
    wait(app, lambda: False, PREVIEW_S)
    fps = (console.preview.shown - shown0) / (controller.clock() - t0)
    got: list[dict[str, Any]] = []
    controller.rig_checked.connect(got.append)
    console.press_check()
    wait(app, lambda: bool(got), 60)
    controller.rig_checked.disconnect(got.append)
    record = got[0] if got else {}
    loop = record.get("loopback", {}).get("streams", {})
    return {
        "preview_phase_fps": round(fps, 1),
        "check_rig_s": record.get("duration_s"),
        "check_rig_verdict": record.get("verdict"),
        "trigger_loopback_ms": {n: r.get("latency_ms") for n, r in loop.items()},
    }


def _measure(
    app: Any, lab_app: Any, lab: Any, seconds: float, progress: Progress
) -> dict[str, Any]:
    from PyQt6.QtCore import QEvent, QEventLoop, Qt, QTimer
    from PyQt6.QtGui import QKeyEvent

    from mmmelab.acquisition.paradigm import Phase
    from mmmelab.gui.app import key_of
    from mmmelab.gui.devtools.scripted import wait

    console, controller = lab_app.console, lab_app.controller
    clock = controller.clock
    progress(f"recording with the GUI for {seconds:g} s")

    def post(widget: Any, key: int) -> None:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            app.postEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier))

    rng = random.Random(3)
    lags: list[float] = []
    key_posts: list[float] = []
    state: dict[str, Any] = {"last": clock(), "due": None, "phase": None}

    def heartbeat() -> None:
        now = clock()
        lags.append(now - state["last"] - TICK_S)
        state["last"] = now

    def participant() -> None:  # keys typed on the console go to the participant's windows
        info = controller.phase
        phase = info.phase if info is not None else None
        if phase != state["phase"]:
            state["phase"] = phase
            delays = {Phase.WAIT_SPACE: (0.3, 0.8), Phase.RATING: (0.8, 1.6)}
            delay = delays.get(phase) if phase is not None else None
            state["due"] = clock() + rng.uniform(*delay) if delay else None
        if state["due"] is None or clock() < state["due"]:
            return
        state["due"] = None
        if phase is Phase.WAIT_SPACE:
            post(console, Qt.Key.Key_Space)
        elif phase is Phase.RATING:
            for key in (Qt.Key.Key_1, Qt.Key.Key_7, Qt.Key.Key_6, Qt.Key.Key_Return):
                post(console, key)

    def remind() -> None:
        key_posts.append(clock())
        post(console, key_of(lab.reminder.key))

    timers = []
    for interval_ms, slot, precise in (
        (int(TICK_S * 1000), heartbeat, True),
        (50, participant, False),
        (int(REMIND_EVERY_S * 1000), remind, False),
    ):
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer if precise else Qt.TimerType.CoarseTimer)
        timer.timeout.connect(slot)
        timer.start(interval_ms)
        timers.append(timer)
    plots = console.plots
    assert plots is not None
    paints = _PaintCounter(console, clock)
    app.installEventFilter(paints)
    t0 = clock()
    preview0, plots0 = console.preview.shown, plots.updates
    loop = QEventLoop()  # the real event loop, as in the application (not a polling loop)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    elapsed = clock() - t0
    preview_n, plots_n = console.preview.shown - preview0, plots.updates - plots0
    for timer in timers:
        timer.stop()
    app.removeEventFilter(paints)
    shown, changes = _participant_figures(lab_app)
    latencies = _reminder_latencies(key_posts, changes)
    progress("stopping")
    console.ask = lambda question: True
    console.close()
    wait(app, lambda: not console.isVisible(), 30)
    camera = controller.telemetry().camera  # final, after the stop
    lag_ms = np.array(lags[1:]) * 1000.0
    late_ms = 1000.0 * np.array([x for s in shown for x in s.lateness_s])
    result: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "platform": app.platformName(),
        "event_loop_p50_ms": _pct(lag_ms, 50),
        "event_loop_p99_ms": _pct(lag_ms, 99),
        "event_loop_max_ms": round(float(lag_ms.max()), 2) if len(lag_ms) else None,
        "preview_fps": round(preview_n / elapsed, 1),
        "plot_fps": round(plots_n / elapsed, 1),
        "console_fps": round(paints.redraws / elapsed, 1),
        "reminder_presses": len(latencies),
        "reminder_latency_ms_p50": _pct(latencies, 50),
        "reminder_latency_ms_p95": _pct(latencies, 95),
        "stimulus_presentations": len(shown),
        "stimulus_frames_shown": sum(s.shown for s in shown),
        "stimulus_frames_dropped": sum(s.dropped for s in shown),
        "stimulus_frames_repeated": sum(s.repeated for s in shown),
        "stimulus_late_ms_max": round(float(late_ms.max()), 2) if len(late_ms) else None,
        "stimulus_frame_lateness_ms_p99": _pct(late_ms, 99),
        "camera_frames": camera.frames if camera is not None else 0,
        "dropped": camera.dropped if camera is not None else -1,
    }
    result["targets_met"] = {name: _meets(result[name], *rule) for name, rule in TARGETS.items()}
    return result


class _PaintCounter:
    """Counts the console window's redraws (an application event filter)."""

    def __new__(cls, console: Any, clock: Callable[[], float]) -> Any:
        from PyQt6.QtCore import QEvent, QObject

        class Counter(QObject):
            def __init__(self) -> None:
                super().__init__()
                self.redraws = 0
                self._last = -1.0

            def eventFilter(self, obj: Any, event: Any) -> bool:
                if event is not None and event.type() == QEvent.Type.Paint:
                    window = obj.window() if hasattr(obj, "window") else None
                    now = clock()
                    if window is console and now - self._last > PAINT_BUCKET_S:
                        self.redraws += 1
                        self._last = now
                return False

        return Counter()


def _participant_figures(lab_app: Any) -> tuple[list[Any], list[tuple[bool, float, float, str]]]:
    """Each clip presentation (shown, dropped, repeated, lateness_s) and each reminder
    change, from the participant's windows - asked of their process when they have one."""
    if lab_app.participant is not None:
        stats = lab_app.participant.stats()
        if stats is None:
            raise RuntimeError("the participant's windows sent no figures")
        return list(stats.presentations), list(stats.reminder_changes)
    shown = [s for s in lab_app.stimulus.schedules if s.started]
    return shown, list(lab_app.reminder.changes)


def _reminder_latencies(
    posts: list[float], changes: list[tuple[bool, float, float, str]]
) -> np.ndarray:
    """Each posted key matched to the key-driven reminder change that followed it (ms)."""
    shown = [t_display for _on, _t_in, t_display, why in changes if why == "key"]
    out = []
    j = 0
    for t_post in posts:
        while j < len(shown) and shown[j] < t_post:
            j += 1
        if j < len(shown):
            out.append((shown[j] - t_post) * 1000.0)
            j += 1
    return np.array(out)


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def _meets(value: Any, op: str, limit: float) -> bool:
    if value is None:
        return False
    return {"<=": value <= limit, ">=": value >= limit, "==": value == limit}[op]


def hold_recording(lab_path: Path, protocol_path: Path, out: Path, seconds: float) -> int:
    """Record with the whole GUI (offscreen without a display) for ``seconds``, then
    close the console as the experimenter would. The fault bench runs this in a
    child process and SIGKILLs it mid-recording: what is on disk must be readable.
    Prints ``recording <folder>`` on stderr once the recording runs."""
    import sys

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import QEventLoop, QTimer
    from PyQt6.QtWidgets import QApplication

    from mmmelab.config import load_lab
    from mmmelab.gui.devtools.scripted import scripted_session
    from mmmelab.protocol import load_protocol

    app = QApplication.instance() or QApplication(["mmme-hold-recording"])
    lab, protocol = load_lab(lab_path), load_protocol(protocol_path)
    with scripted_session(app, lab, protocol, out, "P01", lambda _: None) as lab_app:
        folder = lab_app.controller.folder
        print(f"recording {folder}", file=sys.stderr, flush=True)
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=hold_recording.__doc__)
    parser.add_argument("--lab", type=Path, required=True)
    parser.add_argument("--protocol", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    a = parser.parse_args()
    raise SystemExit(hold_recording(a.lab, a.protocol, a.out, a.seconds))
