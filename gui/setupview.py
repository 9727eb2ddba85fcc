"""The set-up views shown before Start: the checks' panel (one coloured line per
check, the override), the camera's settings with its live focus, exposure and
flicker figures (histogram and spectrum), and the EEG impedance head map.

Both read what the controller offers (``camera_limits``, ``camera_live()``, the
set-up record) and send changes through it; nothing here touches a device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mmmelab.config import EegProtocol
from mmmelab.gui.controller import EngineController
from mmmelab.gui.panels import VERDICT_COLOUR, hheader, table_item, vheader

BAD = VERDICT_COLOUR["red"]

#: console field -> (xiAPI limit name, label, unit, decimals, step)
SETTINGS = {
    "exposure_us": ("exposure", "Exposure", " us", 0, 100.0),
    "gain_db": ("gain", "Gain", " dB", 1, 0.5),
    "wb_kr": ("wb_kr", "White balance R", "", 2, 0.05),
    "wb_kg": ("wb_kg", "White balance G", "", 2, 0.05),
    "wb_kb": ("wb_kb", "White balance B", "", 2, 0.05),
}


def _coloured(label: QLabel, check: dict[str, Any] | None, prefix: str) -> None:
    if not check:
        label.setText(f"{prefix}: waiting for frames")
        return
    colour = VERDICT_COLOUR.get(check.get("verdict", ""), BAD).name()
    label.setText(f'<span style="color:{colour}"><b>{prefix}</b>: {check.get("reason", "")}</span>')


class CameraSetup(QWidget):
    """Exposure, gain and white balance within the camera's limits (Apply sends them);
    the focus figure against its best so far, the face box's histogram with its
    saturated and crushed shares, and the flicker spectrum with the mains aliases."""

    def __init__(self, controller: EngineController) -> None:
        super().__init__()
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        grid = QGridLayout()
        self.fields: dict[str, QDoubleSpinBox] = {}
        cam = controller.lab.camera
        current = {"exposure_us": cam.exposure_us, "gain_db": cam.gain_db,
                   "wb_kr": cam.wb_kr, "wb_kg": cam.wb_kg, "wb_kb": cam.wb_kb}  # fmt: skip
        for i, (key, (_, text, unit, decimals, step)) in enumerate(SETTINGS.items()):
            box = QDoubleSpinBox()
            box.setDecimals(decimals)
            box.setSingleStep(step)
            box.setSuffix(unit)
            box.setRange(-1e9, 1e9)  # the camera's limits replace this once connected
            box.setValue(current[key])
            row, col = (i, 0) if i < 2 else (i - 2, 2)
            grid.addWidget(QLabel(text), row, col)
            grid.addWidget(box, row, col + 1)
            self.fields[key] = box
        self.apply_button = QPushButton("Apply camera settings")
        self.apply_button.clicked.connect(self.apply)
        grid.addWidget(self.apply_button, 2, 0, 1, 2)
        layout.addLayout(grid)
        self.applied = QLabel("settings as in the lab file")
        self.applied.setWordWrap(True)
        layout.addWidget(self.applied)
        self.focus_bar = QProgressBar()
        self.focus_bar.setRange(0, 100)
        self.focus_bar.setFormat("focus: %p % of the sharpest seen - turn the ring to the peak")
        layout.addWidget(self.focus_bar)
        self.focus = QLabel()
        self.exposure = QLabel()
        self.flicker = QLabel()
        for lab in (self.focus, self.exposure, self.flicker):
            lab.setWordWrap(True)
            layout.addWidget(lab)
        plots = pg.GraphicsLayoutWidget()
        plots.setMinimumHeight(150)
        self.hist_plot = plots.addPlot(title="face box levels")
        self.hist_plot.setMouseEnabled(False, False)
        self.hist = pg.BarGraphItem(x=[], height=[], width=8, brush="#78909c")
        self.hist_plot.addItem(self.hist)
        self.hist_plot.setXRange(0, 256, padding=0)
        self.hist_plot.hideAxis("left")  # the shape matters, not the pixel counts
        self.spec_plot = plots.addPlot(title="flicker: depth vs Hz")
        self.spec_plot.setMouseEnabled(False, False)
        self.spec_plot.setXRange(0, controller.lab.camera.fps / 2, padding=0)
        self.spec = self.spec_plot.plot(pen=pg.mkPen("#64b5f6", width=1.5))
        self.alias_lines: list[pg.InfiniteLine] = []
        layout.addWidget(plots, 1)
        self.updates = 0
        self._limits_set = False
        controller.camera_adjusted.connect(self._adjusted)

    def _set_limits(self) -> None:
        limits = self.controller.camera_limits
        if self._limits_set or not limits:
            return
        for key, box in self.fields.items():
            lo, hi = limits[SETTINGS[key][0]]
            box.setRange(lo, hi)
            box.setToolTip(f"camera range {lo:g} .. {hi:g}")
        self._limits_set = True

    def values(self) -> dict[str, float]:
        return {key: box.value() for key, box in self.fields.items()}

    def apply(self) -> None:
        v = self.values()
        self.applied.setText("applying ...")
        self.controller.adjust_camera(
            v["exposure_us"], v["gain_db"], (v["wb_kr"], v["wb_kg"], v["wb_kb"])
        )

    def _adjusted(self, settings: dict[str, Any]) -> None:
        if "error" in settings:
            refused = f"refused: {settings['error']}"
            self.applied.setText(f'<span style="color:{BAD.name()}">{refused}</span>')
            return
        wb = settings["white_balance"]
        self.applied.setText(
            f"in force: exposure {settings['exposure_us']:g} us, gain {settings['gain_db']:g} dB, "
            f"white balance {wb[0]:g}/{wb[1]:g}/{wb[2]:g} (kept in the session)"
        )

    def refresh(self) -> bool:
        """Show the newest live figures; False when there are none (recording)."""
        self._set_limits()
        live = self.controller.camera_live()
        if not live:
            return False
        focus = live.get("focus", {})
        of_best = focus.get("figures", {}).get("of_best", 0.0)
        self.focus_bar.setValue(int(round(100 * of_best)))
        _coloured(self.focus, focus, "focus")
        exposure = live.get("exposure", {})
        _coloured(self.exposure, exposure, "exposure")
        hist = exposure.get("figures", {}).get("histogram", [])
        if hist:
            width = 256 / len(hist)
            x = (np.arange(len(hist)) + 0.5) * width
            self.hist.setOpts(x=x, height=np.asarray(hist, float), width=width * 0.9)
        flicker = live.get("flicker", {})
        _coloured(self.flicker, flicker, "flicker")
        fig = flicker.get("figures", {})
        if fig.get("spectrum_hz"):
            self.spec.setData(fig["spectrum_hz"], fig["spectrum_depth"])
            if not self.alias_lines:
                for k, (mains, alias) in enumerate(fig.get("aliases_hz", {}).items()):
                    pen = pg.mkPen("#c62828", style=Qt.PenStyle.DashLine)
                    line = pg.InfiniteLine(
                        float(alias), angle=90, pen=pen,
                        label=f"{mains} Hz",
                        labelOpts={"position": 0.9 - 0.2 * k, "color": "#ef9a9a"},
                    )  # fmt: skip
                    self.spec_plot.addItem(line)
                    self.alias_lines.append(line)
        self.updates += 1
        return True


class ImpedanceMap(QWidget):
    """The EEG electrodes on a head seen from above, each coloured against the
    threshold as the check judges it (green below 70 %, amber up to it, red above)
    with its kOhm figure;
    without impedance data, the per-channel signal flags in the same layout."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        self.title = QLabel("impedances: run the set-up checks")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(False, False)
        layout.addWidget(self.view, 1)
        self.colours: dict[str, str] = {}

    def show_check(self, check: dict[str, Any] | None) -> None:
        """``check``: the set-up record's impedance (or EEG signal) check with
        ``figures.positions`` (label -> x, y on the unit head) and per-channel values."""
        self.plot.clear()
        self.colours = {}
        if not check:
            self.title.setText("impedances: no EEG check in the set-up record")
            return
        fig = check.get("figures", {})
        positions: dict[str, list[float]] = fig.get("positions", {})
        t = np.linspace(0, 2 * np.pi, 200)
        self.plot.plot(np.cos(t), np.sin(t), pen=pg.mkPen("#455a64", width=2))
        self.plot.plot([-0.1, 0, 0.1], [0.99, 1.1, 0.99], pen=pg.mkPen("#455a64", width=2))
        kohm: dict[str, float] = fig.get("kohm", {})
        flags = {lab: kind.replace("_", " ") for kind in ("flat", "noisy", "line_noise")
                 for lab in fig.get(kind, [])}  # fmt: skip
        threshold = float(fig.get("threshold_kohm", 10.0))
        for label, (x, y) in positions.items():
            if kohm:
                z = kohm.get(label, float("nan"))
                colour = (
                    "#2e7d32"
                    if z <= 0.7 * threshold
                    else "#ef6c00"
                    if z <= threshold
                    else "#c62828"
                )  # fmt: skip  (as the check: amber near the threshold)
                text = f"{label}\n{z:.0f}"
            else:
                flag = flags.get(label, "")
                colour = "#c62828" if flag else "#2e7d32"
                text = f"{label}\n{flag}" if flag else label
            self.colours[label] = colour
            dot = pg.ScatterPlotItem([x], [y], size=26, brush=pg.mkBrush(colour), pen=None)
            self.plot.addItem(dot)
            item = pg.TextItem(text, color="w", anchor=(0.5, 0.5))
            item.setPos(x, y)
            self.plot.addItem(item)
        colour = VERDICT_COLOUR.get(check.get("verdict", ""), BAD).name()
        what = f"impedances (kOhm, threshold {threshold:g})" if kohm else "EEG signal flags"
        self.title.setText(f'<span style="color:{colour}"><b>{what}</b>: {check["reason"]}</span>')


class SetupTabs(QTabWidget):
    """The set-up views as tabs under the camera preview, shown only before Start."""

    def __init__(self, controller: EngineController) -> None:
        super().__init__()
        self.controller = controller
        self.camera = CameraSetup(controller)
        self.addTab(self.camera, "Camera set-up")
        eeg = QWidget()
        layout = QVBoxLayout(eeg)
        self.impedance = ImpedanceMap()
        layout.addWidget(self.impedance, 1)
        acquire = controller.lab.eeg.protocol is EegProtocol.ACQUIRE
        self.impedance_button = QPushButton("Impedance mode on the amplifier (Acquire)")
        self.impedance_button.setCheckable(True)
        self.impedance_button.setVisible(acquire)
        self.impedance_button.setToolTip(
            "Acquire shows the impedances on its own screen; EEG data pauses meanwhile. "
            "Turn it off before the checks and before Start."
        )
        self.impedance_button.toggled.connect(controller.impedance_mode)
        controller.impedance_changed.connect(self._impedance_changed)
        layout.addWidget(self.impedance_button)
        self.addTab(eeg, "EEG impedances")

    def _impedance_changed(self, on: bool) -> None:
        self.impedance.title.setText(
            "impedance mode ON: read the values on the Acquire PC, gel, then turn it off"
            if on
            else "impedance mode off: EEG data flows again - run the checks"
        )

    def show_record(self, record: dict[str, Any]) -> None:
        checks = {c["name"]: c for c in record.get("checks", [])}
        self.impedance.show_check(checks.get("impedance") or checks.get("eeg signal"))

    def refresh(self) -> bool:
        return self.camera.refresh()


class SetupPanel(QGroupBox):
    """The set-up checks before Start: a button, one coloured line per check with its
    reason, and the override (kept in the session with its reason)."""

    def __init__(self) -> None:
        from PyQt6.QtWidgets import QPushButton

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
        vheader(self.table).setVisible(False)
        hheader(self.table).setStretchLastSection(True)
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
            self.table.setItem(row, 0, table_item(c["name"], colour))
            self.table.setItem(row, 1, table_item(f"{c['verdict'].upper()}: {c['reason']}", colour))
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
