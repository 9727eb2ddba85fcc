"""``mmme screenshots``: pictures of the three windows during a simulated session,
and of the coding window (:func:`shoot_coding`).

Runs the 2-trial demo protocol on the simulated lab, drives it like a participant
and an experimenter would, and saves PNGs of the console (recording, with the
preview and the plots filled), the participant window (a clip, then the
self-report screen) and the reminder window (showing the reminder). Under an X
server (``scripts/screenshots.sh`` starts a virtual one) it also saves the whole
screen with the three windows side by side.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def take_screenshots(out: Path, progress: Progress = _quiet) -> list[Path]:
    from PyQt6.QtWidgets import QApplication

    from mmmelab.config import load_lab, shipped
    from mmmelab.gui.devtools.scripted import scripted_session
    from mmmelab.protocol import load_protocol

    app = QApplication.instance() or QApplication(["mmme-screenshots"])
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mmme-screenshots-"))
    try:
        lab = load_lab(shipped("labs", "simulated"))
        protocol = load_protocol(shipped("protocols", "quick"))
        notes = "demo session; glasses off"
        setup: list[Path] = []

        def before_start(lab_app: Any) -> None:
            setup.extend(_shoot_setup(app, lab_app, out, progress))

        with scripted_session(
            app, lab, protocol, work, "P07", progress, notes, before_start=before_start
        ) as lab_app:
            return setup + _shoot(app, lab_app, out, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _shoot_setup(app: Any, lab_app: Any, out: Path, progress: Progress) -> list[Path]:
    """The console before Start: the checks run (a lamp flickering at mains rate and a
    badly gelled electrode, as found on a first morning), then the display check."""
    from mmmelab.gui.devtools.scripted import wait

    console, controller = lab_app.console, lab_app.controller
    sim = controller.engine.devices.simlab
    sim.camera.rig.flicker_hz, sim.camera.rig.flicker_depth = 100.0, 0.05
    sim.eeg_server.set_impedances({"O1": 38.0, "T8": 9.0})
    wait(app, lambda: console.preview.shown > 5, 10)
    got: list[Any] = []
    controller.rig_checked.connect(got.append)
    console.press_check()
    wait(app, lambda: bool(got), 60)
    lab_app.stimulus.display_checked.connect(got.append)
    console.press_display_check()
    wait(app, lambda: len(got) > 1, 30)
    wait(app, lambda: "mains" in console.setup_tabs.camera.flicker.text(), 5)
    saved = []
    for tab, name in ((0, "console-setup-camera"), (1, "console-setup-impedance")):
        console.setup_tabs.setCurrentIndex(tab)
        wait(app, lambda: False, 0.6)
        path = out / f"{name}.png"
        console.grab().save(str(path))
        saved.append(path)
        progress(f"saved {path}")
    sim.camera.rig.flicker_depth = 0.0
    sim.eeg_server.set_impedances()
    return saved


def _shoot(app: Any, lab_app: Any, out: Path, progress: Progress) -> list[Path]:
    from PyQt6.QtCore import Qt

    from mmmelab.acquisition.paradigm import Phase
    from mmmelab.gui.devtools.scripted import wait

    console, stim, reminder = lab_app.console, lab_app.stimulus, lab_app.reminder
    phase = lambda: stim.info.phase if stim.info is not None else None  # noqa: E731
    saved: list[Path] = []

    def save(widget: Any, name: str) -> None:
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        saved.append(path)
        progress(f"saved {path}")

    wait(app, lambda: phase() is Phase.WAIT_SPACE, 10)
    _pause(app, 1.0)
    save(stim, "stimulus-instructions")
    _key(stim, Qt.Key.Key_Space)  # the practice clip
    wait(app, lambda: phase() is Phase.RATING, 20)
    _key(stim, Qt.Key.Key_1)
    _key(stim, Qt.Key.Key_6)
    _pause(app, 1.5)
    save(stim, "stimulus-rating")
    _key(stim, Qt.Key.Key_5)
    _key(stim, Qt.Key.Key_Return)
    wait(app, lambda: phase() is Phase.WAIT_SPACE, 20)
    _pause(app, 0.8)
    _key(stim, Qt.Key.Key_Space)  # trial 1
    wait(app, lambda: phase() is Phase.CLIP, 10)
    _pause(app, 1.5)
    save(stim, "stimulus-clip")
    console.press_note()
    _pause(app, 0.5)
    console.press_reminder()
    _pause(app, 0.6)
    save(reminder, "reminder")
    save(console, "console")
    screen = console.screen()
    if app.platformName() == "xcb" and screen is not None:
        path = out / "desktop.png"
        screen.grabWindow(0).save(str(path))
        saved.append(path)
        progress(f"saved {path}")
    return saved


def _key(widget: Any, key: Any) -> None:
    from PyQt6.QtTest import QTest

    QTest.keyClick(widget, key)  # type: ignore[call-overload]  # static; the stubs say not


def _pause(app: Any, seconds: float) -> None:
    from mmmelab.gui.devtools.scripted import wait

    wait(app, lambda: False, seconds)


def shoot_coding(
    folder: Path, out: Path, spots: Path | None = None, coder: str = "ann"
) -> list[Path]:
    """PNGs of the coding window on ``folder`` (for the README): the coder at the apex
    of their first event with the mark of a second in progress."""
    import time

    from PyQt6.QtWidgets import QApplication

    from mmmelab.analysis.annotations.coding import CodingSession
    from mmmelab.gui.annotate import CodingWindow

    app = QApplication.instance() or QApplication(["mmme-screenshots"])
    model = CodingSession(folder, coder, spots)
    saved = []
    try:
        model.start_background()
        model.wait_background(120)
        win = CodingWindow(model)
        win.resize(1600, 1000)
        win.show()
        first = model.table.annotations[0] if model.table.annotations else None
        if first is not None:
            win._jump(first.apex if first.apex is not None else first.onset)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            app.processEvents()
        path = out / "annotate.png"
        win.grab().save(str(path))
        saved.append(path)
        win.close()
    finally:
        model.close()
    return saved
