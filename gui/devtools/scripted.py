"""Driving the whole GUI from a script (the GUI benchmark and the screenshots).

``scripted_session`` builds the application on a lab, connects, starts the
recording and hands it over; on the way out it closes the console (saying "yes"
to the question a real experimenter would get) and waits until the session is
saved and every window and thread is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmmelab.acquisition.messages import ControllerState
from mmmelab.config import LabConfig
from mmmelab.errors import LabError
from mmmelab.gui.app import LabApp
from mmmelab.protocol import Protocol

Progress = Callable[[str], None]


def wait(app: Any, done: Callable[[], bool], timeout_s: float) -> None:
    """Run the event loop until ``done()`` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)


@contextmanager
def scripted_session(
    app: Any,
    lab: LabConfig,
    protocol: Protocol,
    out_root: Path,
    participant_id: str,
    progress: Progress,
    notes: str = "",
    before_start: Callable[[LabApp], None] | None = None,
    in_service: bool = False,
) -> Iterator[LabApp]:
    """A recording in the GUI, from Start to saved. Raises LabError when it cannot start.

    ``in_service``: the engine in the session service and the participant's windows
    in their own process (as ``mmme demo`` runs them), else all in this process (the
    simulated devices and the windows reachable)."""
    controller = participant = None
    if in_service:
        from mmmelab.acquisition.consolelink import start_service
        from mmmelab.acquisition.messages import Setup
        from mmmelab.gui.controller import EngineController
        from mmmelab.gui.participant import ParticipantWindows

        setup = Setup(lab, protocol, out_root, run_checks=False)
        controller = EngineController.attach(start_service(), setup)
        participant = ParticipantWindows.open()
    lab_app = LabApp(
        lab, protocol, out_root=out_root, run_checks=False, participant_id=participant_id,
        controller=controller, participant=participant,
    )  # fmt: skip
    try:
        controller, console = lab_app.controller, lab_app.console
        lab_app.show()
        progress("connecting the simulated lab")
        lab_app.connect_devices()
        failed = ControllerState.FAILED
        wait(app, lambda: controller.state in (ControllerState.READY, failed), 60)
        if controller.state is not ControllerState.READY:
            raise LabError(f"the lab did not connect: {controller.error or 'timeout'}")
        console.notes.setPlainText(notes)
        if before_start is not None:  # the preview phase (the GUI benchmark measures it)
            before_start(lab_app)
        if not console.setup.passed():
            console.setup.override.setChecked(True)  # a scripted run: the override is kept
        console.press_start()
        recording = ControllerState.RECORDING
        wait(app, lambda: controller.state in (recording, failed), 30)
        state: ControllerState = controller.state  # (changed by the wait, not narrowed)
        if state is not ControllerState.RECORDING:
            raise LabError(f"the recording did not start: {controller.error or 'timeout'}")
        yield lab_app
    finally:
        console = lab_app.console
        if console.isVisible():
            console.ask = lambda question: True  # type: ignore[method-assign]  # no dialog
            console.close()
            wait(app, lambda: not console.isVisible(), 30)
        lab_app.shutdown()
