"""A console in a process of its own, for the tests that kill it.

``python -m tests.gui.console_child LAB PROTOCOL OUT ORPHAN_S`` opens the console
(offscreen) on a new session service with the participant's windows in their own
process, as ``mmme demo`` does; it starts a session (checks overridden) and prints
``recording <folder>`` once it records; then it runs until killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(lab_file: str, protocol_file: str, out: str, orphan_s: str) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    from mmmelab.acquisition.consolelink import start_service
    from mmmelab.acquisition.messages import ControllerState, Setup
    from mmmelab.config import load_lab
    from mmmelab.gui.app import LabApp
    from mmmelab.gui.controller import EngineController
    from mmmelab.gui.participant import ParticipantWindows
    from mmmelab.participant import ParticipantInfo
    from mmmelab.protocol import load_protocol

    app = QApplication(sys.argv[:1])
    lab, protocol = load_lab(Path(lab_file)), load_protocol(Path(protocol_file))
    setup = Setup(lab, protocol, Path(out), run_checks=False, orphan_timeout_s=float(orphan_s))
    controller = EngineController.attach(start_service(), setup)
    lab_app = LabApp(lab, protocol, participant_id="P01", controller=controller,
                     participant=ParticipantWindows.open())  # fmt: skip

    def state(now: ControllerState) -> None:
        if now is ControllerState.READY:
            controller.override_checks("a test that kills the console")
            controller.start(ParticipantInfo("P01"))
        elif now is ControllerState.RECORDING:
            print("recording", controller.folder, flush=True)

    controller.state_changed.connect(state)
    lab_app.show()
    lab_app.connect_devices()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
