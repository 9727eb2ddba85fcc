"""The coding window's tracks: one plot per track under the face, on one time axis
with a cursor at the current frame; the spotter's motion curves; the event row
(session markers, the spotter's candidates, other coders' events and the coder's
own, as bars a click jumps to). Only the window shown is read (``around``), and a
seek that leaves it reads the new one in the next turn of the event loop (``defer``)
so the face is painted first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, QTimer

from mmmelab.analysis.annotations.coding import CodingSession

OWN, OTHER, CANDIDATE = "#4fc3f7", "#b0bec5", "#ffb74d"
MARKER_COLOUR = "#ffd54f"


class TrackPanel(pg.GraphicsLayoutWidget):
    """The tracks and the event row of ``model`` over ``window_s`` seconds; a click on
    an event calls ``on_jump(frame number)``."""

    def __init__(self, model: CodingSession, window_s: float, on_jump: Callable[[int], None]):
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.model = model
        self.window_s = window_s
        self.on_jump = on_jump
        m = model
        self._span = (np.inf, -np.inf)  # master-time window the tracks hold
        self._y: dict[str, tuple[float, float]] = {}  # each track's y range shown
        self._event_items: list[Any] = []
        self._labels_shown: list[Any] = []
        self._spans: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}
        self._pending_t = 0.0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(lambda: self.around(self._pending_t))
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.cursors: list[pg.InfiniteLine] = []
        names = [*m.track_names]
        if m.spots.curves:
            names.append("motion")
        names.append("events")
        first: pg.PlotItem | None = None
        for row, name in enumerate(names, start=1):
            plot = self.addPlot(row=row, col=0)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setLabel("left", name)
            plot.getAxis("left").setWidth(70)
            plot.getAxis("left").enableAutoSIPrefix(False)
            if row < len(names):
                plot.hideAxis("bottom")  # one time axis, under the last track
            # ranges are set, never searched: autoranging 11 plots on every seek costs
            # more than reading the data
            plot.disableAutoRange()
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            cursor = pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#ef5350", width=1))
            plot.addItem(cursor)
            self.cursors.append(cursor)
            self.plots[name] = plot
            if name not in ("events", "motion"):
                self.curves[name] = plot.plot(pen=pg.mkPen("#e0e0e0", width=1))
        self.plots["events"].getAxis("bottom").setLabel("s from the first frame")
        self.plots["events"].setYRange(0, 3.6, padding=0)
        self.scene().sigMouseClicked.connect(self.events_clicked)
        self.plots["events"].getAxis("left").setTicks([[(0.5, "spots"), (1.5, "others"),
                                                        (2.5, "mine")]])  # fmt: skip
        if "motion" in self.plots:
            top = 0.0
            for label, (t, y) in sorted(self.model.spots.curves.items()):
                if label.startswith("me:"):
                    self.plots["motion"].plot(t - m.t0, y, pen=pg.mkPen("#90a4ae", width=1))
                    top = max(top, float(np.nanmax(y)) if len(y) else 0.0)
            self.plots["motion"].setYRange(0, top or 1.0, padding=0.05)

    def set_cursor(self, rel: float) -> None:
        for c in self.cursors:
            c.setPos(rel)

    def show_at(self, t: float, defer: bool) -> None:
        """The tracks around master time ``t``; with ``defer`` (a seek) read in the next
        turn of the event loop when they must be read afresh."""
        if defer and not self.inside(t):
            self._pending_t = t
            self.timer.start(0)
        else:
            self.around(t)

    def forget(self) -> None:
        """Read the tracks afresh at the next frame (e.g. the heart rate is ready)."""
        self._span = (np.inf, -np.inf)

    def inside(self, t: float) -> bool:
        a, b = self._span
        return a + 0.25 * self.window_s <= t <= b - 0.25 * self.window_s

    def around(self, t: float) -> None:
        if self.inside(t) or self.model.closed:  # (a deferred redraw after the close)
            return
        w = self.window_s
        a, b = t - w / 2, t + w / 2
        self._span = (a, b)
        m = self.model
        for name, curve in self.curves.items():
            tr = m.track(name, a, b, max_points=1200)
            curve.setData(tr.t - m.t0, tr.y)
            if len(tr.y):
                self._fit_y(name, float(np.min(tr.y)), float(np.max(tr.y)))
        self.plots["events"].setXRange(a - m.t0, b - m.t0, padding=0)
        self._marker_labels(a, b)

    def _fit_y(self, name: str, lo: float, hi: float) -> None:
        """Keep a track's y range while the data fit it and fill a good part of it: a
        steady axis is easier to read, and one that does not move is not redrawn."""
        old = self._y.get(name)
        if old is not None:
            olo, ohi = old
            span = ohi - olo
            if olo <= lo and hi <= ohi and (hi - lo) >= 0.4 * span:
                return
        pad = 0.08 * (hi - lo) or 1.0
        self._y[name] = (lo - pad, hi + pad)
        self.plots[name].setYRange(lo - pad, hi + pad, padding=0)

    def draw_events(self) -> list[tuple[str, Any]]:
        """The event row: markers as one item of vertical lines (their labels only in the
        window shown), events and candidates as bars - one item per kind, so an hour's
        hundreds of them cost one paint each, not hundreds. Returns the events shown
        (source, annotation), for the list beside."""
        m = self.model
        plot = self.plots["events"]
        for item in self._event_items:
            plot.removeItem(item)
        self._event_items = []
        if m.markers:
            ts = np.array([t - m.t0 for t, _ in m.markers])
            x = np.repeat(ts, 3)
            x[2::3] = np.nan
            y = np.tile([0.0, 3.0, np.nan], len(ts))
            lines = pg.PlotDataItem(x, y, connect="finite", pen=pg.mkPen(MARKER_COLOUR, width=1))
            self._add(plot, lines)
        rows = [(src, a) for src, a in m.events_on_screen()]
        own = [a for src, a in rows if src == m.coder]
        others = [a for src, a in rows if src != m.coder]
        self._spans = {}
        for row, (events, colour) in enumerate(((m.spots.candidates, CANDIDATE), (others, OTHER),
                                                (own, OWN))):  # fmt: skip
            if not events:
                continue
            on = np.array([m.time_of(a.onset) for a in events]) - m.t0
            off = np.array([m.time_of(a.offset) for a in events]) - m.t0 + 1.0 / m.fps
            bars = pg.BarGraphItem(x0=on, x1=off, y0=row + 0.1, height=0.8,
                                   brush=pg.mkBrush(colour + "b0"), pen=pg.mkPen(None))  # fmt: skip
            self._add(plot, bars)
            self._spans[row] = (on, off, [a.apex if a.apex is not None else a.onset
                                          for a in events])  # fmt: skip
        return rows

    def _add(self, plot: pg.PlotItem, item: Any) -> None:
        plot.addItem(item)
        self._event_items.append(item)

    def _marker_labels(self, a: float, b: float) -> None:
        """Labels of the markers inside the window shown (made again when it moves)."""
        plot, m = self.plots["events"], self.model
        for item in self._labels_shown:
            plot.removeItem(item)
        self._labels_shown = []
        for t, text in m.markers:
            if a <= t <= b:
                label = pg.TextItem(text, color=MARKER_COLOUR, anchor=(0, 0))
                label.setPos(t - m.t0, 3.0)
                plot.addItem(label)
                self._labels_shown.append(label)

    def events_clicked(self, ev: Any) -> None:
        """A click on a candidate or an event in the event row goes to its apex."""
        plot = self.plots["events"]
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        if not plot.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = plot.vb.mapSceneToView(ev.scenePos())
        row = int(np.floor(p.y()))
        hit = self._spans.get(row)
        if hit is None:
            return
        on, off, targets = hit
        inside = np.flatnonzero((on <= p.x()) & (p.x() <= off))
        if len(inside):
            self.on_jump(int(targets[int(inside[0])]))
