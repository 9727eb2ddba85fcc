"""The camera disk writer: its own process, fed by the shared-memory frame ring.

GUI or engine work can never stall it: it shares no interpreter with them. It
takes every frame from the ring in order, appends it with direct I/O straight
from the shared slot (no copy), writes its journal record, syncs the journal
once a second, and renders a preview frame about 30 times a second. Its
telemetry (frames, bytes, busy time, errors) lives in the ring's user words
(:mod:`~mmmelab.storage.stripe`), so the engine reads it without any message
passing.

A striped recording has one writer per volume, each a lossless consumer of the
same ring: writer ``k`` writes the frames the stripe gives volume ``k``, skips
the others, and takes over frames of a volume that died (see
:class:`~mmmelab.storage.stripe.Stripe`). It checks once a second that its
folder is still the one it opened (writes into a removed folder succeed and
vanish), and the lowest living writer renders the preview.

When the recorder process dies (even by SIGKILL) the writer notices that its
parent is gone, writes everything still in the ring and exits: a killed
recorder loses at most the frames the camera had not yet delivered.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.storage.frames import FrameGeometry, FrameWriter
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

logger = logging.getLogger(__name__)

WRITER = 0  # the (first) writer is consumer 0 of the ring (lossless)


@dataclass(frozen=True)
class WriterSpec:
    """What a frame-writer process needs: the ring, its folder, the frame geometry and its
    options."""

    ring_name: str
    folder: str  # where this writer's chunk files go
    geometry: dict[str, Any]
    parent_pid: int
    direct: bool = True
    preview_name: str = ""
    preview_factor: int = 2
    preview_fps: float = 30.0
    batch: int = 8
    resume: bool = False  # a restarted writer: go on after the last journalled frame
    volume: int = 0  # this writer's volume (and ring consumer)
    volumes: list[str] = field(default_factory=lambda: ["."])  # as camera.json lists them
    journal_folder: str = ""  # the session's camera folder (volume > 0)


#: W_ERROR for a failure that is not an OSError (a bug, a broken ring): never an errno
ERROR_UNEXPECTED = 10_000


def writer_main(spec: WriterSpec) -> int:
    """Entry point of the writer process. Returns its exit code (0: drained and closed)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # the recorder stops it, after draining the ring
    ring = FrameRing.attach(spec.ring_name)
    words = Words(ring.user, spec.volume)
    preview = PreviewBuffer.attach(spec.preview_name) if spec.preview_name else None
    geo = FrameGeometry(**spec.geometry)
    try:
        writer = FrameWriter(
            Path(spec.folder), geo, direct=spec.direct, resume=spec.resume, volume=spec.volume,
            journal_folder=Path(spec.journal_folder) if spec.journal_folder else None,
            volumes=spec.volumes,
        )  # fmt: skip
    except OSError as exc:
        words[W_ERROR] = exc.errno or ERROR_UNEXPECTED
        words[W_READY] = 1
        logger.error("cannot write frames to %s: %s", spec.folder, exc)
        return 1
    words[W_DIRECT] = int(writer.direct)
    if spec.resume:  # the truth is what the journal holds, whatever the dead writer counted
        words[W_FRAMES] = writer.count
        words[W_ERROR] = 0
        words[W_DONE] = 0
        words[W_ACK] = 0  # a new writer goes over every death again
    if preview is not None:  # compile the preview kernel now, not on the first frame
        preview.publish(
            np.zeros((4 * spec.preview_factor, 4 * spec.preview_factor), np.uint8),
            spec.preview_factor,
            geo.bayer_pattern,
            0,
            scratch=True,
            white_balance=geo.white_balance,
        )
    words[W_READY] = 1
    code = 0
    loop = _Loop(ring, writer, preview, spec, geo, words)
    try:
        loop.run()
    except OSError as exc:  # ENOSPC, EIO, ...: stop cleanly, the recorder decides what next
        words[W_ERROR] = exc.errno or ERROR_UNEXPECTED
        logger.error("frame writer stopped: %s (%s, frame %d)", exc, spec.folder, writer.count)
        code = 1
    except Exception:  # any failure must reach the recorder at once
        words[W_ERROR] = ERROR_UNEXPECTED
        logger.exception("frame writer failed unexpectedly (frame %d)", writer.count)
        code = 1
    finally:
        try:
            writer.close()
        except OSError as exc:
            logger.error("closing the frame files in %s: %s", spec.folder, exc)
        finally:
            words[W_DONE] = 1
            ring.close()
            if preview is not None:
                preview.close()
    return code


class _Loop:
    """The writer's loop: frames from the ring to its volume, its share of the stripe."""

    def __init__(
        self,
        ring: FrameRing,
        writer: FrameWriter,
        preview: PreviewBuffer | None,
        spec: WriterSpec,
        geo: FrameGeometry,
        words: Words,
    ) -> None:
        self.ring, self.writer, self.preview, self.spec, self.geo = ring, writer, preview, spec, geo
        self.words = words
        self.k = spec.volume
        self.striped = len(spec.volumes) > 1
        self.stripe = Stripe(ring.user, len(spec.volumes), geo.frames_per_chunk)
        self.folder = Path(spec.folder)
        st = os.stat(self.folder)
        self.identity = (st.st_dev, st.st_ino)

    def run(self) -> None:
        ring, spec, k = self.ring, self.spec, self.k
        next_preview = 0.0
        next_sync = time.monotonic() + 1.0
        period = 1.0 / spec.preview_fps
        while True:
            if self.striped and self.words[W_ACK] < self.stripe.deaths:
                self._take_over()
            n = ring.pending(k)
            if n == 0:
                if ring.closed or os.getppid() != spec.parent_pid:
                    if ring.pending(k) == 0:
                        break
                    continue
                time.sleep(0.0005)
            else:
                t0 = time.perf_counter_ns()
                self._step(n)
                self.words.add(W_BUSY_NS, time.perf_counter_ns() - t0)
            now = time.monotonic()
            if now >= next_sync:
                self.writer.sync_journal()
                self._check_folder()
                next_sync = now + 1.0
            if self.preview is not None and now >= next_preview:
                self._preview()
                next_preview = now + period

    def _step(self, n: int) -> None:
        """Write (or, striped, skip) the next run of frames: at most ``batch``, contiguous
        in the ring, one owner, one chunk."""
        ring, k = self.ring, self.k
        seq = ring.read_seq(k)
        first = seq % ring.n_slots
        take = min(n, self.spec.batch, ring.n_slots - first)
        if not self.striped:
            if int(ring.meta[first]["acq_nframe"]) <= self.writer.last_acq_nframe:
                ring.release(k, 1)  # written by the writer before this one died
                return
            self.writer.append_run(
                ring.slots[first : first + take], ring.meta[first : first + take]
            )
        else:
            take = min(take, self.stripe.run_end(seq) - seq)
            if self.stripe.owner(seq) != k:
                ring.release(k, take)  # another volume's frames
                return
            take = self._unjournalled(seq, take)
            if take < 0:
                ring.release(k, -take)
                return
            self._write(seq, take)
        ring.release(k, take)
        self.words.add(W_FRAMES, take)
        self.words.add(W_BYTES, take * self.geo.stride)

    def _unjournalled(self, seq: int, take: int) -> int:
        """How many frames from ``seq`` to write; negative: how many to skip, because the
        writer this one replaced had already journalled them."""
        done = self.writer.journalled
        if not len(done):
            return take
        at = int(np.searchsorted(done, seq))
        if at < len(done) and done[at] == seq:
            run = 1
            while run < take and at + run < len(done) and done[at + run] == seq + run:
                run += 1
            return -run
        if at < len(done) and done[at] < seq + take:
            return int(done[at]) - seq
        return take

    def _write(self, seq: int, take: int) -> None:
        first = seq % self.ring.n_slots
        self.writer.append_run_at(
            seq, self.ring.slots[first : first + take], self.ring.meta[first : first + take].copy()
        )

    def _take_over(self) -> None:
        """A volume died: write the frames it would have written that the stripe now gives
        this writer and that this writer had already passed. They are still in the ring
        (the dead writer's consumer holds them until every survivor acknowledges)."""
        stripe, k = self.stripe, self.k
        while self.words[W_ACK] < stripe.deaths:
            dead, from_seq = stripe.died(self.words[W_ACK])
            seq, end = from_seq, self.ring.read_seq(k)
            while seq < end:
                stop = min(end, stripe.run_end(seq))
                if stripe.owner(seq) == k and stripe.owner(seq, ignore=dead) == dead:
                    run = seq
                    while run < stop:
                        first = run % self.ring.n_slots
                        take = min(stop - run, self.ring.n_slots - first, self.spec.batch)
                        skip = self._unjournalled(run, take)
                        if skip < 0:
                            run -= skip
                            continue
                        self._write(run, skip)
                        self.words.add(W_FRAMES, skip)
                        self.words.add(W_BYTES, skip * self.geo.stride)
                        run += skip
                seq = stop
            self.words.add(W_ACK, 1)

    def _check_folder(self) -> None:
        """A folder removed or a volume unmounted under an open file is not an error on
        write: the frames vanish. Say so as an error instead."""
        try:
            st = os.stat(self.folder)
            same = (st.st_dev, st.st_ino) == self.identity
        except OSError:
            same = False
        if not same:
            raise OSError(errno.ENODEV, f"{self.folder} is gone (removed or unmounted)")

    def _preview(self) -> None:
        if self.striped and self.stripe.alive_volumes()[:1] != [self.k]:
            return  # the lowest living writer renders the preview
        latest = self.ring.latest()
        if latest is None or self.preview is None:
            return
        _seq, view, record = latest
        geo = self.geo
        raw = view[: geo.width * geo.height].reshape(geo.height, geo.width)
        self.preview.publish(
            raw,
            self.spec.preview_factor,
            geo.bayer_pattern,
            int(record["acq_nframe"]),
            white_balance=geo.white_balance,
        )
        self.ring.user[G_PREVIEWS] += 1


def main(argv: list[str]) -> int:
    """``python -m mmmelab.storage.writer SPEC_JSON`` (started by FrameWriterProcess)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s frame-writer: %(message)s")
    return writer_main(WriterSpec(**json.loads(argv[0])))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
