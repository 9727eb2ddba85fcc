"""The experimenter's console: participant form, devices, live views, trials, log, controls.

Keys (in every window, see :mod:`mmmelab.gui.app`): the reminder key from the lab
config (default F1) shows or hides the CMRR reminder; F2 marks the moment with
the note typed beside it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mmmelab.acquisition.messages import ControllerState, PhaseInfo, SessionResult
from mmmelab.acquisition.paradigm import TrialResult
from mmmelab.gui.controller import EngineController
from mmmelab.gui.liveview import PreviewView, SignalPlots, paint_now
from mmmelab.gui.panels import (
    DevicePanel,
    EventLog,
    PanelLogHandler,
    ParticipantForm,
    RecordingPanel,
    TrialList,
    boxed,
    phase_text,
    state_text,
)
from mmmelab.gui.reportlaunch import ReportLauncher
from mmmelab.gui.setupview import SetupPanel, SetupTabs
from mmmelab.participant import ParticipantInfo
from mmmelab.sync.codes import EventCode

logger = logging.getLogger(__name__)

LIVE_MS = 16  # preview poll (new frames only) - the camera preview comes at about 30 fps
PLOT_MS = 33  # signal plots
SLOW_MS = 250  # telemetry, countdown
NOTE_KEY = "F2"


class Reminder(Protocol):
    """The reminder display as the console sees it: in this process or another."""

    def toggle(self, t_key: float) -> None: ...


class ConsoleWindow(QMainWindow):
    closed = pyqtSignal()
    display_test_requested = pyqtSignal()  # the participant screen plays the test clip

    def __init__(self, controller: EngineController, reminder: Reminder) -> None:
        super().__init__()
        self.controller = controller
        self.reminder = reminder
        lab = controller.lab
        self.setWindowTitle(f"mmme-lab - {lab.name}")
        self.phase: PhaseInfo | None = None
        self.result: SessionResult | None = None
        self._closing = False
        self._build(lab.simulated_devices())
        self.log_handler = PanelLogHandler()
        self.log_handler.bridge.line.connect(self.events.add)
        logging.getLogger("mmmelab").addHandler(self.log_handler)
        controller.state_changed.connect(self._state)
        controller.phase_changed.connect(self._phase)
        controller.trial_done.connect(self._trial_done)
        controller.marker.connect(self._marker)
        controller.failed.connect(self._failed)
        controller.finished.connect(self._finished)
        controller.rig_checked.connect(self._rig_checked)
        self.live_timer = QTimer(self)
        self.live_timer.setInterval(LIVE_MS)
        self.live_timer.timeout.connect(self._live)
        self.plot_timer = QTimer(self)
        self.plot_timer.setInterval(PLOT_MS)
        self.plot_timer.timeout.connect(self._plots)
        self.slow_timer = QTimer(self)
        self.slow_timer.setInterval(SLOW_MS)
        self.slow_timer.timeout.connect(self._slow)
        self.slow_timer.start()
        self.plots: SignalPlots | None = None
        self._state(controller.state)

    # ------------------------------------------------------------ layout

    def _build(self, simulated: list[str]) -> None:
        lab = self.controller.lab
        root = QWidget()
        outer = QVBoxLayout(root)
        self.banner = QLabel(
            f"SIMULATED DEVICES: {', '.join(simulated).upper()} - THIS IS NOT A REAL RECORDING"
        )
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setStyleSheet(
            "background: #c62828; color: white; font-size: 18px; font-weight: bold; padding: 6px;"
        )
        self.banner.setVisible(bool(simulated))
        outer.addWidget(self.banner)
        self.status = QLabel("starting")
        self.status.setStyleSheet("font-size: 16px; font-weight: bold; padding: 4px;")
        outer.addWidget(self.status)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split, 1)
        split.addWidget(self._left_column())
        self.middle = QSplitter(Qt.Orientation.Vertical)
        self.preview = PreviewView(self.controller)
        self.middle.addWidget(boxed("Camera", self.preview, margin=4))
        self.setup_tabs = SetupTabs(self.controller)
        self.preview.on_face_box = lambda: self.controller.set_face_box(self._face_box())
        self.middle.addWidget(self.setup_tabs)
        self.plot_box = QGroupBox("EEG and physiology")
        QVBoxLayout(self.plot_box)
        self.middle.addWidget(self.plot_box)
        split.addWidget(self.middle)
        right = QSplitter(Qt.Orientation.Vertical)
        self.trials = TrialList(self.controller.protocol)
        right.addWidget(boxed("Trials", self.trials, margin=4))
        self.events = EventLog()
        right.addWidget(boxed("Event log", self.events, margin=4))
        split.addWidget(right)
        split.setSizes([440, 820, 560])  # scaled to the window by the splitter
        self.middle.setSizes([400, 300, 500])
        right.setSizes([350, 650])
        self.setCentralWidget(root)
        self.reminder_button.setText(f"Reminder ({lab.reminder.key})")

    def _left_column(self) -> QWidget:
        col = QWidget()
        layout = QVBoxLayout(col)
        self.form = ParticipantForm(self.controller.lab.participant_pattern)
        self.pid, self.notes = self.form.pid, self.form.notes
        layout.addWidget(self.form)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.abort_button = QPushButton("Abort")
        self.start_button.clicked.connect(self.press_start)
        self.pause_button.clicked.connect(self.press_pause)
        self.abort_button.clicked.connect(self.press_abort)
        for b in (self.start_button, self.pause_button, self.abort_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.reminder_button = QPushButton("Reminder")
        self.reminder_button.setStyleSheet("font-weight: bold;")
        self.reminder_button.clicked.connect(self.press_reminder)
        layout.addWidget(self.reminder_button)
        notes = QHBoxLayout()
        self.note_text = QLineEdit()
        self.note_text.setPlaceholderText("note (F2 marks now)")
        self.note_button = QPushButton("Mark")
        self.note_button.clicked.connect(self.press_note)
        notes.addWidget(self.note_text, 1)
        notes.addWidget(self.note_button)
        layout.addLayout(notes)
        self.report_button = QPushButton("Quality report")
        self.report_button.setToolTip("the session's quality report (HTML), after recording")
        self.report_button.setEnabled(False)
        self.report_button.clicked.connect(self.press_report)
        self.reports = ReportLauncher(self)
        self.reports.done.connect(self._report_done)
        layout.addWidget(self.report_button)
        self.setup = SetupPanel()
        self.setup.run_button.clicked.connect(self.press_check)
        self.setup.display_button.clicked.connect(self.press_display_check)
        self.setup.loopback_button.clicked.connect(self.press_loopback)
        self.setup.override.toggled.connect(lambda _: self._update_start())
        layout.addWidget(self.setup)
        self.phase_label = QLabel("-")
        self.phase_label.setStyleSheet("font-size: 15px;")
        layout.addWidget(self.phase_label)
        simulated = self.controller.lab.simulated_devices()
        devices = ["camera", "eeg", "physio", *[s.label for s in self.controller.lab.lsl_streams]]
        self.devices = DevicePanel(devices, simulated)
        layout.addWidget(self.devices)
        self.recording = RecordingPanel()
        layout.addWidget(self.recording)
        layout.addStretch(1)
        col.setMaximumWidth(500)
        return col

    # ------------------------------------------------------------ experimenter input

    def participant(self) -> ParticipantInfo | None:
        info, problem = self.form.participant()
        if problem:
            self.events.add(problem, logging.ERROR)
        return info

    def press_check(self) -> None:
        """Run the set-up checks on the face box the experimenter placed."""
        if self.controller.state is not ControllerState.READY:
            return
        self.setup.summary.setText("running the set-up checks (about 15 s) ...")
        self.controller.check_rig(self._face_box())

    def press_loopback(self) -> None:
        if self.controller.state is ControllerState.READY:
            self.setup.summary.setText("sending the trigger test code ...")
            self.controller.loopback()

    def press_display_check(self) -> None:
        """Play the test clip with its sound on the participant's screen."""
        if self.controller.state is not ControllerState.READY:
            return
        self.setup.summary.setText("playing the test clip on the participant's screen ...")
        self.display_test_requested.emit()

    def display_checked(self, record: dict[str, Any]) -> None:
        self.controller.record_display_check(record)
        self.setup.show_display(record)
        self._log_checks("display check", record)

    def _log_checks(self, what: str, record: dict[str, Any]) -> None:
        """Every check that is not green into the event log; Start re-judged."""
        for c in record.get("checks", []):
            if c["verdict"] != "green":
                level = logging.ERROR if c["verdict"] == "red" else logging.WARNING
                self.events.add(f"{what}: {c['name']}: {c['reason']}", level)
        self._update_start()

    def _face_box(self) -> tuple[int, int, int, int] | None:
        return self.preview.sensor_face_box(self.controller.lab.camera)

    def _rig_checked(self, record: dict[str, Any]) -> None:
        self.setup.show_record(record)
        self.setup_tabs.show_record(record)
        self._log_checks("set-up", record)

    def _update_start(self) -> None:
        ready = self.controller.state is ControllerState.READY
        allowed = self.setup.passed() or self.setup.override.isChecked()
        self.start_button.setEnabled(ready and allowed)
        for button in (self.setup.run_button, self.setup.display_button,
                       self.setup.loopback_button):  # fmt: skip
            button.setEnabled(ready)

    def press_start(self) -> None:
        info = self.participant()
        if info is None or self.controller.state is not ControllerState.READY:
            return
        if not self.setup.passed():
            if not self.setup.override.isChecked():
                return
            record = self.setup.record
            reds = [c["name"] for c in (record or {}).get("checks", []) if c["verdict"] == "red"]
            reason = f"red: {', '.join(reds)}" if record else "checks not run"
            if self.setup.display is None:
                reason += "; clip and display not tested"
            self.controller.override_checks(f"started by the experimenter ({reason})")
        for w in (self.form.pid, self.form.session_no, self.form.consent, self.form.notes):
            w.setEnabled(False)
        self.controller.start(info)

    def press_pause(self) -> None:
        if self.controller.state is not ControllerState.RECORDING:
            return
        if self.controller.telemetry().paused or (self.phase and self.phase.paused):
            self.controller.resume()
            self.pause_button.setText("Pause")
        else:
            self.controller.pause()
            self.pause_button.setText("Resume")

    def press_abort(self) -> None:
        if self.controller.state is not ControllerState.RECORDING:
            return
        if self.ask("Abort the session? Everything recorded so far is kept."):
            self.controller.abort()

    def press_reminder(self) -> None:
        t_key = self.controller.clock()
        if self.controller.state is ControllerState.RECORDING:
            self.reminder.toggle(t_key)

    def press_note(self) -> None:
        t = self.controller.clock()
        if self.controller.state is not ControllerState.RECORDING:
            return
        text = self.note_text.text().strip() or "note"
        self.controller.mark(text, t)
        self.note_text.clear()

    def ask(self, question: str) -> bool:
        """A yes/no question to the experimenter (tests replace this)."""
        answer = QMessageBox.question(self, "mmme-lab", question)
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------ engine events

    def _state(self, state: ControllerState) -> None:
        recording = state is ControllerState.RECORDING
        self._update_start()
        for button in (self.pause_button, self.abort_button, self.reminder_button,
                       self.note_button):  # fmt: skip
            button.setEnabled(recording)
        self.status.setText(state_text(state, self.controller.folder))
        if state is ControllerState.READY:
            self.devices.set_state("connected")
        live = state in (ControllerState.READY, ControllerState.CHECKING_RIG)
        if state is ControllerState.STARTING:
            self.preview.seq = 0  # the recording's preview frames are counted afresh
        before = state in (ControllerState.IDLE, ControllerState.CONNECTING)
        if self.setup_tabs.isVisible() and not (before or live):  # its room goes to the plots
            total = sum(self.middle.sizes())
            self.middle.setSizes([int(total * 0.42), 0, total - int(total * 0.42)])
        self.setup_tabs.setVisible(before or live)
        if (recording or live) and self.plots is None:
            self.plots = SignalPlots(self.controller)
            layout = self.plot_box.layout()
            assert layout is not None
            layout.addWidget(self.plots)
            total = sum(self.middle.sizes())
            self.middle.setSizes([int(total * 0.36), int(total * 0.4), total - int(total * 0.76)])
            self.live_timer.start()
            self.plot_timer.start()
        elif self.plots is not None and (recording or live):
            self.live_timer.start()
            self.plot_timer.start()
        if not (recording or live):
            self.live_timer.stop()
            self.plot_timer.stop()

    def _phase(self, info: PhaseInfo) -> None:
        self.phase = info
        self.trials.current(info.position)
        self.pause_button.setText("Resume" if info.paused else self.pause_button.text())

    def _trial_done(self, trial: TrialResult) -> None:
        if self.phase is not None:
            self.trials.done(self.phase.position, trial)

    def _marker(self, rec: Any) -> None:
        if rec.code is not EventCode.SYNC:
            self.events.add(f"marker {int(rec.code)} {rec.code.name} {rec.label}".strip())
        if self.plots is not None:
            self.plots.add_marker(rec.t_on, int(rec.code))

    def _failed(self, message: str) -> None:
        self.events.add(message, logging.ERROR)

    def press_report(self) -> None:
        if self.result is None or self.result.folder is None or self.reports.running:
            return
        self.events.add(f"writing the quality report of {self.result.folder.name} ...")
        self.report_button.setEnabled(False)
        self.reports.start(self.result.folder)

    def _report_done(self, path: str, error: str) -> None:
        self.report_button.setEnabled(True)
        if path:
            self.events.add(f"quality report: {path}")
        else:
            self.events.add(f"quality report failed: {error}", logging.ERROR)

    def _finished(self, result: SessionResult) -> None:
        self.result = result
        self.report_button.setEnabled(result.folder is not None)
        self.events.add(f"session saved: {result.folder} (status {result.status})")
        check = result.check
        if check:
            level = logging.INFO if check.get("ok") else logging.WARNING
            self.events.add("session check: " + ("ok" if check.get("ok") else "NOT OK"), level)
            for problem in check.get("problems", []):
                self.events.add(f"problem: {problem}", logging.WARNING)
        for line in result.alignment:
            self.events.add(line)
        if result.error:
            self.events.add(result.error, logging.ERROR)
        if self._closing:
            self.close()

    # ------------------------------------------------------------ timers

    def _live(self) -> None:
        if self.preview.refresh():
            paint_now(self.preview.view)

    def _plots(self) -> None:
        """The EEG view now, the physiology view half a period later, each painted at
        once: no redraw holds the GUI thread long (input, the reminder key and the
        preview come between)."""
        if self.plots is not None:
            self.plots.refresh_eeg()
            paint_now(self.plots.eeg_view)
            QTimer.singleShot(PLOT_MS // 2, self._plots_physio)

    def _plots_physio(self) -> None:
        if self.plots is not None and self.plot_timer.isActive():  # not stopped meanwhile
            self.plots.refresh_physio()
            paint_now(self.plots.physio_view)

    def _slow(self) -> None:
        if self.setup_tabs.isVisible():
            self.setup_tabs.refresh()
        tel = self.controller.telemetry()
        self.devices.refresh(tel)
        self.recording.refresh(tel.stream("camera"))
        info = self.phase
        if info is not None and self.controller.state is ControllerState.RECORDING:
            self.phase_label.setText(phase_text(info, self.controller.clock()))

    # ------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if event is None:
            return
        state = self.controller.state
        busy = state in (
            ControllerState.STARTING,
            ControllerState.RECORDING,
            ControllerState.STOPPING,
            ControllerState.CHECKING,
        )
        if busy and not self._closing:
            if state is ControllerState.RECORDING and not self.ask(
                "A session is recording. Stop it, save it and quit?"
            ):
                event.ignore()
                return
            self._closing = True
            self.status.setText("stopping and saving before quitting ...")
            if state is ControllerState.RECORDING:
                self.controller.abort()
            event.ignore()  # closes again when the controller reports the session saved
            return
        if busy:
            event.ignore()
            return
        logging.getLogger("mmmelab").removeHandler(self.log_handler)
        self.live_timer.stop()
        self.plot_timer.stop()
        self.slow_timer.stop()
        self.closed.emit()
        event.accept()
