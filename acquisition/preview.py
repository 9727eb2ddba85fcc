"""The preview state: after connect and before Start, every device streams live and
nothing is written.

``Preview`` runs one reader thread per device (``rec-preview-<name>``): the camera
thread grabs every frame (keeping the newest for the console and, per frame, the
face box's mean brightness and the trigger input level for the checks); a signal
thread pushes each block into the engine's live window and keeps the last
``keep_s`` seconds for the checks. A trigger bus of its own sends the loop-back
code. ``stop`` ends the threads and the bus and stops the camera's acquisition;
the signal devices keep streaming, so Start goes straight on (the recorders read
from where the preview stopped).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmmelab.acquisition import rigchecks as rc
from mmmelab.acquisition.livewindow import SignalWindow
from mmmelab.acquisition.telemetry import StreamTelemetry
from mmmelab.drivers.base import SampleBlock, SignalDriver
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import LabError
from mmmelab.storage.preview import preview_shape, render
from mmmelab.streams import SignalLayout
from mmmelab.sync.bus import MarkerRecord, TriggerBus
from mmmelab.sync.codes import EventCode, trigger_levels

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, width, height (pixels of the camera ROI)


def default_face_box(width: int, height: int) -> Box:
    """A centred square of 60 % of the shorter side: where a framed face sits."""
    side = int(0.6 * min(width, height)) // 2 * 2
    return ((width - side) // 2 // 2 * 2, (height - side) // 2 // 2 * 2, side, side)


@dataclass
class FrameSample:
    """One preview frame's figures: receive time (master clock, s), mean brightness, trigger
    level."""

    host_time: float
    mean: float
    gpi_level: int


class _Worker:
    def __init__(self, name: str, loop: Callable[[threading.Event], None]) -> None:
        self.error: str | None = None
        self._stop = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(target=self._main, name=f"rec-preview-{name}", daemon=True)

    def _main(self) -> None:
        try:
            self._loop(self._stop)
        except LabError as exc:
            self.error = str(exc)
            logger.error("preview: %s", exc)
        except Exception as exc:  # shown in the console, never silent
            self.error = f"unexpected error: {exc!r}"
            logger.exception("preview reader failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


class Preview:
    """Live devices without a session. Built by ``SessionEngine.preview()``."""

    def __init__(
        self,
        camera: XimeaCamera | None,
        drivers: dict[str, SignalDriver],
        layouts: dict[str, SignalLayout],
        windows: dict[str, SignalWindow],
        bus: TriggerBus | None,
        clock: Callable[[], float],
        face_box: Box | None = None,
        keep_s: float = 12.0,
    ) -> None:
        self.camera = camera
        self.drivers = drivers
        self.layouts = layouts
        self.windows = windows
        self.bus = bus
        self.clock = clock
        cfg = camera.config if camera is not None else None
        self.width: int = cfg.width if cfg is not None else 0
        self.height: int = cfg.height if cfg is not None else 0
        self.fps = float(cfg.fps) if cfg is not None else 0.0
        self._face_box: Box = face_box or default_face_box(self.width, self.height)
        self.focus = rc.FocusTracker()  # the lens being turned: current and best sharpness
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self.frames: collections.deque[FrameSample] = collections.deque(
            maxlen=max(1, int(keep_s * max(self.fps, 1.0)))
        )
        self.frame_count = 0
        self._latest: np.ndarray | None = None
        self._latest_seq = 0
        self.blocks: dict[str, collections.deque[SampleBlock]] = {
            name: collections.deque() for name in drivers
        }
        self.samples: dict[str, int] = dict.fromkeys(drivers, 0)
        self.markers: list[MarkerRecord] = []
        self.workers: dict[str, _Worker] = {}
        self.started_at = float("nan")

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.started_at = self.clock()
        if self.camera is not None:
            self.workers["camera"] = _Worker("camera", self._camera_loop)
        for name in self.drivers:
            self.workers[name] = _Worker(name, self._signal_loop(name))
        for w in self.workers.values():
            w.start()
        if self.bus is not None:
            self.bus.listeners.append(self.markers.append)
            self.bus.start()

    def stop(self) -> None:
        if self.bus is not None:
            self.bus.close(1.0)
        for w in self.workers.values():
            w._stop.set()
        for w in self.workers.values():
            w.stop(1.0)

    def telemetry(self) -> dict[str, StreamTelemetry]:
        """Per device, as the recording's telemetry names it: state ``live`` (or
        ``failed``), the camera's measured fps, the signals' sample counts."""
        out: dict[str, StreamTelemetry] = {}
        errors = self.errors()
        with self._lock:
            times = [f.host_time for f in list(self.frames)[-int(self.fps) - 1 :]]
            samples = dict(self.samples)
        if self.camera is not None:
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0
            state = "failed" if "camera" in errors else "live"
            out["camera"] = StreamTelemetry(state, fps=fps, frames=self.frame_count, dropped=0)
        for name, n in samples.items():
            out[name] = StreamTelemetry("failed" if name in errors else "live", samples=n,
                                        rate_hz=self.layouts[name].rate_hz, dropped=0)  # fmt: skip
        return out

    def errors(self) -> dict[str, str]:
        return {n: w.error for n, w in self.workers.items() if w.error}

    # ------------------------------------------------------------ readers

    def _camera_loop(self, stop: threading.Event) -> None:
        cam = self.camera
        assert cam is not None
        buf = np.empty(self.width * self.height, np.uint8)
        cam.start()
        try:
            while not stop.is_set():
                info = cam.read_into(buf)
                if info is None:
                    continue
                img = buf.reshape(self.height, self.width)
                x, y, w, h = self.face_box  # the experimenter may move it at any time
                mean = float(img[y : y + h, x : x + w].mean())
                with self._lock:
                    self.frames.append(FrameSample(info.host_time, mean, info.gpi_level))
                    self.frame_count += 1
                    if self._latest is None or self.frame_count % 4 == 0:
                        self._latest = img.copy()
                        self._latest_seq = self.frame_count
                cam.faults.clear()  # nothing is recorded in preview; counts are shown live
        finally:
            cam.stop()

    def _signal_loop(self, name: str) -> Callable[[threading.Event], None]:
        driver, window = self.drivers[name], self.windows.get(name)
        rate = self.layouts[name].rate_hz
        keep = int(self.keep_s * rate)

        def loop(stop: threading.Event) -> None:
            while not stop.is_set():
                for block in driver.read(0.1):
                    if window is not None:
                        window.push(block.data, block.host_time)
                    with self._lock:
                        q = self.blocks[name]
                        q.append(block)
                        self.samples[name] += len(block.data)
                        while sum(len(b.data) for b in q) - len(q[0].data) >= keep:
                            q.popleft()
                getattr(driver, "faults", []).clear()

        return loop

    # ------------------------------------------------------------ what the checks read

    def latest_frame(self) -> tuple[int, np.ndarray] | None:
        with self._lock:
            return None if self._latest is None else (self._latest_seq, self._latest)

    def latest_rgb(self, after_seq: int, factor: int = 2) -> tuple[int, np.ndarray] | None:
        """The newest frame debayered and downscaled as a recording's preview is
        (the sensor's RGGB pattern), if newer than ``after_seq``."""
        got = self.latest_frame()
        if got is None or got[0] <= after_seq:
            return None
        seq, raw = got
        out = np.empty((*preview_shape(raw.shape[0], raw.shape[1], factor), 3), np.uint8)
        wb = self.camera.config.white_balance if self.camera is not None else (1.0, 1.0, 1.0)
        render(raw, out, factor, white_balance=wb)
        return seq, out

    @property
    def face_box(self) -> Box:
        return self._face_box

    @face_box.setter
    def face_box(self, box: Box) -> None:
        if tuple(box) != tuple(self._face_box):
            self.focus.reset()  # the best-so-far belongs to the old box
        self._face_box = box

    def camera_figures(self, seconds: float = 2.0) -> dict[str, Any]:
        """The live camera checks on the newest frame, for the console while the
        experimenter frames, focuses and sets the exposure: focus (with its best so
        far), exposure (with the face box's histogram) and flicker (with the spectrum
        of the face box's brightness over the last ``seconds``)."""
        latest = self.latest_frame()
        if latest is None:
            return {}
        x, y, w, h = self.face_box
        box = latest[1][y : y + h, x : x + w]
        self.focus.update(box)
        return {
            "focus": self.focus.check().to_dict(),
            "exposure": rc.exposure(box).to_dict(),
            "flicker": rc.flicker(self.face_means(seconds), self.fps).to_dict(),
        }

    def face_means(self, seconds: float) -> np.ndarray:
        with self._lock:
            rows = list(self.frames)
        n = int(seconds * self.fps)
        return np.array([r.mean for r in rows[-n:]])

    def signal(self, name: str, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(data samples x channels, master time per sample, trigger level per sample)
        of the newest ``seconds``."""
        with self._lock:
            blocks = list(self.blocks[name])
        rate = self.layouts[name].rate_hz
        if not blocks:
            return np.zeros((0, len(self.layouts[name].channels))), np.zeros(0), None
        data = np.concatenate([b.data for b in blocks])
        times = np.concatenate(
            [b.host_time - (len(b.data) - 1 - np.arange(len(b.data))) / rate for b in blocks]
        )
        levels = [trigger_levels(b.aux) for b in blocks]
        present = [v for v in levels if v is not None]
        level = np.concatenate(present) if len(present) == len(levels) else None
        n = int(seconds * rate)
        return data[-n:], times[-n:], None if level is None else level[-n:]

    def clear(self) -> None:
        """Forget what was collected (after the rig was changed: judge only new data)."""
        with self._lock:
            self.frames.clear()
            for q in self.blocks.values():
                q.clear()

    def wait_for_data(self, seconds: float, timeout_s: float) -> bool:
        """Until every stream has ``seconds`` of data (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                cam_ok = self.camera is None or len(self.frames) >= min(
                    self.frames.maxlen or 0, int(seconds * self.fps)
                )
                sig_ok = all(
                    sum(len(b.data) for b in self.blocks[n]) >= seconds * self.layouts[n].rate_hz
                    for n in self.drivers
                )
            if (cam_ok and sig_ok) or self.errors():
                return cam_ok and sig_ok
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------ trigger loop-back

    def loopback(self, wait_s: float = 1.0) -> dict[str, Any]:
        """Send one test code through the bus; per stream, whether its edge arrived
        and its latency against the LSL marker (ms)."""
        if self.bus is None:
            raise LabError("no trigger bus in this preview")
        seen = len(self.markers)
        self.bus.emit(EventCode.NOTE, "trigger loop-back test")
        deadline = time.monotonic() + 2.0
        while len(self.markers) == seen and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(self.markers) == seen:
            raise LabError("the trigger bus sent nothing within 2 s")
        rec = self.markers[-1]
        time.sleep(wait_s)  # the edge travels through each device and its network
        out: dict[str, Any] = {"t_marker": rec.t_on, "ttl_ok": rec.ttl_ok, "streams": {}}
        code = int(EventCode.NOTE)
        if self.camera is not None:
            with self._lock:
                frames = list(self.frames)
            t = np.array([f.host_time for f in frames])
            lv = np.array([f.gpi_level for f in frames])
            out["streams"]["camera"] = _first_edge(t, lv > 0, rec.t_on)
        for name in self.drivers:
            _, times, level = self.signal(name, self.keep_s)
            if level is None:
                continue  # no trigger input on this stream (an LSL stream, say)
            out["streams"][name] = _first_edge(times, (level & code) == code, rec.t_on)
        return out


def _first_edge(times: np.ndarray, high: np.ndarray, t_marker: float) -> dict[str, Any]:
    """The first rising edge at or after the marker (50 ms of slack before it)."""
    if not len(times):
        return {"arrived": False, "latency_ms": None}
    prev = np.concatenate([[high[0]], high[:-1]])
    edges = np.flatnonzero(high & ~prev & (times >= t_marker - 0.05))
    if not len(edges):
        return {"arrived": False, "latency_ms": None}
    return {"arrived": True, "latency_ms": round(1000.0 * (times[edges[0]] - t_marker), 2)}
