"""``mmme bench soak``: a full-rate session (2040x1080 at 150 fps, every simulated
device) for M minutes, watching drops, memory and file descriptors.

At 330 MB/s an hour is 1.2 TB, more than most machines hold, so a cleaner thread
deletes each frame chunk once the writer has moved on to the next one - after
checking that it holds exactly its 900 frames. Everything else is the real path.
Growth is measured from the end of the first minute (warm-up: caches, compiled
kernels, the ring touched once) to the end.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.acquisition.engine import SessionEngine
from mmmelab.config import load_lab, shipped
from mmmelab.faultbench import LONG_PROTOCOL
from mmmelab.participant import ParticipantInfo
from mmmelab.protocol import load_protocol
from mmmelab.storage.frames import JOURNAL_DTYPE, chunk_name

WARMUP_S = 60.0


def _rss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _ChunkCleaner(threading.Thread):
    """Deletes closed frame chunks after checking their size (the soak only)."""

    def __init__(self, folder: Path, per_chunk: int, stride: int) -> None:
        super().__init__(name="rec-soak-cleaner", daemon=True)
        self.folder, self.per_chunk, self.stride = folder, per_chunk, stride
        self.deleted = 0
        self.bad: list[str] = []
        self._halt = threading.Event()
        self._next = 0

    def run(self) -> None:
        while not self._halt.wait(0.5):
            self.sweep(final=False)

    def sweep(self, final: bool) -> None:
        while (self.folder / chunk_name(self._next + 1)).exists() or final:
            path = self.folder / chunk_name(self._next)
            if not path.exists():
                return
            size = path.stat().st_size
            if not final and size != self.per_chunk * self.stride:
                self.bad.append(f"{path.name}: {size} bytes")
            path.unlink()
            self.deleted += 1
            self._next += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(2.0)


def bench_soak(
    minutes: float, folder: Path | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mmme-soak-", dir=folder) as tmp:
        root = Path(tmp)
        lab = load_lab(shipped("labs", "simulated"))
        lab = dataclasses.replace(lab, data_root=root, stimuli_root=root / "stimuli")
        proto_path = root / "soak.toml"
        proto_path.write_text(LONG_PROTOCOL)
        protocol = load_protocol(proto_path)
        engine = SessionEngine(lab, protocol, ParticipantInfo("P01"), root / "sessions", seed=5)
        cleaner = None
        try:
            engine.connect()
            session = engine.start(simulate_participant=False)
            pipeline = engine.recording.pipeline
            assert pipeline is not None and pipeline.writer is not None
            cleaner = _ChunkCleaner(
                session / "camera", pipeline.geometry.frames_per_chunk, pipeline.geometry.stride
            )
            cleaner.start()

            def pids() -> list[int]:
                assert pipeline.writer is not None
                out = [os.getpid(), pipeline.writer.process.pid]
                if engine.record.writer is not None and engine.record.writer.signals is not None:
                    out.append(engine.record.writer.signals._proc.pid)
                return out

            t_start = time.monotonic()
            end = t_start + minutes * 60.0
            base: tuple[float, int] | None = None
            next_note = t_start + 30.0
            peak = 0.0
            while time.monotonic() < end and engine.health.fatal is None:
                engine.step()
                now = time.monotonic()
                if base is None and now - t_start >= min(WARMUP_S, minutes * 30.0):
                    base = (_rss_mb(pids()), _fds())
                if now >= next_note:
                    tel = pipeline.telemetry()
                    rss = _rss_mb(pids())
                    peak = max(peak, rss)
                    progress(
                        f"{(now - t_start) / 60:5.1f} min: {tel.fps:.0f} fps, dropped "
                        f"{tel.dropped}, ring {tel.ring_fill:.0%}, rss {rss:.0f} MB"
                    )
                    next_note = now + 30.0
            rss_end, fds_end = _rss_mb(pids()), _fds()
            t0 = time.monotonic()
            engine.stop()
            stop_s = time.monotonic() - t0
            cleaner.stop()
            cleaner.sweep(final=True)
            tel = pipeline.telemetry()
            journal = (session / "camera" / "journal.bin").stat().st_size
            journalled = journal // JOURNAL_DTYPE.itemsize
            assert base is not None
            return {
                "benchmark": "soak",
                "minutes": minutes,
                "camera": f"{lab.camera.width}x{lab.camera.height} at {lab.camera.fps:g} fps",
                "frames": tel.frames,
                "journalled": int(journalled),
                "dropped": tel.dropped + max(0, tel.frames - journalled),
                "ring_high_water": round(tel.ring_high_water, 3),
                "rss_growth_mb": round(rss_end - base[0], 1),
                "rss_peak_mb": round(max(peak, rss_end), 1),
                "open_fds_growth": fds_end - base[1],
                "stop_s": round(stop_s, 3),
                "chunks_checked_and_deleted": cleaner.deleted,
                "bad_chunks": cleaner.bad,
                "problems": engine.health.problems,
                "targets": {"dropped": 0, "rss_growth_mb": 50, "open_fds_growth": 0, "stop_s": 2},
            }
        finally:
            if cleaner is not None and cleaner.is_alive():
                cleaner.stop()
            engine.close()
