"""The camera disk writer: its own process, fed by the shared-memory frame ring.

GUI or engine work can never stall it: it shares no interpreter with them. It
takes every frame from the ring in order, appends it with direct I/O straight
from the shared slot (no copy), writes its journal record, syncs the journal
once a second, and renders a preview frame about 30 times a second. Its
telemetry (frames, bytes, busy time, errors) lives in the ring's user words, so
the engine reads it without any message passing.

When the recorder process dies (even by SIGKILL) the writer notices that its
parent is gone, writes everything still in the ring and exits: a killed
recorder loses at most the frames the camera had not yet delivered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.frames import FrameGeometry, FrameWriter
from mmmelab.storage.preview import PreviewBuffer
from mmmelab.storage.ringbuffer import FrameRing

logger = logging.getLogger(__name__)

# ring user words written by the writer process
U_FRAMES, U_BYTES, U_BUSY_NS, U_ERROR, U_READY, U_DIRECT, U_DONE, U_PREVIEWS = range(8)
WRITER = 0  # the writer is consumer 0 of the ring (lossless)
PREVIEW = 1  # the preview is consumer 1 (latest only)


@dataclass(frozen=True)
class WriterSpec:
    ring_name: str
    folder: str
    geometry: dict[str, Any]
    parent_pid: int
    direct: bool = True
    preview_name: str = ""
    preview_factor: int = 2
    preview_fps: float = 30.0
    batch: int = 8


def writer_main(spec: WriterSpec) -> None:
    """Entry point of the writer process."""
    ring = FrameRing.attach(spec.ring_name)
    preview = PreviewBuffer.attach(spec.preview_name) if spec.preview_name else None
    geo = FrameGeometry(**spec.geometry)
    try:
        writer = FrameWriter(Path(spec.folder), geo, direct=spec.direct)
    except OSError as exc:
        ring.user[U_ERROR] = exc.errno or 1
        ring.user[U_READY] = 1
        raise
    ring.user[U_DIRECT] = int(writer.direct)
    if preview is not None:  # compile the preview kernel now, not on the first frame
        preview.publish(
            np.zeros((4 * spec.preview_factor, 4 * spec.preview_factor), np.uint8),
            spec.preview_factor,
            geo.bayer_pattern,
            0,
            scratch=True,
        )
    ring.user[U_READY] = 1
    try:
        _loop(ring, writer, preview, spec, geo)
    except OSError as exc:
        ring.user[U_ERROR] = exc.errno or 1
        logger.exception("frame writer failed")
        raise
    finally:
        writer.close()
        ring.user[U_DONE] = 1
        ring.close()
        if preview is not None:
            preview.close()


def _loop(
    ring: FrameRing,
    writer: FrameWriter,
    preview: PreviewBuffer | None,
    spec: WriterSpec,
    geo: FrameGeometry,
) -> None:
    stride = geo.stride
    frame_bytes = geo.width * geo.height
    next_preview = 0.0
    next_sync = time.monotonic() + 1.0
    period = 1.0 / spec.preview_fps
    while True:
        n = ring.pending(WRITER)
        if n == 0:
            if ring.closed or os.getppid() != spec.parent_pid:
                if ring.pending(WRITER) == 0:
                    break
                continue
            time.sleep(0.0005)
        else:
            t0 = time.perf_counter_ns()
            first = ring.read_slot(WRITER)
            take = min(n, spec.batch, ring.n_slots - first)  # a run of contiguous slots
            writer.append_run(ring.slots[first : first + take], ring.meta[first : first + take])
            ring.release(WRITER, take)
            ring.user[U_FRAMES] += take
            ring.user[U_BYTES] += take * stride
            ring.user[U_BUSY_NS] += time.perf_counter_ns() - t0
        now = time.monotonic()
        if now >= next_sync:
            writer.sync_journal()
            next_sync = now + 1.0
        if preview is not None and now >= next_preview:
            latest = ring.latest()
            if latest is not None:
                seq, view, record = latest
                raw = view[:frame_bytes].reshape(geo.height, geo.width)
                preview.publish(
                    raw, spec.preview_factor, geo.bayer_pattern, int(record["acq_nframe"])
                )
                ring.user[U_PREVIEWS] += 1
            next_preview = now + period


class FrameWriterProcess:
    """Starts and supervises the writer process for one recording (control thread)."""

    def __init__(
        self,
        folder: Path,
        geometry: FrameGeometry,
        ring: FrameRing,
        preview: PreviewBuffer | None = None,
        preview_factor: int = 2,
        direct: bool = True,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.ring = ring
        spec = WriterSpec(
            ring_name=ring.name,
            folder=str(folder),
            geometry={
                "width": geometry.width,
                "height": geometry.height,
                "pixel_format": geometry.pixel_format,
                "bayer_pattern": geometry.bayer_pattern,
                "frames_per_chunk": geometry.frames_per_chunk,
            },
            parent_pid=os.getpid(),
            direct=direct,
            preview_name=preview.name if preview else "",
            preview_factor=preview_factor,
        )
        # A fresh interpreter, not a fork (the recorder runs threads and liblsl) and
        # not multiprocessing's spawn (which re-imports the caller's main script).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmmelab.storage.writer", json.dumps(dataclasses.asdict(spec))],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + start_timeout_s
        while not ring.user[U_READY]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait(2.0)
                raise LabError(
                    f"the frame writer process did not start (exit code {self.process.returncode})"
                )
            time.sleep(0.01)
        if ring.user[U_ERROR]:
            self.process.wait(2.0)
            raise LabError(
                f"the frame writer cannot write to {folder} "
                f"({os.strerror(int(ring.user[U_ERROR]))})"
            )
        self.direct = bool(ring.user[U_DIRECT])

    def stats(self) -> dict[str, Any]:
        u = self.ring.user
        return {
            "frames": int(u[U_FRAMES]),
            "bytes": int(u[U_BYTES]),
            "busy_s": int(u[U_BUSY_NS]) / 1e9,
            "error": int(u[U_ERROR]),
            "previews": int(u[U_PREVIEWS]),
            "alive": self.process.poll() is None,
            "direct_io": self.direct,
        }

    @property
    def failed(self) -> bool:
        return bool(self.ring.user[U_ERROR]) or (
            self.process.poll() is not None and not self.ring.user[U_DONE]
        )

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Close the stream, let the writer drain and exit. True when it finished cleanly."""
        self.ring.close_stream()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.error("frame writer still busy after %.1f s; stopping it", timeout_s)
            self.process.kill()
            self.process.wait(2.0)
            return False
        return self.process.returncode == 0


def main(argv: list[str]) -> int:
    """``python -m mmmelab.storage.writer SPEC_JSON`` (started by FrameWriterProcess)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s frame-writer: %(message)s")
    writer_main(WriterSpec(**json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
