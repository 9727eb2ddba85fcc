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
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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
    resume: bool = False  # a restarted writer: go on after the last journalled frame


#: U_ERROR for a failure that is not an OSError (a bug, a broken ring): never an errno
ERROR_UNEXPECTED = 10_000


def writer_main(spec: WriterSpec) -> int:
    """Entry point of the writer process. Returns its exit code (0: drained and closed)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # the recorder stops it, after draining the ring
    ring = FrameRing.attach(spec.ring_name)
    preview = PreviewBuffer.attach(spec.preview_name) if spec.preview_name else None
    geo = FrameGeometry(**spec.geometry)
    try:
        writer = FrameWriter(Path(spec.folder), geo, direct=spec.direct, resume=spec.resume)
    except OSError as exc:
        ring.user[U_ERROR] = exc.errno or ERROR_UNEXPECTED
        ring.user[U_READY] = 1
        logger.error("cannot write frames to %s: %s", spec.folder, exc)
        return 1
    ring.user[U_DIRECT] = int(writer.direct)
    if spec.resume:  # the truth is what the journal holds, whatever the dead writer counted
        ring.user[U_FRAMES] = writer.count
        ring.user[U_ERROR] = 0
        ring.user[U_DONE] = 0
    if preview is not None:  # compile the preview kernel now, not on the first frame
        preview.publish(
            np.zeros((4 * spec.preview_factor, 4 * spec.preview_factor), np.uint8),
            spec.preview_factor,
            geo.bayer_pattern,
            0,
            scratch=True,
            white_balance=geo.white_balance,
        )
    ring.user[U_READY] = 1
    code = 0
    try:
        _loop(ring, writer, preview, spec, geo)
    except OSError as exc:  # ENOSPC, EIO, ...: stop cleanly, the recorder decides what next
        ring.user[U_ERROR] = exc.errno or ERROR_UNEXPECTED
        logger.error("frame writer stopped: %s (frame %d)", exc, writer.count)
        code = 1
    except Exception:  # any failure must reach the recorder at once
        ring.user[U_ERROR] = ERROR_UNEXPECTED
        logger.exception("frame writer failed unexpectedly (frame %d)", writer.count)
        code = 1
    finally:
        try:
            writer.close()
        finally:
            ring.user[U_DONE] = 1
            ring.close()
            if preview is not None:
                preview.close()
    return code


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
            if int(ring.meta[first]["acq_nframe"]) <= writer.last_acq_nframe:
                ring.release(WRITER, 1)  # written by the writer before this one died
                continue
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
                    raw,
                    spec.preview_factor,
                    geo.bayer_pattern,
                    int(record["acq_nframe"]),
                    white_balance=geo.white_balance,
                )
                ring.user[U_PREVIEWS] += 1
            next_preview = now + period


class FrameWriterProcess:
    """Starts and supervises the writer process for one recording (control thread).

    A supervisor thread (``rec-frame-writer``) checks the writer ten times a second.
    A writer that died without an error of its own (killed) or that stopped
    making progress for ``stall_s`` while frames wait (stopped, hung) is replaced
    by a new one that goes on after the last journalled frame, up to
    ``max_restarts`` times; the ring holds the frames meanwhile. A writer that
    reported an error (a full disk, an I/O error) is not restarted: ``failed``
    says so and ``error_text`` why. The writer's log lines go to ``on_log``.
    """

    def __init__(
        self,
        folder: Path,
        geometry: FrameGeometry,
        ring: FrameRing,
        preview: PreviewBuffer | None = None,
        preview_factor: int = 2,
        direct: bool = True,
        start_timeout_s: float = 30.0,
        on_log: Callable[[str], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
        stall_s: float = 1.5,
        max_restarts: int = 5,
    ) -> None:
        self.ring = ring
        self.folder = folder
        self.on_log = on_log
        self.on_restart = on_restart
        self.stall_s = stall_s
        self.max_restarts = max_restarts
        self.restarts = 0
        self.start_timeout_s = start_timeout_s
        self._spec = WriterSpec(
            ring_name=ring.name,
            folder=str(folder),
            geometry={
                "width": geometry.width,
                "height": geometry.height,
                "pixel_format": geometry.pixel_format,
                "bayer_pattern": geometry.bayer_pattern,
                "frames_per_chunk": geometry.frames_per_chunk,
                "white_balance": tuple(geometry.white_balance),
            },
            parent_pid=os.getpid(),
            direct=direct,
            preview_name=preview.name if preview else "",
            preview_factor=preview_factor,
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log_threads: list[threading.Thread] = []
        self.process = self._launch(self._spec)
        self.direct = bool(ring.user[U_DIRECT])
        self._watch = threading.Thread(target=self._supervise, name="rec-frame-writer", daemon=True)
        self._watch.start()

    def _launch(self, spec: WriterSpec) -> subprocess.Popen[bytes]:
        self.ring.user[U_READY] = 0
        # A fresh interpreter, not a fork (the recorder runs threads and liblsl) and not
        # multiprocessing's spawn (which re-imports the caller's main script); its own
        # session, so a Ctrl-C in the terminal reaches only the recorder, which drains it.
        process = subprocess.Popen(
            [sys.executable, "-m", "mmmelab.storage.writer", json.dumps(dataclasses.asdict(spec))],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stderr is not None
        reader = threading.Thread(
            target=self._forward, args=(process.stderr,), name="rec-frame-writer-log", daemon=True
        )
        reader.start()
        self._log_threads.append(reader)
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ring.user[U_READY]:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait(2.0)
                raise LabError(
                    f"the frame writer process did not start (exit code {process.returncode})"
                )
            time.sleep(0.005)
        if self.ring.user[U_ERROR]:
            process.wait(2.0)
            raise LabError(f"the frame writer cannot write to {self.folder} ({self.error_text})")
        return process

    def _forward(self, stream: Any) -> None:
        """The writer's stderr, line by line, to the log and to ``on_log``."""
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            logger.warning("%s", line)
            if self.on_log is not None and line.startswith(("ERROR", "WARNING", "CRITICAL")):
                self.on_log(line)
        stream.close()

    def _supervise(self) -> None:
        last = (int(self.ring.user[U_FRAMES]), time.monotonic())
        while not self._stopping.wait(0.1):
            with self._lock:
                if self._stopping.is_set():
                    return
                frames = int(self.ring.user[U_FRAMES])
                now = time.monotonic()
                if frames != last[0] or self.ring.pending(WRITER) == 0:
                    last = (frames, now)
                dead = self.process.poll() is not None
                if self.ring.user[U_ERROR] or self.restarts >= self.max_restarts:
                    continue  # the writer's own error: not something a restart fixes
                if dead and not self.ring.user[U_DONE] or dead and self.ring.pending(WRITER):
                    why = f"the frame writer process died (exit code {self.process.returncode})"
                elif not dead and now - last[1] > self.stall_s:
                    why = f"the frame writer made no progress for {now - last[1]:.1f} s"
                else:
                    continue
                self._restart(why)
                last = (int(self.ring.user[U_FRAMES]), time.monotonic())

    def _restart(self, why: str) -> None:
        if self.process.poll() is None:
            self.process.kill()  # also ends a stopped (SIGSTOP) writer
        self.process.wait(5.0)
        self.restarts += 1
        logger.error("%s; starting a new one (restart %d)", why, self.restarts)
        try:
            self.process = self._launch(dataclasses.replace(self._spec, resume=True))
        except LabError as exc:
            logger.error("restarting the frame writer failed: %s", exc)
            self.ring.user[U_ERROR] = ERROR_UNEXPECTED
            return
        if self.on_restart is not None:
            self.on_restart(f"{why}; a new writer took over after the last saved frame")

    @property
    def error_text(self) -> str:
        code = int(self.ring.user[U_ERROR])
        if not code:
            return ""
        if code == errno.ENOSPC:
            return "disk full"
        if code == ERROR_UNEXPECTED:
            return "unexpected error (see the log)"
        return os.strerror(code)

    @property
    def disk_full(self) -> bool:
        return int(self.ring.user[U_ERROR]) == errno.ENOSPC

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
            "restarts": self.restarts,
        }

    @property
    def failed(self) -> bool:
        """The writer reported an error or is gone for good: frames are no longer saved."""
        if self.ring.user[U_ERROR]:
            return True
        gone = self.process.poll() is not None and not self.ring.user[U_DONE]
        return gone and self.restarts >= self.max_restarts

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Close the stream, let the writer drain and exit. True when it finished cleanly.

        The ring holds at most a few seconds of frames and the writer drains them at
        disk speed; one that is not done within ``timeout_s`` is killed, and what it
        had journalled stays readable.
        """
        with self._lock:
            self._stopping.set()
        self._watch.join(2.0)
        self.ring.close_stream()
        clean = True
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.error("frame writer still busy after %.1f s; stopping it", timeout_s)
            self.process.kill()
            self.process.wait(2.0)
            clean = False
        for reader in self._log_threads:
            reader.join(1.0)
        return clean and self.process.returncode == 0 and not self.ring.user[U_ERROR]


def main(argv: list[str]) -> int:
    """``python -m mmmelab.storage.writer SPEC_JSON`` (started by FrameWriterProcess)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s frame-writer: %(message)s")
    return writer_main(WriterSpec(**json.loads(argv[0])))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
