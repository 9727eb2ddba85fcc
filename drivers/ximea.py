"""XIMEA xiQ camera (MQ022CG-CM) through XIMEA's official ``xiapipy`` package.

Configuration follows ../shared/reference/devices.md section 4: RAW8 at the
configured ROI (width and offsets must respect the increments the camera
reports), exposure, gain, frame-rate timing mode, safe buffer policy with our
own buffer (``xiGetImage`` copies straight into it), a deep FIFO queue, GPI 1 as
a plain level input (the shared trigger line), GPO 1 as exposure-active strobe,
optional timestamp reset on a GPI 1 rising edge.

Per frame the driver keeps ``acq_nframe``, the camera timestamp unwrapped (the
32-bit microsecond counter wraps every ~71.6 min), ``GPI_level``, exposure and
gain, and the host receive time on the master clock. Drops are counted from
``acq_nframe`` gaps and cross-checked with the API's skipped-frame counters.
XIMEA error codes become :mod:`mmmelab.errors` exceptions with code and meaning.

Threads: ``open``/``close`` on the control thread; ``start``, ``read_into`` and
``stop`` on the camera grabber thread.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmmelab.config import CameraConfig
from mmmelab.drivers.base import DeviceFault
from mmmelab.errors import DeviceError, DeviceLostError
from mmmelab.streams import FaultKind

logger = logging.getLogger(__name__)

XI_TIMEOUT = 10
LOST_CODES = {1, 45, 46, 49, 56}  # invalid handle, acquisition stopped/failed, not ready, gone
TS_WRAP_US = 1 << 32
WB_PARAMS = ("wb_kr", "wb_kg", "wb_kb")  # white balance gains (xiAPI names)
WRAP_WINDOW_US = 1_000_000  # a backward jump from within 1 s of 2^32 us is a wrap


@dataclass(frozen=True)
class FrameInfo:
    """One grabbed frame's metadata: frame numbers, camera time (us), trigger input level,
    exposure, gain and receive time (master clock, s)."""

    acq_nframe: int
    nframe: int
    ts_us: int  # unwrapped camera timestamp
    gpi_level: int
    exposure_us: int
    gain_db: float
    host_time: float  # master clock when the frame arrived, s
    clock_reset: bool = False  # the first frame after a camera timestamp reset


class XimeaCamera:
    """One XIMEA camera. Context manager; ``close`` is idempotent."""

    name = "camera"

    def __init__(self, config: CameraConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.faults: list[DeviceFault] = []
        self._xiapi: Any = None
        self._cam: Any = None
        self._img: Any = None
        self.acquiring = False
        self.frames = 0
        self.dropped = 0
        self._last_nframe = 0
        self._last_raw_ts = -1
        self._wraps = 0
        self.serial = ""
        self.model = ""

    # ------------------------------------------------------------ errors

    def _error(self, exc: Any, doing: str) -> DeviceError:
        status = int(getattr(exc, "status", -1))
        descr = getattr(exc, "descr", str(exc))
        cls = DeviceLostError if status in LOST_CODES else DeviceError
        return cls(self.name, f"{doing}: {descr}", code=status)

    def _call(self, doing: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._xiapi.Xi_error as exc:
            raise self._error(exc, doing) from None

    # ------------------------------------------------------------ lifecycle

    def open(self) -> dict[str, Any]:
        """Open and configure the camera; returns what the manifest should record."""
        try:
            from xiapipy import xiapi
        except (ImportError, OSError) as exc:
            raise DeviceError(
                self.name,
                f"XIMEA's xiAPI is not available ({exc}); install the "
                f"XIMEA software package (libm3api) or set "
                f"devices.camera.simulate = true",
            ) from None
        self._xiapi = xiapi
        cam = xiapi.Camera(self.config.index)
        if self.config.serial:
            self._call(
                f"opening camera {self.config.serial}", cam.open_device_by_SN, self.config.serial
            )
        else:
            self._call(f"opening camera {self.config.index}", cam.open_device)
        self._cam = cam
        self.serial = self._call("reading serial", cam.get_device_sn).decode()
        self.model = self._call("reading model", cam.get_device_name).decode()
        self._configure()
        self._img = xiapi.Image()
        logger.info(
            "camera %s (%s) open: %dx%d at %g fps",
            self.model,
            self.serial,
            self.config.width,
            self.config.height,
            self.config.fps,
        )
        return self.info()

    def _check_increment(self, name: str, value: int) -> None:
        inc = int(self._call(f"reading {name}:inc", self._cam.get_param, f"{name}:inc"))
        if inc > 1 and value % inc:
            lower = value - value % inc
            raise DeviceError(
                self.name,
                f"{name} = {value} is not a multiple of the camera's "
                f"increment {inc}; use {lower} or {lower + inc}",
            )

    def _configure(self) -> None:
        c, cam = self.config, self._cam
        self._call("setting RAW8", cam.set_imgdataformat, "XI_RAW8")
        for name, value in (("width", c.width), ("height", c.height)):
            self._check_increment(name, value)
            self._call(f"setting {name} = {value}", cam.set_param, name, value)
        for name, value in (("offsetX", c.offset_x), ("offsetY", c.offset_y)):
            self._check_increment(name, value)
            self._call(f"setting {name} = {value}", cam.set_param, name, value)
        self._call(f"setting exposure = {c.exposure_us:g} us", cam.set_exposure, c.exposure_us)
        self._call(f"setting gain = {c.gain_db:g} dB", cam.set_gain, c.gain_db)
        for name, k in zip(WB_PARAMS, c.white_balance, strict=True):
            self._call(f"setting {name} = {k:g}", cam.set_param, name, float(k))
        self._call(
            "setting frame-rate timing mode",
            cam.set_acq_timing_mode,
            "XI_ACQ_TIMING_MODE_FRAME_RATE",
        )
        max_fps = float(self._call("reading framerate:max", cam.get_framerate_maximum))
        if c.fps > max_fps + 1e-3:
            raise DeviceError(
                self.name,
                f"fps = {c.fps:g} is above this camera's maximum of "
                f"{max_fps:.1f} fps at {c.height} lines and "
                f"{c.exposure_us:g} us exposure",
            )
        self._call(f"setting framerate = {c.fps:g}", cam.set_framerate, c.fps)
        self._call("setting safe buffer policy", cam.set_buffer_policy, "XI_BP_SAFE")
        self._call("setting the queue depth", cam.set_buffers_queue_size, c.queue_frames)
        self._call("setting FIFO delivery", cam.disable_recent_frame)
        self._call("selecting GPI 1", cam.set_gpi_selector, "XI_GPI_PORT1")
        self._call("setting GPI 1 as level input", cam.set_gpi_mode, "XI_GPI_OFF")
        if c.gpo_strobe:
            self._call("selecting GPO 1", cam.set_gpo_selector, "XI_GPO_PORT1")
            self._call("setting the exposure strobe", cam.set_gpo_mode, "XI_GPO_EXPOSURE_ACTIVE")
        if c.timestamp_reset_on_trigger:
            self._call("arming timestamp reset", cam.set_ts_rst_mode, "XI_TS_RST_ARM_ONCE")
            self._call("timestamp reset on GPI 1", cam.set_ts_rst_source, "XI_TS_RST_SRC_GPI_1")

    def limits(self) -> dict[str, tuple[float, float]]:
        """What the console may set in preview: the camera's own (min, max) for gain and
        the white balance gains, and for exposure the camera's minimum up to what the
        frame period leaves (20 us short of it)."""
        cam, out = self._cam, {}
        for name in ("exposure", "gain", *WB_PARAMS):
            lo = float(self._call(f"reading {name}:min", cam.get_param, f"{name}:min"))
            hi = float(self._call(f"reading {name}:max", cam.get_param, f"{name}:max"))
            out[name] = (lo, hi)
        lo, hi = out["exposure"]
        out["exposure"] = (lo, min(hi, 1e6 / self.config.fps - 20.0))
        return out

    def adjust(
        self,
        exposure_us: float | None = None,
        gain_db: float | None = None,
        white_balance: tuple[float, float, float] | None = None,
    ) -> CameraConfig:
        """Change exposure, gain or white balance while the camera runs (the preview).
        A value outside the camera's limits is refused with the limits; nothing is
        changed then. Returns the configuration now in force."""
        wanted: dict[str, float] = {}
        if exposure_us is not None:
            wanted["exposure"] = float(exposure_us)
        if gain_db is not None:
            wanted["gain"] = float(gain_db)
        if white_balance is not None:
            wanted |= {n: float(k) for n, k in zip(WB_PARAMS, white_balance, strict=True)}
        limits = self.limits()
        for name, value in wanted.items():
            lo, hi = limits[name]
            if not lo <= value <= hi:
                raise DeviceError(
                    self.name, f"{name} = {value:g} is outside the camera's range {lo:g}..{hi:g}"
                )
        for name, value in wanted.items():
            self._call(f"setting {name} = {value:g}", self._cam.set_param, name, value)
        c = self.config
        self.config = dataclasses.replace(
            c,
            exposure_us=wanted.get("exposure", c.exposure_us),
            gain_db=wanted.get("gain", c.gain_db),
            wb_kr=wanted.get("wb_kr", c.wb_kr),
            wb_kg=wanted.get("wb_kg", c.wb_kg),
            wb_kb=wanted.get("wb_kb", c.wb_kb),
        )
        logger.info("camera adjusted: %s", ", ".join(f"{k} {v:g}" for k, v in wanted.items()))
        return self.config

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "serial": self.serial,
            "width": self.config.width,
            "height": self.config.height,
            "offset_x": self.config.offset_x,
            "offset_y": self.config.offset_y,
            "fps": self.config.fps,
            "exposure_us": self.config.exposure_us,
            "gain_db": self.config.gain_db,
            "white_balance": list(self.config.white_balance),
            "pixel_format": "RAW8",
            "bayer_pattern": "RGGB",
            "queue_frames": self.config.queue_frames,
            "readout_us": self.readout_us(),
        }

    def readout_us(self) -> float:
        """Sensor readout time of one frame (the timestamp marks the start of readout).

        For the MQ022xG-CM the xiQ manual gives (37.625 + 5.375 * lines) us at full
        bandwidth; for other models 0 (alignment then refers to readout start).
        """
        if self.model.startswith("MQ022"):
            return 37.625 + 5.375 * self.config.height
        return 0.0

    def start(self) -> None:
        """Start an acquisition. Its counters start afresh: a preview before the
        recording is a separate acquisition (acq_nframe restarts at 1)."""
        self._call("starting acquisition", self._cam.start_acquisition)
        self.acquiring = True
        self._last_nframe = 0
        self.frames = self.dropped = 0
        self._last_raw_ts, self._wraps = -1, 0
        self.faults.clear()

    def read_into(self, buf: np.ndarray) -> FrameInfo | None:
        """Grab the next frame into ``buf`` (``width*height`` bytes, C-contiguous).

        Returns None when no frame arrived within ``timeout_ms``.
        """
        img = self._img
        img.bp = buf.ctypes.data
        img.bp_size = buf.nbytes
        try:
            self._cam.get_image(img, self.config.timeout_ms)
        except self._xiapi.Xi_error as exc:
            if exc.status == XI_TIMEOUT:
                return None
            raise self._error(exc, "grabbing a frame") from None
        host = self.clock()
        raw_ts = img.tsSec * 1_000_000 + img.tsUSec
        clock_reset = False
        if raw_ts < self._last_raw_ts:
            if self._last_raw_ts > TS_WRAP_US - WRAP_WINDOW_US:
                self._wraps += 1  # the 32-bit counter wrapped
            else:
                # The counter was zeroed (timestamp reset on a trigger edge): a new
                # time base starts here; alignment splits its segments at this frame.
                self._wraps = 0
                clock_reset = True
                self.faults.append(
                    DeviceFault(
                        host,
                        FaultKind.CLOCK_RESET,
                        1,
                        f"camera timestamp reset from "
                        f"{self._last_raw_ts} us to {raw_ts} us at acq_nframe {img.acq_nframe}",
                    )
                )
        self._last_raw_ts = raw_ts
        nframe = int(img.acq_nframe)
        gap = nframe - self._last_nframe - 1
        if gap > 0:
            self.dropped += gap
            self.faults.append(
                DeviceFault(
                    host,
                    FaultKind.DROPPED,
                    gap,
                    f"acq_nframe jumped from {self._last_nframe} to {nframe}",
                )
            )
        self._last_nframe = nframe
        self.frames += 1
        return FrameInfo(
            nframe,
            int(img.nframe),
            raw_ts + self._wraps * TS_WRAP_US,
            int(img.GPI_level),
            int(img.exposure_time_us),
            float(img.gain_db),
            host,
            clock_reset,
        )

    def skipped_counters(self) -> tuple[int, int]:
        """(API skipped, transport skipped) frame counters since acquisition start."""
        cam = self._cam
        self._call("selecting counter", cam.set_counter_selector, "XI_CNT_SEL_API_SKIPPED_FRAMES")
        api = int(self._call("reading counter", cam.get_counter_value))
        self._call(
            "selecting counter", cam.set_counter_selector, "XI_CNT_SEL_TRANSPORT_SKIPPED_FRAMES"
        )
        transport = int(self._call("reading counter", cam.get_counter_value))
        return api, transport

    def stop(self) -> None:
        if self.acquiring and self._cam is not None:
            self.acquiring = False
            try:
                self._cam.stop_acquisition()
            except self._xiapi.Xi_error as exc:
                logger.warning("camera stop: %s", self._error(exc, "stopping acquisition"))

    def close(self) -> None:
        if self._cam is None:
            return
        self.stop()
        try:
            self._cam.close_device()
        except self._xiapi.Xi_error as exc:
            logger.warning("camera close: %s", self._error(exc, "closing"))
        self._cam = None

    def __enter__(self) -> XimeaCamera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
