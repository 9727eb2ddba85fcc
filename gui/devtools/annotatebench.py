"""The coding window measured (``mmme bench annotate`` runs these in child processes).

``measure_open``: a session to the first frame and its tracks on screen.
``measure_frames``: seeks to random frames (as G, N, M, J or a click make them:
timed to the face painted, ``repaint`` being synchronous; and to the tracks read and
drawn as well, in the next turn of the event loop), steps of +-1 frame (timed to the
frame and the tracks painted, ``processEvents`` after the key) and playback at 1/5
speed (frames shown per second, frames skipped, ticks that came late).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _quiet_offscreen(kind: Any, context: Any, message: str | None) -> None:
    """Qt's messages, less the offscreen platform's one per relayout (it has no
    window manager to pass size hints to)."""
    if message and "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def _app() -> Any:
    from PyQt6.QtCore import qInstallMessageHandler
    from PyQt6.QtWidgets import QApplication

    qInstallMessageHandler(_quiet_offscreen)
    return QApplication.instance() or QApplication(["mmme-bench-annotate"])


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_open(folder: Path) -> dict[str, Any]:
    from mmmelab.analysis.annotations.coding import CodingSession
    from mmmelab.gui.annotate import CodingWindow

    app = _app()
    t0 = time.perf_counter()
    model = CodingSession(folder, "bench")
    win = CodingWindow(model)
    win.show()
    app.processEvents()
    open_s = time.perf_counter() - t0
    model.start_background()  # (the window starts it itself a moment after showing)
    frames = len(model.numbers)
    # walk through the session a little, as a coder does, then the heart rate arrives
    for n in np.linspace(model.first, model.last, 40).astype(int):
        win.show_frame(int(n))
        app.processEvents()
    model.wait_background(600)
    hr_s = time.perf_counter() - t0
    win.close()
    model.close()
    return {"open_s": open_s, "heart_rate_ready_s": hr_s, "frames": frames,
            "tracks": len(model.track_names), "peak_rss_mb": _rss_mb()}  # fmt: skip


def _timed(app: Any, action: Any) -> float:
    t = time.perf_counter()
    action()
    app.processEvents()
    return (time.perf_counter() - t) * 1000.0


def measure_frames(folder: Path, seeks: int = 200, steps: int = 300,
                   play_s: float = 10.0, seed: int = 3) -> dict[str, Any]:  # fmt: skip
    from PyQt6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from mmmelab.analysis.annotations.coding import SPEEDS, CodingSession
    from mmmelab.gui.annotate import CodingWindow

    app = _app()
    model = CodingSession(folder, "bench")
    win = CodingWindow(model)
    win.resize(1600, 1000)
    win.show()
    app.processEvents()
    rng = np.random.default_rng(seed)
    targets = rng.integers(model.first, model.last + 1, seeks)
    seek_ms, seek_tracks_ms = [], []
    viewport = win.view.viewport()
    for n in targets:  # as a seek comes (G, N, M, J, a click): the face first
        t = time.perf_counter()
        win._jump(int(n))
        if viewport is not None:
            viewport.repaint()  # painted now, synchronously
        seek_ms.append((time.perf_counter() - t) * 1000.0)
        app.processEvents()  # then the tracks, read and drawn in the next turn
        seek_tracks_ms.append((time.perf_counter() - t) * 1000.0)
    win.show_frame(model.first + 100)
    app.processEvents()
    step_ms = []
    for i in range(steps):  # forward, then back, as a coder rocks around an onset
        d = 1 if (i // 30) % 2 == 0 else -1
        step_ms.append(_timed(app, lambda d=d: win.show_frame(model.step(d))))
    win.show_frame(model.first + 50)
    win.set_speed(SPEEDS.index(1 / 5))
    app.processEvents()
    win.shown_frames = win.skipped_frames = win.late_ticks = 0
    start = model.position
    clock = QElapsedTimer()
    clock.start()
    loop = QEventLoop()
    QTimer.singleShot(int(play_s * 1000), loop.quit)
    win.play(1)
    loop.exec()
    win.pause()
    elapsed = clock.elapsed() / 1000.0
    shown, advanced = win.shown_frames, model.position - start
    out = {
        "seek_ms_p50": float(np.percentile(seek_ms, 50)),
        "seek_ms_p95": float(np.percentile(seek_ms, 95)),
        "seek_ms_max": float(np.max(seek_ms)),
        "seek_with_tracks_ms_p50": float(np.percentile(seek_tracks_ms, 50)),
        "seek_with_tracks_ms_p95": float(np.percentile(seek_tracks_ms, 95)),
        "step_ms_p50": float(np.percentile(step_ms, 50)),
        "step_ms_p95": float(np.percentile(step_ms, 95)),
        "step_ms_max": float(np.max(step_ms)),
        "play_speed": "1/5",
        "play_fps": shown / elapsed,
        "play_fps_due": SPEEDS[win.speed_index] * model.fps,
        "play_frames_shown": shown,
        "play_frames_advanced": int(advanced),
        "play_skipped": win.skipped_frames,
        "play_late_ticks": win.late_ticks,
        "platform": app.platformName(),
        "peak_rss_mb": _rss_mb(),
    }
    win.close()
    model.close()
    return out
