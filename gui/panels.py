"""Console panels: devices, recording telemetry, trial list, event log."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mmmelab.acquisition.paradigm import TrialResult
from mmmelab.protocol import Protocol
from mmmelab.streams import SyncState

GOOD, WARN, BAD = QColor("#2e7d32"), QColor("#ef6c00"), QColor("#c62828")


def _item(text: str, colour: QColor | None = None) -> QTableWidgetItem:
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
        _vheader(self.table).setVisible(False)
        _hheader(self.table).setStretchLastSection(True)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(len(devices)))
        header = _hheader(self.table).sizeHint().height()
        self.table.setFixedHeight(rows + header + 2 * self.table.frameWidth())
        for row, name in enumerate(devices):
            label = f"{name} (SIM)" if name in self.simulated else name
            self.table.setItem(row, 0, _item(label, BAD if name in self.simulated else None))
            for col in range(1, len(self.COLUMNS)):
                self.table.setItem(row, col, _item("-"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        self._last: dict[str, tuple[float, int]] = {}
        self._refreshes = 0

    def set_state(self, text: str) -> None:
        for row in range(len(self.devices)):
            self.table.setItem(row, 1, _item(text))

    def refresh(self, tel: dict[str, Any]) -> None:
        sync = tel.get("sync", {})
        for row, name in enumerate(self.devices):
            entry = tel.get(name)
            if entry is None:
                continue
            state = entry.get("state", "?")
            good = state in ("running", "live")  # live: the preview before Start
            colour = GOOD if good else (BAD if state == "failed" else WARN)
            self._set(row, 1, state, colour)
            self._set(row, 2, self._rate(name, entry))
            drops = int(entry.get("dropped", 0))
            faults = int(entry.get("faults", 0))
            self._set(row, 3, f"{drops} / {faults}", BAD if drops else (WARN if faults else GOOD))
            lat = entry.get("latency_ms")
            self._set(row, 4, "-" if lat is None else f"{lat:.0f} ms")
            self._set(row, 5, *_sync_text(sync.get(name)))
        self._refreshes += 1
        if self._refreshes % 20 == 1:  # every 5 s, not on each update (a relayout)
            self.table.resizeColumnsToContents()

    def _set(self, row: int, col: int, text: str, colour: QColor | None = None) -> None:
        """Change a cell in place, only when it changed (no relayout of the table)."""
        item = self.table.item(row, col)
        if item is None:
            self.table.setItem(row, col, _item(text, colour))
            return
        if item.text() != text:
            item.setText(text)
        if colour is not None and item.foreground().color() != colour:
            item.setForeground(colour)

    def _rate(self, name: str, entry: dict[str, Any]) -> str:
        if "fps" in entry:
            return f"{entry['fps']:.1f} fps"
        # the average since the first reading (blocks arrive in bursts, so short windows
        # jitter); the nominal rate for the first seconds
        samples = int(entry.get("samples", 0))
        now = time.monotonic()
        t0, s0 = self._last.setdefault(name, (now, samples))
        if now - t0 < 3.0:
            return f"{entry.get('rate_hz', 0):.0f} Hz"
        return f"{(samples - s0) / (now - t0):.0f} Hz"


def _hheader(table: QTableWidget) -> QHeaderView:
    header = table.horizontalHeader()
    assert header is not None  # a QTableWidget always has one
    return header


def _vheader(table: QTableWidget) -> QHeaderView:
    header = table.verticalHeader()
    assert header is not None
    return header


def _sync_text(health: dict[str, Any] | None) -> tuple[str, QColor | None]:
    if not health:
        return "-", None
    state = SyncState(health.get("state", SyncState.WAITING))
    if state is SyncState.OK:
        return f"{health.get('residual_ms', math.nan):.2f} ms", GOOD
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

    def refresh(self, camera: dict[str, Any]) -> None:
        if not camera or "ring_fill" not in camera:
            return
        self.ring.setValue(int(round(100 * camera["ring_fill"])))
        probe = camera.get("disk_probe_mb_s", float("nan"))
        of = f" of {probe:.0f} measured" if math.isfinite(probe) else ""
        self.writer.setText(f"writer {camera['writer_mb_s']:.0f} MB/s{of}")
        ttf = camera["time_to_full_s"]
        self.disk.setText(
            "disk full in " + ("-" if not math.isfinite(ttf) else f"{ttf / 60:.0f} min")
        )
        self.frames.setText(
            f"frames {camera['frames']}  written {camera['written']}  dropped {camera['dropped']}"
        )
        volumes = camera.get("volumes") or []
        self.volumes.setVisible(len(volumes) > 1)
        if len(volumes) > 1:
            self.volumes.setText("\n".join(volume_line(v) for v in volumes))
        self.warning.setText(camera.get("warning", ""))


def volume_line(v: dict[str, Any]) -> str:
    """One volume of a striped recording: its MB/s and time to full, or why it left."""
    folder = Path(v["folder"])
    if folder.name == "camera" and folder.parent.name.startswith("sub-"):
        folder = folder.parent.parent  # <volume>/<session>/camera: name the volume
    name = f"volume {v['volume']} ({folder})"
    if not v["in_stripe"]:
        return f"{name}: out of the stripe"
    ttf, rate = v["time_to_full_s"], v["writer_mb_s"]  # None: not known (yet)
    full = "full in -" if ttf is None else f"full in {ttf / 60:.0f} min"
    return f"{name}: -, {full}" if rate is None else f"{name}: {rate:.0f} MB/s, {full}"


class TrialList(QTableWidget):
    """Every trial of the session with its clip and outcome; the current row is selected."""

    COLUMNS = ("#", "block", "clip", "target", "answer", "RT")

    def __init__(self, protocol: Protocol) -> None:
        schedule = [(True, c) for c in protocol.practice] + [(False, c) for c in protocol.trials()]
        super().__init__(len(schedule), len(self.COLUMNS))
        self.setHorizontalHeaderLabels(self.COLUMNS)
        _vheader(self).setVisible(False)
        _hheader(self).setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        _hheader(self).setStretchLastSection(True)
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
                self.setItem(row, col, _item(text))

    def current(self, position: int) -> None:
        if 0 <= position < self.rowCount():
            self.selectRow(position)

    def done(self, position: int, trial: TrialResult) -> None:
        if trial.rating is None:
            self.setItem(position, 4, _item("missed", BAD))
            return
        r = trial.rating
        self.setItem(position, 4, _item(f"{r.emotion.value} v{r.valence} a{r.arousal}", GOOD))
        self.setItem(position, 5, _item(f"{trial.response_time_s:.1f} s"))


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


def boxed(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.addWidget(widget)
    return box


VERDICT_COLOUR = {"green": GOOD, "amber": WARN, "red": BAD}


class SetupPanel(QGroupBox):
    """The set-up checks before Start: a button, one coloured line per check with its
    reason, and the override (kept in the session with its reason)."""

    def __init__(self) -> None:
        from PyQt6.QtWidgets import QCheckBox, QPushButton

        super().__init__("Set-up checks")
        layout = QVBoxLayout(self)
        self.run_button = QPushButton("Run checks")
        layout.addWidget(self.run_button)
        row = QHBoxLayout()
        self.loopback_button = QPushButton("Trigger loop-back")
        self.loopback_button.setToolTip("one test code through the trigger bus: per stream, "
                                        "whether its edge arrived and its latency")  # fmt: skip
        row.addWidget(self.loopback_button)
        self.display_button = QPushButton("Test clip and display")
        self.display_button.setToolTip("a few seconds of a clip with its sound on the "
                                       "participant's screen")  # fmt: skip
        row.addWidget(self.display_button)
        layout.addLayout(row)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(("check", "verdict and reason"))
        _vheader(self.table).setVisible(False)
        _hheader(self.table).setStretchLastSection(True)
        self.table.setWordWrap(True)
        self.table.setMinimumHeight(120)
        layout.addWidget(self.table)
        self.summary = QLabel("not run yet: run them before Start")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.override = QCheckBox("Start without passing checks (recorded in the session)")
        layout.addWidget(self.override)
        self.record: dict[str, Any] | None = None
        self.display: dict[str, Any] | None = None  # the clip and display check

    def show_display(self, record: dict[str, Any]) -> None:
        self.display = record
        if self.record is not None:
            self.show_record(self.record)
        else:
            self._fill(record.get("checks", []))
            self.summary.setText("display checked; now run the set-up checks")

    def _fill(self, checks: list[dict[str, Any]]) -> None:
        checks = checks + (self.display or {}).get("checks", [])
        self.table.setRowCount(len(checks))
        for row, c in enumerate(checks):
            colour = VERDICT_COLOUR.get(c["verdict"], BAD)
            self.table.setItem(row, 0, _item(c["name"], colour))
            self.table.setItem(row, 1, _item(f"{c['verdict'].upper()}: {c['reason']}", colour))
        self.table.resizeRowsToContents()

    def show_record(self, record: dict[str, Any]) -> None:
        self.record = record
        checks = record.get("checks", [])
        self._fill(checks)
        verdict = record.get("verdict", "red")
        reds = [c["name"] for c in checks if c["verdict"] == "red"]
        text = record.get("error") or (
            f"{len(reds)} check(s) red: {', '.join(reds)} - fix and run again"
            if reds
            else f"all checks passed ({verdict}) in {record.get('duration_s', 0):g} s"
            + ("" if self.display is not None else " - now test the clip and display")
        )
        if record.get("loopback_only"):
            seen = f"red: {', '.join(reds)}" if reds else "every stream saw the test code"
            text = f"trigger loop-back: {seen} - run the set-up checks before Start"
        self.summary.setText(text)
        self.summary.setStyleSheet(f"color: {VERDICT_COLOUR.get(verdict, BAD).name()};")

    def passed(self) -> bool:
        """The set-up checks passed (the loop-back alone is not enough) and the clip
        and display check has been run."""
        rec = self.record
        ok = rec is not None and rec.get("verdict") in ("green", "amber")
        return ok and rec is not None and not rec.get("loopback_only") and self.display is not None
