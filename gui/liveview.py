"""Live views: the camera preview with the face region, and scrolling EEG/physiology plots.

Both pull from the engine on the console's timer (never pushed through Qt
signals) and update persistent pyqtgraph items.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from mmmelab.config import CameraConfig
from mmmelab.gui.controller import EngineController
from mmmelab.sync.codes import EventCode

WINDOW_S = 10.0
BINS = 250  # min/max pairs per curve: about one per horizontal pixel
EEG_GROUP = 8  # channels shown at once
EEG_SCALES_UV = (20, 50, 100, 200, 500)
PHYSIO_ORDER = ("ECG", "PPG", "RSP", "EDA", "SKT")
SATURATED = 250
MARKER_COLOUR = "#ffd54f"

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")


class PreviewView(QWidget):
    """Debayered camera preview, a movable face-region box and its exposure indicator."""

    def __init__(self, controller: EngineController) -> None:
        super().__init__()
        self.controller = controller
        self.view = pg.GraphicsLayoutWidget()
        box = self.view.addViewBox(lockAspect=True, invertY=True)
        box.setMenuEnabled(False)
        self.image = pg.ImageItem()
        box.addItem(self.image)
        self.box = box
        self.roi: pg.RectROI | None = None
        self.on_face_box: Callable[[], None] | None = None  # the face box was placed
        self.exposure = QLabel("no camera preview yet")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.exposure)
        self.seq = 0
        self.shown = 0  # preview frames put on screen
        self._stats_every = 6

    def sensor_face_box(self, camera: CameraConfig) -> tuple[int, int, int, int] | None:
        """The face box in sensor pixels of ``camera`` (its config; even, so the Bayer
        phase holds), or None before a frame was shown."""
        x, y, w, h = self.face_region()
        shown = self.shown_size()
        if w <= 0 or h <= 0 or shown is None:
            return None
        fx, fy = camera.width / shown[1], camera.height / shown[0]

        def even(v: float, hi: int) -> int:
            return max(0, min(hi, int(v) // 2 * 2))

        x0, y0 = even(x * fx, camera.width - 2), even(y * fy, camera.height - 2)
        return x0, y0, even(w * fx, camera.width - x0), even(h * fy, camera.height - y0)

    def refresh(self) -> bool:
        got = self.controller.preview(self.seq)
        if got is None:
            return False
        self.seq, _nframe, full = got
        # every other pixel: the console shows it at about 500 px; uint8 without levels
        # goes to the screen without a rescaling pass
        rgb = np.ascontiguousarray(full[::2, ::2])
        self.image.setImage(rgb, autoLevels=False)
        h, w = rgb.shape[:2]
        self._shown_size = (h, w)
        if self.roi is None:
            self.roi = pg.RectROI(
                [w * 0.3, h * 0.1], [w * 0.4, h * 0.8], pen=pg.mkPen("#ffd54f", width=2)
            )
            self.box.addItem(self.roi)
            self.roi.sigRegionChangeFinished.connect(self._face_box_moved)
            self._shown_size = (h, w)
            self._face_box_moved()
        self.shown += 1
        if self.shown % self._stats_every == 0:
            self._exposure(rgb)
        return True

    def _face_box_moved(self, *_: object) -> None:
        if self.on_face_box is not None:
            self.on_face_box()

    def shown_size(self) -> tuple[int, int] | None:
        """(height, width) of the displayed preview image, once one was shown."""
        return getattr(self, "_shown_size", None)

    def face_region(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the face box in displayed preview pixels (1/4 of the sensor)."""
        if self.roi is None:
            return (0, 0, 0, 0)
        (x, y), (w, h) = self.roi.pos(), self.roi.size()
        return int(x), int(y), int(w), int(h)

    def _exposure(self, rgb: np.ndarray) -> None:
        x, y, w, h = self.face_region()
        face = rgb[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
        if not face.size:
            return
        level = float(face.mean())
        saturated = float(np.mean(face.max(axis=2) >= SATURATED))
        verdict = "ok"
        colour = "#2e7d32"
        if saturated > 0.01:
            verdict, colour = "SATURATED - lower exposure or gain", "#c62828"
        elif level < 40:
            verdict, colour = "dark - raise exposure or light", "#ef6c00"
        self.exposure.setText(
            f'<span style="color:{colour}">face region: mean level {level:.0f}/255, '
            f"saturated {100 * saturated:.1f} % - {verdict}</span>"
        )


class SignalPlots(QWidget):
    """EEG (a group of channels, stacked, with a scale) above the physiology channels.

    The x axis is fixed (-10..0 s, "now" at the right) and the data move: axes are
    redrawn only when a range really changes, which keeps a refresh cheap. Event
    markers are vertical segments of one curve per colour and plot.
    """

    def __init__(self, controller: EngineController) -> None:
        super().__init__()
        self.controller = controller
        streams = controller.streams()
        self.eeg_names = streams.get("eeg", [])
        self.physio_names = streams.get("physio", [])
        self.group = QComboBox()
        for start in range(0, len(self.eeg_names), EEG_GROUP):
            names = self.eeg_names[start : start + EEG_GROUP]
            self.group.addItem(f"{names[0]}-{names[-1]}", start)
        self.scale = QComboBox()
        for uv in EEG_SCALES_UV:
            self.scale.addItem(f"{uv} uV", uv)
        self.scale.setCurrentIndex(2)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("EEG channels"))
        bar.addWidget(self.group)
        bar.addWidget(QLabel("scale"))
        bar.addWidget(self.scale)
        bar.addStretch(1)
        # two views, so each repaint is a small piece of GUI-thread work
        self.eeg_view = pg.GraphicsLayoutWidget()
        self.physio_view = pg.GraphicsLayoutWidget()
        self.physio_index = [
            self.physio_names.index(n) for n in PHYSIO_ORDER if n in self.physio_names
        ]
        self.eeg_plot = self._plot(self.eeg_view, 0, last=True)
        # all shown EEG channels are one curve (broken between channels): one item to update
        self.eeg_curve = self._curve(self.eeg_plot, "#90caf9")
        self.physio_plots = []
        self.physio_curves = []
        for row, idx in enumerate(self.physio_index):
            plot = self._plot(self.physio_view, row, last=row == len(self.physio_index) - 1)
            plot.setLabel("left", self.physio_names[idx])
            self.physio_plots.append(plot)
            self.physio_curves.append(self._curve(plot, "#a5d6a7"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.eeg_view, 3)
        layout.addWidget(self.physio_view, 4)
        self.physio_view.setVisible(bool(self.physio_index))
        self.markers: deque[tuple[float, int]] = deque()
        self._marker_curves = [
            self._curve(plot, MARKER_COLOUR) for plot in (self.eeg_plot, *self.physio_plots)
        ]
        for curve in self._marker_curves:
            curve.setZValue(-1)
        self.updates = 0
        self._eeg_view: tuple[int, int, float] | None = None
        self._ranges: list[tuple[float, float]] = [(0.0, 0.0)] * len(self.physio_plots)

    @staticmethod
    def _plot(view: pg.GraphicsLayoutWidget, row: int, last: bool) -> pg.PlotItem:
        plot = view.addPlot(row=row, col=0)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setXRange(-WINDOW_S, 0, padding=0)
        plot.disableAutoRange()
        if not last:
            plot.hideAxis("bottom")
        else:
            plot.setLabel("bottom", "s")
        plot.getAxis("left").setWidth(60)
        return plot

    @staticmethod
    def _curve(plot: pg.PlotItem, colour: str) -> pg.PlotCurveItem:
        curve = pg.PlotCurveItem(pen=pg.mkPen(colour, width=1), skipFiniteCheck=True)
        plot.addItem(curve)
        return curve

    def add_marker(self, t: float, code: int) -> None:
        if code != EventCode.SYNC:  # the periodic sync pulses would only clutter the view
            self.markers.append((t, code))

    def refresh(self) -> None:
        """Both views (they are painted later by Qt)."""
        self.refresh_eeg()
        self.refresh_physio()

    def refresh_eeg(self) -> None:
        now = self.controller.clock()
        self._drop_old_markers(now)
        if self.eeg_names:
            self._eeg(now)
        self._draw_markers(now, [self.eeg_plot], self._marker_curves[:1])

    def refresh_physio(self) -> None:
        """The physiology view; one whole plot refresh is counted here."""
        now = self.controller.clock()
        if self.physio_index:
            snap = self.controller.snapshot("physio", WINDOW_S, self.physio_index)
            x, y = minmax_decimate(snap.times() - now, snap.data, BINS)
            for i, curve in enumerate(self.physio_curves):
                curve.setData(x, y[:, i])
            if self.updates % 30 == 0 and len(y):
                self._rescale(y)
            self._draw_markers(now, self.physio_plots, self._marker_curves[1:])
        self.updates += 1

    def _rescale(self, y: np.ndarray) -> None:
        """Once a second: y ranges that fit the data (fixed ranges are cheaper than auto)."""
        for i, plot in enumerate(self.physio_plots):
            lo, hi = float(np.nanmin(y[:, i])), float(np.nanmax(y[:, i]))
            pad = 0.1 * (hi - lo) or 1.0
            old_lo, old_hi = self._ranges[i]
            span = old_hi - old_lo
            if lo < old_lo or hi > old_hi or (hi - lo) < 0.5 * span:
                self._ranges[i] = (lo - pad, hi + pad)
                plot.setYRange(lo - pad, hi + pad, padding=0)

    def _eeg(self, now: float) -> None:
        start = int(self.group.currentData() or 0)
        channels = list(range(start, min(start + EEG_GROUP, len(self.eeg_names))))
        step = float(self.scale.currentData() or 100)
        snap = self.controller.snapshot("eeg", WINDOW_S, channels)
        x, y = minmax_decimate(snap.times() - now, snap.data, BINS)
        if len(y):
            offsets = y.mean(axis=0) + step * np.arange(len(channels))
            ys = (y - offsets).T.ravel()
            connect = np.ones((len(channels), len(x)), bool)
            connect[:, -1] = False
            self.eeg_curve.setData(np.tile(x, len(channels)), ys, connect=connect.ravel())
        view = (start, len(channels), step)
        if view != self._eeg_view:  # ticks and range change only with the selection
            self._eeg_view = view
            ticks = [(-i * step, self.eeg_names[c]) for i, c in enumerate(channels)]
            self.eeg_plot.getAxis("left").setTicks([ticks, []])
            self.eeg_plot.setYRange(-(len(channels) - 0.5) * step, 0.5 * step, padding=0)

    def _drop_old_markers(self, now: float) -> None:
        while self.markers and self.markers[0][0] < now - WINDOW_S:
            self.markers.popleft()

    def _draw_markers(
        self, now: float, plots: list[pg.PlotItem], curves: list[pg.PlotCurveItem]
    ) -> None:
        x = np.repeat(np.array([t - now for t, _ in self.markers], float), 2)
        for plot, curve in zip(plots, curves, strict=True):
            lo, hi = plot.viewRange()[1]
            curve.setData(x, np.tile([lo, hi], len(self.markers)), connect="pairs")


def minmax_decimate(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Each bin's minimum and maximum (``y``: samples x channels), so peaks stay visible.

    The pair is placed at the bin's first and last sample time.
    """
    n = len(y)
    if n <= 2 * bins:
        return x, y
    k = n // bins
    start = n - k * bins
    blocks = y[start:].reshape(bins, k, y.shape[1])
    out = np.empty((2 * bins, y.shape[1]), y.dtype)
    out[0::2] = blocks.min(axis=1)
    out[1::2] = blocks.max(axis=1)
    xs = x[start:].reshape(bins, k)
    xout = np.empty(2 * bins)
    xout[0::2] = xs[:, 0]
    xout[1::2] = xs[:, -1]
    return xout, out


def paint_now(view: pg.GraphicsView) -> None:
    """Paint ``view`` in this turn of the event loop rather than with every other dirty
    widget of the window in one long paint later."""
    viewport = view.viewport()
    if viewport is not None:
        viewport.repaint()
