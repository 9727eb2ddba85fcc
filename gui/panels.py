"""Console panels: the participant form, devices, recording telemetry, trial list,
event log, set-up checks; the status lines."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mmmelab.acquisition.messages import ControllerState, PhaseInfo
from mmmelab.acquisition.paradigm import Phase, TrialResult
from mmmelab.acquisition.telemetry import EngineTelemetry, StreamTelemetry, VolumeTelemetry
from mmmelab.participant import ParticipantInfo, participant_id_problem
from mmmelab.protocol import Protocol
from mmmelab.streams import ConsentLevel, StreamHealth, SyncState

GOOD, WARN, BAD = QColor("#2e7d32"), QColor("#ef6c00"), QColor("#c62828")
CONSENT = {
    ConsentLevel.PUBLIC: "1 - data may be shared; faces may be shown",
    ConsentLevel.RESEARCH_ONLY: "2 - research use only; no face images published",
}
STATE_TEXT = {
    ControllerState.IDLE: "not connected",
    ControllerState.CONNECTING: "connecting devices ...",
    ControllerState.READY: "devices live (nothing recorded) - run the set-up checks, "
    "enter the participant and press Start",
    ControllerState.CHECKING_RIG: "running the set-up checks ...",
    ControllerState.STARTING: "starting the recording ...",
    ControllerState.RECORDING: "RECORDING into {folder}",
    ControllerState.STOPPING: "stopping and saving ...",
    ControllerState.CHECKING: "checking the saved session ...",
    ControllerState.FINISHED: "session saved",
    ControllerState.FAILED: "FAILED - see the event log",
}
PHASE_TEXT = {
    Phase.WAIT_SPACE: "waiting for Space",
    Phase.RATING: "self-report",
    Phase.NEUTRAL: "neutral clip",
}


def state_text(state: ControllerState, folder: Path | None) -> str:
    """The console's status line in ``state``."""
    return STATE_TEXT[state].format(folder=folder)


def phase_text(info: PhaseInfo, now: float) -> str:
    """Where the session is: block, trial, phase, time left (``now``: master clock)."""
    what = (
        f"clip {info.clip_id}"
        if info.phase is Phase.CLIP
        else PHASE_TEXT.get(info.phase, info.phase.value)
    )
    if info.paused:
        what = "PAUSED (press Resume)"
    block = "practice" if info.practice else "trial"
    left = "" if info.deadline is None else f" - {max(0.0, info.deadline - now):.0f} s left"
    return f"{block} {info.index + 1} ({info.position + 1}/{info.total}): {what}{left}"


class ParticipantForm(QGroupBox):
    """Pseudonymous id (checked against the lab's pattern), session, consent, notes."""

    def __init__(self, pattern: str) -> None:
        super().__init__("Participant")
        self.pattern = pattern
        form = QFormLayout(self)
        self.pid = QLineEdit()
        self.pid.setPlaceholderText("pseudonymous code, e.g. P07 - never a name")
        self.pid.setMaxLength(16)
        self.session_no = QSpinBox()
        self.session_no.setRange(1, 99)
        self.consent = QComboBox()
        for level, text in CONSENT.items():
            self.consent.addItem(text, level)
        self.consent.setCurrentIndex(1)
        self.notes = QPlainTextEdit()
        self.notes.setMaximumHeight(60)
        form.addRow("Participant id", self.pid)
        form.addRow("Session", self.session_no)
        form.addRow("Consent", self.consent)
        form.addRow("Notes", self.notes)

    def participant(self) -> tuple[ParticipantInfo | None, str]:
        """The participant as entered, or None and what is wrong with the id."""
        pid = self.pid.text().strip()
        problem = participant_id_problem(pid, self.pattern)
        if problem is not None:
            self.pid.setFocus()
            return None, f"participant id {problem}"
        info = ParticipantInfo(pid, self.session_no.value(),
                               ConsentLevel(self.consent.currentData()),
                               self.notes.toPlainText().strip())  # fmt: skip
        return info, ""


def table_item(text: str, colour: QColor | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled)
    if colour is not None:
        item.setForeground(colour)
    return item


class DevicePanel(QGroupBox):
    """One row per device: state, rate, drops/faults, latency, sync health."""

    COLUMNS = ("device", "state", "rate", "drops/faults", "latency", "sync")

    def __init__(self, devices: list[str], simulated: list[str]) -> None:
        super().__init__("Devices")
        self.devices = devices
        self.simulated = set(simulated)
        self.table = QTableWidget(len(devices), len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        vheader(self.table).setVisible(False)
        hheader(self.table).setStretchLastSection(True)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(len(devices)))
        header = hheader(self.table).sizeHint().height()
        self.table.setFixedHeight(rows + header + 2 * self.table.frameWidth())
        for row, name in enumerate(devices):
            label = f"{name} (SIM)" if name in self.simulated else name
            self.table.setItem(row, 0, table_item(label, BAD if name in self.simulated else None))
            for col in range(1, len(self.COLUMNS)):
                self.table.setItem(row, col, table_item("-"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        self._last: dict[str, tuple[float, int]] = {}
        self._refreshes = 0

    def set_state(self, text: str) -> None:
        for row in range(len(self.devices)):
            self.table.setItem(row, 1, table_item(text))

    def refresh(self, tel: EngineTelemetry) -> None:
        sync = tel.sync
        for row, name in enumerate(self.devices):
            entry = tel.stream(name)
            if entry is None:
                continue
            state = entry.state
            good = state in ("running", "live")  # live: the preview before Start
            colour = GOOD if good else (BAD if state == "failed" else WARN)
            self._set(row, 1, state, colour)
            self._set(row, 2, self._rate(name, entry))
            drops, faults = entry.lost, entry.faults or 0
            self._set(row, 3, f"{drops} / {faults}", BAD if drops else (WARN if faults else GOOD))
            lat = entry.latency_ms
            self._set(row, 4, "-" if lat is None else f"{lat:.0f} ms")
            self._set(row, 5, *_sync_text(sync.get(name)))
        self._refreshes += 1
        if self._refreshes % 20 == 1:  # every 5 s, not on each update (a relayout)
            self.table.resizeColumnsToContents()

    def _set(self, row: int, col: int, text: str, colour: QColor | None = None) -> None:
        """Change a cell in place, only when it changed (no relayout of the table)."""
        item = self.table.item(row, col)
        if item is None:
            self.table.setItem(row, col, table_item(text, colour))
            return
        if item.text() != text:
            item.setText(text)
        if colour is not None and item.foreground().color() != colour:
            item.setForeground(colour)

    def _rate(self, name: str, entry: StreamTelemetry) -> str:
        fps = entry.camera.fps if entry.camera is not None else entry.fps
        if fps is not None:
            return f"{fps:.1f} fps"
        # the average since the first reading (blocks arrive in bursts, so short windows
        # jitter); the nominal rate for the first seconds
        samples = entry.samples or 0
        now = time.monotonic()
        t0, s0 = self._last.setdefault(name, (now, samples))
        if now - t0 < 3.0:
            return f"{entry.rate_hz or 0:.0f} Hz"
        return f"{(samples - s0) / (now - t0):.0f} Hz"


def hheader(table: QTableWidget) -> QHeaderView:
    header = table.horizontalHeader()
    assert header is not None  # a QTableWidget always has one
    return header


def vheader(table: QTableWidget) -> QHeaderView:
    header = table.verticalHeader()
    assert header is not None
    return header


def _sync_text(health: StreamHealth | None) -> tuple[str, QColor | None]:
    if health is None:
        return "-", None
    state = SyncState(health.state)
    if state is SyncState.OK:
        return f"{health.residual_ms:.2f} ms", GOOD
    return state.replace("_", " "), WARN if state is SyncState.WAITING else BAD


class RecordingPanel(QGroupBox):
    """Frame ring fill, writer rate, disk time-to-full, dropped frames."""

    def __init__(self) -> None:
        super().__init__("Recording")
        grid = QGridLayout(self)
        self.ring = QProgressBar()
        self.ring.setFormat("ring %p%")
        self.writer = QLabel("writer -")
        self.disk = QLabel("disk -")
        self.frames = QLabel("frames -")
        self.volumes = QLabel("")  # a striped recording: one line per volume
        self.volumes.setVisible(False)
        self.warning = QLabel("")
        self.warning.setStyleSheet("color: #c62828; font-weight: bold;")
        self.warning.setWordWrap(True)
        grid.addWidget(self.ring, 0, 0, 1, 2)
        grid.addWidget(self.writer, 1, 0)
        grid.addWidget(self.disk, 1, 1)
        grid.addWidget(self.frames, 2, 0, 1, 2)
        grid.addWidget(self.volumes, 3, 0, 1, 2)
        grid.addWidget(self.warning, 4, 0, 1, 2)

    def refresh(self, entry: StreamTelemetry | None) -> None:
        """Show the camera stream's figures (nothing before the recording's first)."""
        camera = entry.camera if entry is not None else None
        if entry is None or camera is None:
            return  # the preview's camera has no pipeline figures
        self.ring.setValue(int(round(100 * camera.ring_fill)))
        probe = entry.disk_probe_mb_s if entry.disk_probe_mb_s is not None else math.nan
        of = f" of {probe:.0f} measured" if math.isfinite(probe) else ""
        self.writer.setText(f"writer {camera.writer_mb_s:.0f} MB/s{of}")
        ttf = camera.time_to_full_s
        self.disk.setText(
            "disk full in " + ("-" if not math.isfinite(ttf) else f"{ttf / 60:.0f} min")
        )
        self.frames.setText(
            f"frames {camera.frames}  written {camera.written}  dropped {camera.dropped}"
        )
        volumes = camera.volumes
        self.volumes.setVisible(len(volumes) > 1)
        if len(volumes) > 1:
            self.volumes.setText("\n".join(volume_line(v) for v in volumes))
        self.warning.setText(camera.warning)


def volume_line(v: VolumeTelemetry) -> str:
    """One volume of a striped recording: its MB/s and time to full, or why it left."""
    folder = Path(v.folder)
    if folder.name == "camera" and folder.parent.name.startswith("sub-"):
        folder = folder.parent.parent  # <volume>/<session>/camera: name the volume
    name = f"volume {v.volume} ({folder})"
    if not v.in_stripe:
        return f"{name}: out of the stripe"
    ttf, rate = v.time_to_full_s, v.writer_mb_s  # None: not known (yet)
    full = "full in -" if ttf is None else f"full in {ttf / 60:.0f} min"
    return f"{name}: -, {full}" if rate is None else f"{name}: {rate:.0f} MB/s, {full}"


class TrialList(QTableWidget):
    """Every trial of the session with its clip and outcome; the current row is selected."""

    COLUMNS = ("#", "block", "clip", "target", "answer", "RT")

    def __init__(self, protocol: Protocol) -> None:
        schedule = [(True, c) for c in protocol.practice] + [(False, c) for c in protocol.trials()]
        super().__init__(len(schedule), len(self.COLUMNS))
        self.setHorizontalHeaderLabels(self.COLUMNS)
        vheader(self).setVisible(False)
        hheader(self).setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hheader(self).setStretchLastSection(True)
        n_practice = len(protocol.practice)
        for row, (practice, clip) in enumerate(schedule):
            number = row + 1 if practice else row - n_practice + 1
            cells = (
                str(number),
                "practice" if practice else "trial",
                clip.id,
                clip.emotion.value if clip.emotion else "-",
                "",
                "",
            )
            for col, text in enumerate(cells):
                self.setItem(row, col, table_item(text))

    def current(self, position: int) -> None:
        if 0 <= position < self.rowCount():
            self.selectRow(position)

    def done(self, position: int, trial: TrialResult) -> None:
        if trial.rating is None:
            self.setItem(position, 4, table_item("missed", BAD))
            return
        r = trial.rating
        self.setItem(position, 4, table_item(f"{r.emotion.value} v{r.valence} a{r.arousal}", GOOD))
        self.setItem(position, 5, table_item(f"{trial.response_time_s:.1f} s"))


class LogBridge(QObject):
    """A logging handler's way onto the GUI thread."""

    line = pyqtSignal(str, int)


class PanelLogHandler(logging.Handler):
    """Sends log records (any thread) to the event log panel."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bridge = LogBridge()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.line.emit(self.format(record), record.levelno)
        except RuntimeError:  # the panel is gone (window closed)
            pass


class EventLog(QPlainTextEdit):
    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.problems = 0

    def add(self, text: str, level: int = logging.INFO) -> None:
        stamp = time.strftime("%H:%M:%S")
        if level >= logging.WARNING:
            self.problems += 1
            colour = "#c62828" if level >= logging.ERROR else "#ef6c00"
            word = "ERROR" if level >= logging.ERROR else "WARNING"
            self.appendHtml(f'<span style="color:{colour}">{stamp} {word}: {_escape(text)}</span>')
        else:
            self.appendPlainText(f"{stamp} {text}")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def boxed(title: str, widget: QWidget, margin: int | None = None) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    if margin is not None:
        layout.setContentsMargins(margin, margin, margin, margin)
    layout.addWidget(widget)
    return box


VERDICT_COLOUR = {"green": GOOD, "amber": WARN, "red": BAD}
