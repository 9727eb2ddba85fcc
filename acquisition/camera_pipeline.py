"""The camera path: grabber thread -> shared-memory ring -> writer process -> disk.

::

    XIMEA API queue --xiGetImage copies into--> ring slot (shared memory)
        ring --lossless--> writer process --direct I/O--> camera/frames-*.raw + journal
        ring --latest----> (writer process) numba debayer -> preview buffer -> GUI

The grabber (thread ``rec-camera`` in the recording process) owns the camera:
it claims a ring slot, lets the camera API copy the frame straight into it,
fills the journal record and publishes the slot. It never waits for the disk.
If the writer ever fell a whole ring behind, the frame is dropped, counted and
reported; a warning goes out well before that (ring half full).

Once a second the grabber computes the telemetry (fps, writer MB/s, ring fill
and high-water mark, drops, free disk and time until full), hands it to the
``telemetry_sink`` and raises warnings.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.acquisition.recorders import FaultSink, Recorder
from mmmelab.acquisition.telemetry import CameraTelemetry, VolumeTelemetry
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.storage.directio import aligned_buffer
from mmmelab.storage.frames import FLAG_CLOCK_RESET, JOURNAL_DTYPE, FrameGeometry
from mmmelab.storage.preview import PreviewBuffer, preview_shape
from mmmelab.storage.ringbuffer import FrameRing
from mmmelab.storage.writerproc import FrameWriterProcess
from mmmelab.streams import FaultKind
from mmmelab.sync.live import LiveSync

logger = logging.getLogger(__name__)

TELEMETRY_DTYPE = np.dtype(
    [
        ("host_time", "<f8"),
        ("fps", "<f4"),
        ("writer_mb_s", "<f4"),
        ("ring_fill", "<f4"),
        ("ring_high_water", "<f4"),
        ("frames", "<i8"),
        ("written", "<i8"),
        ("dropped", "<i8"),
        ("free_disk_bytes", "<i8"),
        ("time_to_full_s", "<f8"),
    ]
)
RING_WARN_FRAC = 0.5
RING_MAX_BYTES = 1 << 30  # at most 1 GiB of shared memory for the frame ring
DISK_WARN_S = 60.0  # warn when the disk would fill less than this after the planned end


class CameraGrabber(Recorder):
    """The grabber thread: camera -> ring slots, plus the once-a-second telemetry."""

    def __init__(
        self, pipeline: CameraPipeline, fault_sink: FaultSink, clock: Callable[[], float]
    ) -> None:
        super().__init__("camera", fault_sink, clock)
        self.p = pipeline

    def _loop(self) -> None:
        p, cam, ring = self.p, self.p.camera, self.p.ring
        frame_bytes = p.geometry.width * p.geometry.height
        scratch = aligned_buffer(p.geometry.stride)[:frame_bytes]
        record = np.zeros(1, JOURNAL_DTYPE)
        cam.start()
        next_tick = self.clock() + 1.0
        try:
            while not self._stop.is_set():
                slot = ring.claim()
                buf = ring.slots[slot][:frame_bytes] if slot is not None else scratch
                info = cam.read_into(buf)
                now = self.clock()
                if now >= next_tick:
                    p.tick(now, self)
                    next_tick = now + 1.0
                if info is None:
                    continue
                if slot is None:
                    ring.lost()
                    continue
                record["acq_nframe"] = info.acq_nframe
                record["nframe"] = info.nframe
                record["gpi_level"] = info.gpi_level
                record["ts_us"] = info.ts_us
                record["exposure_us"] = info.exposure_us
                record["host_time"] = info.host_time
                record["api_skipped"] = p.tel.api_skipped
                record["transport_skipped"] = p.tel.transport_skipped
                record["gain_db"] = info.gain_db
                record["flags"] = FLAG_CLOCK_RESET if info.clock_reset else 0
                ring.commit(slot, record)
                if ring.half_full_events != p.half_full_seen:
                    p.ring_half_full(now, self)  # the moment it happens, not at the next tick
                p.watch_sync(info)
                self.first_data.set()
                self._drain_faults(cam.faults)
        finally:
            cam.stop()
            self._drain_faults(cam.faults)


class CameraPipeline:
    """Ring, preview buffer, writer process and grabber for one recording.

    Created and stopped on the control thread; ``telemetry()`` and
    ``latest_preview()`` may be called from any thread.
    """

    def __init__(
        self,
        camera: XimeaCamera,
        folder: Path,
        geometry: FrameGeometry,
        clock: Callable[[], float],
        fault_sink: FaultSink,
        telemetry_sink: Callable[[np.ndarray], None] | None = None,
        ring_seconds: float = 3.0,
        live: LiveSync | None = None,
        planned_end: float | None = None,
        preview_factor: int = 2,
        direct: bool = True,
        volumes: list[Path] | None = None,
    ) -> None:
        self.camera = camera
        self.folder = folder
        self.geometry = geometry
        self.clock = clock
        self.fps = camera.config.fps
        self.telemetry_sink = telemetry_sink
        self.planned_end = planned_end  # master time the session should end, if known
        self.live = live
        self.readout_s = camera.readout_us() / 1e6
        self._lags: deque[float] = deque(maxlen=max(16, int(5 * self.fps)))
        self._last_exposure = float("-inf")
        slot_bytes = geometry.stride
        n_slots = max(16, min(int(round(self.fps * ring_seconds)), RING_MAX_BYTES // slot_bytes))
        self.volume_folders = [folder, *(volumes or [])]
        writers = (True,) * len(self.volume_folders)
        self.ring = FrameRing.create(
            n_slots, geometry.width * geometry.height, consumers=(*writers, False)
        )
        self.preview: PreviewBuffer | None = None
        self.writer: FrameWriterProcess | None = None
        try:
            self.preview = PreviewBuffer.create(
                *preview_shape(geometry.height, geometry.width, preview_factor)
            )
            self.writer = FrameWriterProcess(
                folder,
                geometry,
                self.ring,
                self.preview,
                preview_factor,
                direct=direct,
                on_log=lambda line: fault_sink(clock(), "camera", FaultKind.WRITER_LOG, 0, line),
                on_restart=lambda why: fault_sink(
                    clock(), "camera", FaultKind.WRITER_RESTART, 1, why
                ),
                volumes=volumes,
                on_volume_lost=lambda why: fault_sink(
                    clock(), "camera", FaultKind.VOLUME_LOST, 1, why
                ),
            )
        except BaseException:
            self._release()
            raise
        self.half_full_seen = 0
        self._final: tuple[bool, bool, str] | None = None
        self.grabber = CameraGrabber(self, fault_sink, clock)
        self.tel = CameraTelemetry()
        self.last_gpi = 0
        self._last: tuple[float, int, int] | None = None
        self._warned_ring = False
        self._warned_disk = False
        self._writer_failed = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._last = (self.clock(), 0, 0)
        self.grabber.start()

    def stop(self) -> bool:
        """Stop grabbing, let the writer drain and exit, free the shared memory.

        Returns True when the writer finished cleanly.
        """
        self.grabber.stop()
        clean = self.writer.stop() if self.writer is not None else False
        self._final = self.writer_status()
        self._final_stats()
        self._release()
        return clean

    def writer_status(self) -> tuple[bool, bool, str]:
        """(failed, disk full, why) of the frame writer; after ``stop``, as it ended."""
        if self._final is not None:
            return self._final
        w = self.writer
        if w is None:
            return (True, False, "no writer")
        return (w.failed, w.disk_full, w.error_text)

    def _final_stats(self) -> None:
        written = self.writer.stats()["frames"] if self.writer is not None else self.tel.written
        self.tel = dataclasses.replace(
            self.tel,
            written=written,
            frames=self.camera.frames,
            ring_overflow=self.ring.overflow,
            ring_high_water=self._ring_high_water(),
            dropped=self.camera.dropped + self.ring.overflow,
        )

    def _release(self) -> None:
        if self.preview is not None:
            self.preview.close()
            self.preview = None
        if self.ring is not None:
            self.ring.close()

    # ------------------------------------------------------------ telemetry

    def tick(self, now: float, grabber: CameraGrabber) -> None:
        """Once a second on the grabber thread: counters, telemetry, warnings. The
        figures are made anew and published in one assignment (``self.tel``)."""
        assert self.writer is not None and self._last is not None
        api_skipped, transport_skipped = self.camera.skipped_counters()
        stats = self.writer.stats()
        t0, frames0, bytes0 = self._last
        dt = max(now - t0, 1e-6)
        frames = self.camera.frames
        self._last = (now, frames, stats["bytes"])
        need = self.geometry.stride * self.fps
        volumes = self._volume_telemetry(stats["volumes"], dt, need)
        in_stripe = [v for v in volumes if v.in_stripe] or list(volumes[:1])
        free = sum(v.free_bytes for v in in_stripe)
        tel = CameraTelemetry(
            fps=(frames - frames0) / dt,
            writer_mb_s=(stats["bytes"] - bytes0) / dt / 1e6,
            ring_fill=self._ring_fill(),
            ring_high_water=self._ring_high_water(),
            frames=frames,
            written=stats["frames"],
            dropped=self.camera.dropped + self.ring.overflow,
            ring_overflow=self.ring.overflow,
            api_skipped=api_skipped,
            transport_skipped=transport_skipped,
            free_disk_bytes=free,
            time_to_full_s=free / need if need else float("inf"),
            volumes=volumes,
        )
        self.tel = dataclasses.replace(tel, warning=self._warn(now, grabber, tel))
        if self.telemetry_sink is not None:
            row = np.array(
                [
                    (
                        now,
                        tel.fps,
                        tel.writer_mb_s,
                        tel.ring_fill,
                        tel.ring_high_water,
                        tel.frames,
                        tel.written,
                        tel.dropped,
                        tel.free_disk_bytes,
                        tel.time_to_full_s,
                    )
                ],
                dtype=TELEMETRY_DTYPE,
            )
            self.telemetry_sink(row)

    def _writers(self) -> list[int]:
        """The ring consumers of the writers still in the stripe (all, when none is)."""
        n = len(self.volume_folders)
        return [c for c in range(n) if self.ring.lossless(c)] or list(range(n))

    def _ring_fill(self) -> float:
        return max(self.ring.fill_frac(c) for c in self._writers())

    def _ring_high_water(self) -> float:
        return max(self.ring.high_water_frac(c) for c in range(len(self.volume_folders)))

    def _volume_telemetry(
        self, stats: list[dict[str, Any]], dt: float, need: float
    ) -> tuple[VolumeTelemetry, ...]:
        """Per volume: MB/s written, free space and how long its share of the frames takes
        to fill it (a striped recording shares the frames among the volumes in the stripe)."""
        share = need / max(1, sum(1 for v in stats if v["in_stripe"]))
        last = {v.volume: v.bytes for v in self.tel.volumes}
        rows = []
        for v in stats:
            try:
                free = shutil.disk_usage(v["folder"]).free
            except OSError:  # the volume is gone
                free = 0
            rows.append(
                VolumeTelemetry(
                    volume=v["volume"],
                    folder=v["folder"],
                    bytes=v["bytes"],
                    writer_mb_s=(v["bytes"] - last[v["volume"]]) / dt / 1e6
                    if v["volume"] in last
                    else None,  # the first second: no rate yet
                    free_bytes=free,
                    time_to_full_s=free / share if v["in_stripe"] and share else None,
                    in_stripe=v["in_stripe"],
                    error=v["error"],
                )
            )
        return tuple(rows)

    def _warn(self, now: float, grabber: CameraGrabber, tel: CameraTelemetry) -> str:
        """The warnings these figures call for, as one line; each new problem is
        also recorded as a fault once."""
        warnings = []
        if tel.ring_fill >= RING_WARN_FRAC:
            warnings.append(
                f"frame ring {tel.ring_fill:.0%} full: the disk writer is falling "
                f"behind ({tel.writer_mb_s:.0f} MB/s); frames will be lost when "
                f"it is full"
            )
        remaining = (self.planned_end - now) if self.planned_end is not None else 0.0
        if tel.time_to_full_s < 1.1 * max(remaining, 0.0) + DISK_WARN_S:
            warnings.append(f"disk full in {tel.time_to_full_s / 60:.1f} min at this rate")
            if not self._warned_disk:
                grabber.fault(now, FaultKind.WARNING, 1, warnings[-1])
                logger.warning(warnings[-1])
            self._warned_disk = True
        if self.writer is not None and self.writer.failed and not self._writer_failed:
            self._writer_failed = True
            why = self.writer.error_text or "it is gone"
            msg = f"the frame writer stopped ({why}); frames are no longer saved"
            warnings.append(msg)
            grabber.fault(now, FaultKind.LOST, 1, msg)
            logger.error(msg)
        if self.writer is not None and self.writer.lost_volumes:
            k, why = self.writer.lost_volumes[-1]
            warnings.append(f"volume {k} left the stripe ({why})")
        return "; ".join(warnings)

    def ring_half_full(self, now: float, grabber: CameraGrabber) -> None:
        """The ring just crossed half full (grabber thread): warn before anything is lost."""
        self.half_full_seen = self.ring.half_full_events
        msg = (
            f"frame ring half full ({max(self.ring.pending(c) for c in self._writers())} of "
            f"{self.ring.n_slots} frames "
            f"waiting): the disk writer is falling behind; frames will be lost when it is full"
        )
        grabber.fault(now, FaultKind.WARNING, 1, msg)
        logger.warning(msg)

    def watch_sync(self, info: Any) -> None:
        """Report GPI changes to the live sync health (grabber thread).

        The rough master time of an edge is the frame's camera time plus the smallest
        host-minus-camera lag of the last 5 s: frames that arrived promptly, so a
        grab backlog does not mislead the matching.
        """
        exposure = info.ts_us / 1e6 - self.readout_s
        if self._lags and exposure < self._last_exposure:
            self._lags.clear()  # camera clock reset
        self._last_exposure = exposure
        self._lags.append(info.host_time - exposure)
        gpi = info.gpi_level & 1
        if gpi != self.last_gpi and self.live is not None:
            approx = exposure + min(self._lags)
            self.live.edges(
                "camera", np.array([exposure]), None, np.array([approx]), np.array([bool(gpi)])
            )
        self.last_gpi = gpi

    def telemetry(self) -> CameraTelemetry:
        """The newest figures (made once a second on the grabber thread; frozen)."""
        return self.tel

    def preview_seq(self) -> int:
        """Number of the newest preview frame (0 before the first)."""
        return self.preview.seq() if self.preview is not None else 0

    def latest_preview(self) -> tuple[int, int, np.ndarray] | None:
        """(seq, acq_nframe, RGB image) of the newest preview frame, or None."""
        return self.preview.latest() if self.preview is not None else None
