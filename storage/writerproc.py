"""Starting and supervising the frame writer processes of one recording.

One writer per volume (:mod:`~mmmelab.storage.writer`); this side runs in the
recording process, on the control thread and a supervisor thread.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.preview import PreviewBuffer
from mmmelab.storage.ringbuffer import FrameRing
from mmmelab.storage.stripe import (
    G_PREVIEWS,
    W_ACK,
    W_BUSY_NS,
    W_BYTES,
    W_DIRECT,
    W_DONE,
    W_ERROR,
    W_FRAMES,
    W_READY,
    Stripe,
    Words,
)  # fmt: skip
from mmmelab.storage.writer import ERROR_UNEXPECTED, WriterSpec

logger = logging.getLogger(__name__)


def error_text(code: int) -> str:
    """What a writer's error word means."""
    if not code:
        return ""
    if code == errno.ENOSPC:
        return "disk full"
    if code == errno.ENODEV:
        return "the volume is gone (removed or unmounted)"
    if code == ERROR_UNEXPECTED:
        return "unexpected error (see the log)"
    return os.strerror(code)


class _Volume:
    """One volume's writer process, as the supervisor sees it."""

    def __init__(self, k: int, folder: Path, spec: WriterSpec, ring: FrameRing) -> None:
        self.k = k
        self.folder = folder
        self.spec = spec
        self.words = Words(ring.user, k)
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.dropped = False  # out of the stripe (its error, or gone for good)
        self.stuck = False  # its process would not end (a disk hanging in the kernel)
        self.progress = (0, time.monotonic())


class FrameWriterProcess:
    """Starts and supervises the writer processes of one recording (control thread).

    ``folder`` is the session's camera folder (the first volume); ``volumes`` the
    chunk folders of the others, if the frames are striped. A supervisor thread
    (``rec-frame-writer``) checks every writer ten times a second. A writer that
    died without an error of its own (killed) or that stopped making progress for
    ``stall_s`` while frames wait (stopped, hung) is replaced by a new one that
    goes on after its last journalled frame, up to ``max_restarts`` times; the ring
    holds the frames meanwhile. A writer that reported an error (a full disk, an I/O
    error, a volume that is gone) is not restarted: on a striped recording its
    volume leaves the stripe (``on_volume_lost`` says so) and the others take its
    frames; ``failed`` once no volume is left, ``error_text`` why. The writers' log
    lines go to ``on_log``.
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
        volumes: list[Path] | None = None,
        on_volume_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.ring = ring
        self.folder = folder
        self.on_log = on_log
        self.on_restart = on_restart
        self.on_volume_lost = on_volume_lost
        self.stall_s = stall_s
        self.max_restarts = max_restarts
        self.start_timeout_s = start_timeout_s
        folders = [folder, *(volumes or [])]
        if ring.n_consumers < len(folders):
            raise LabError(f"the frame ring has {ring.n_consumers} consumers, not one per volume")
        self.stripe = Stripe(ring.user, len(folders), geometry.frames_per_chunk)
        self.stripe.start()
        listed = [".", *(str(v) for v in volumes or [])]
        base = WriterSpec(
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
            volumes=listed,
            journal_folder=str(folder),
        )
        self.volumes = [
            _Volume(k, f, dataclasses.replace(base, folder=str(f), volume=k), ring)
            for k, f in enumerate(folders)
        ]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log_threads: list[threading.Thread] = []
        self._detach: list[int] = []  # dead volumes whose consumer still holds the ring
        self.lost_volumes: list[tuple[int, str]] = []  # (volume, why), in order
        try:
            for vol in self.volumes:
                vol.process = self._launch(vol, vol.spec)
        except BaseException:
            self._kill_all()
            raise
        self.direct = all(v.words[W_DIRECT] for v in self.volumes)
        self._watch = threading.Thread(target=self._supervise, name="rec-frame-writer", daemon=True)
        self._watch.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The first volume's writer process."""
        assert self.volumes[0].process is not None
        return self.volumes[0].process

    @property
    def restarts(self) -> int:
        return sum(v.restarts for v in self.volumes)

    def _launch(self, vol: _Volume, spec: WriterSpec) -> subprocess.Popen[bytes]:
        vol.words[W_READY] = 0
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
        while not vol.words[W_READY]:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait(2.0)
                raise LabError(
                    f"the frame writer process did not start (exit code {process.returncode})"
                )
            time.sleep(0.005)
        if vol.words[W_ERROR]:
            process.wait(2.0)
            raise LabError(
                f"the frame writer cannot write to {vol.folder} ({error_text(vol.words[W_ERROR])})"
            )
        vol.progress = (vol.words[W_FRAMES], time.monotonic())
        return process

    def _forward(self, stream: Any) -> None:
        """A writer's stderr, line by line, to the log and to ``on_log``."""
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            logger.warning("%s", line)
            if self.on_log is not None and line.startswith(("ERROR", "WARNING", "CRITICAL")):
                self.on_log(line)
        stream.close()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                if self._stopping.is_set():
                    return
                for vol in self.volumes:
                    if not vol.dropped:
                        self._watch_one(vol)
                self._detach_acknowledged()

    def _watch_one(self, vol: _Volume) -> None:
        assert vol.process is not None
        frames, now = vol.words[W_FRAMES], time.monotonic()
        if frames != vol.progress[0] or self.ring.pending(vol.k) == 0:
            vol.progress = (frames, now)
        dead = vol.process.poll() is not None
        if vol.words[W_ERROR]:
            if len(self.volumes) > 1 and (dead or vol.words[W_DONE] or vol.stuck):
                self._drop(vol, error_text(vol.words[W_ERROR]))
            return  # the writer's own error: not something a restart fixes
        if dead and not vol.words[W_DONE] or dead and self.ring.pending(vol.k):
            why = f"the frame writer process died (exit code {vol.process.returncode})"
        elif not dead and now - vol.progress[1] > self.stall_s:
            why = f"the frame writer made no progress for {now - vol.progress[1]:.1f} s"
        else:
            return
        if vol.restarts >= self.max_restarts:
            if len(self.volumes) > 1 and self._end(vol):
                self._drop(vol, f"{why}, after {vol.restarts} restarts")
            return
        self._restart(vol, why)

    def _end(self, vol: _Volume) -> bool:
        """Kill ``vol``'s writer (also a stopped one); False when it does not go within
        5 s (stuck in the kernel on a failing disk): it then counts as failed."""
        assert vol.process is not None
        if vol.process.poll() is None:
            vol.process.kill()
        try:
            vol.process.wait(5.0)
        except subprocess.TimeoutExpired:
            logger.error("frame writer %d does not end (stuck in I/O on %s)", vol.k, vol.folder)
            vol.words[W_ERROR] = errno.EIO
            vol.stuck = True
            return False
        return True

    def _drop(self, vol: _Volume, why: str) -> None:
        """A volume leaves the stripe: from the first frame its writer had not saved, the
        others take its frames; its consumer holds the ring until they all know."""
        vol.dropped = True
        from_seq = self.ring.read_seq(vol.k)
        self.stripe.drop(vol.k, from_seq)
        self._detach.append(vol.k)
        self.lost_volumes.append((vol.k, why))
        left = self.stripe.alive_volumes()
        where = ", ".join(str(self.volumes[k].folder) for k in left) or "no volume"
        msg = (
            f"volume {vol.k} ({vol.folder}) stopped at frame {from_seq}: {why}; its frames "
            f"from there on go to {where}"
        )
        logger.error("%s", msg)
        if self.on_volume_lost is not None:
            self.on_volume_lost(msg)

    def _detach_acknowledged(self) -> None:
        alive = [v for v in self.volumes if not v.dropped]
        deaths = self.stripe.deaths
        if self._detach and all(v.words[W_ACK] >= deaths for v in alive):
            for k in self._detach:
                self.ring.detach(k)
            self._detach.clear()

    def _restart(self, vol: _Volume, why: str) -> None:
        if not self._end(vol):
            return  # its error now: the next check drops it from the stripe (or fails)
        vol.restarts += 1
        logger.error("%s; starting a new one (restart %d)", why, vol.restarts)
        try:
            vol.process = self._launch(vol, dataclasses.replace(vol.spec, resume=True))
        except LabError as exc:
            logger.error("restarting the frame writer failed: %s", exc)
            vol.words[W_ERROR] = ERROR_UNEXPECTED
            return
        if self.on_restart is not None:
            where = f" of volume {vol.k}" if len(self.volumes) > 1 else ""
            self.on_restart(f"{why}; a new writer{where} took over after the last saved frame")

    @property
    def error_text(self) -> str:
        return "; ".join(
            f"volume {v.k}: {error_text(v.words[W_ERROR])}" if len(self.volumes) > 1
            else error_text(v.words[W_ERROR])
            for v in self.volumes if v.words[W_ERROR]
        )  # fmt: skip

    @property
    def disk_full(self) -> bool:
        """The writers stopped because their disks filled up."""
        return self.failed and any(v.words[W_ERROR] == errno.ENOSPC for v in self.volumes)

    def stats(self) -> dict[str, Any]:
        vols = [self._volume_stats(v) for v in self.volumes]
        return {
            "frames": sum(v["frames"] for v in vols),
            "bytes": sum(v["bytes"] for v in vols),
            "busy_s": max(v["busy_s"] for v in vols),
            "error": next((v["error"] for v in vols if v["error"]), 0),
            "previews": int(self.ring.user[G_PREVIEWS]),
            "alive": any(v["alive"] for v in vols),
            "direct_io": self.direct,
            "restarts": self.restarts,
            "volumes": vols,
        }

    def _volume_stats(self, vol: _Volume) -> dict[str, Any]:
        w = vol.words
        return {
            "volume": vol.k,
            "folder": str(vol.folder),
            "frames": w[W_FRAMES],
            "bytes": w[W_BYTES],
            "busy_s": w[W_BUSY_NS] / 1e9,
            "error": w[W_ERROR],
            "alive": vol.process is not None and vol.process.poll() is None,
            "in_stripe": not vol.dropped,
            "restarts": vol.restarts,
        }

    @property
    def failed(self) -> bool:
        """No writer saves frames any more (all reported an error or are gone for good)."""
        return all(self._failed(v) for v in self.volumes)

    def _failed(self, vol: _Volume) -> bool:
        if vol.dropped or vol.words[W_ERROR]:
            return True
        assert vol.process is not None
        gone = vol.process.poll() is not None and not vol.words[W_DONE]
        return gone and vol.restarts >= self.max_restarts

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Close the stream, let the writers drain and exit. True when all finished cleanly.

        The ring holds at most a few seconds of frames and the writers drain them at
        disk speed; one that is not done within ``timeout_s`` is killed, and what it
        had journalled stays readable.
        """
        with self._lock:
            self._stopping.set()
        self._watch.join(2.0)
        for k in self._detach:  # nobody else will write what a dead writer held
            self.ring.detach(k)
        self.ring.close_stream()
        clean = True
        deadline = time.monotonic() + timeout_s
        for vol in self.volumes:
            assert vol.process is not None
            try:
                vol.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error(
                    "frame writer %d still busy after %.1f s; stopping it", vol.k, timeout_s
                )
                clean = False
                if not self._end(vol):
                    continue  # stuck in the kernel: what it journalled stays readable
            clean = (
                clean
                and (vol.process.returncode == 0 or vol.dropped)
                and (not vol.words[W_ERROR] or vol.dropped)
            )
        for reader in self._log_threads:
            reader.join(1.0)
        return clean and not self.failed

    def _kill_all(self) -> None:
        for vol in self.volumes:
            if vol.process is not None and vol.process.poll() is None:
                vol.process.kill()
                vol.process.wait(2.0)
