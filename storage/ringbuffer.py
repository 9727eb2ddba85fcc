"""A shared-memory ring of page-aligned frame slots: one producer, several consumers.

Layout of the shared block (``multiprocessing.shared_memory``)::

    [0, PAGE)             header: int64 counters (below)
    [PAGE, meta_end)      one metadata record per slot (JOURNAL_DTYPE, 64 bytes)
    [slots_at, ...)       n_slots slots of slot_bytes each, every slot page-aligned

The producer (the camera grabber) never waits. It ``claim``s the next slot,
fills it (the camera API copies straight into it) and ``commit``s it with its
journal record. A *lossless* consumer (the disk writer) reads every frame in
order and ``release``s what it has written; when it is a whole ring behind,
``claim`` refuses the slot instead of overwriting unwritten data, and the lost
frame is counted in ``overflow`` (reported, never silent). A *latest* consumer
(the preview) only ever looks at the newest frame and never holds the producer.

Counters are aligned int64 words written by one side each (the producer writes
``write_seq``, each consumer its ``read_seq``), so no lock is needed between
processes. The copy kernel is compiled with numba.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
from multiprocessing import shared_memory
from typing import Any

import numba
import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.frames import JOURNAL_DTYPE, PAGE

logger = logging.getLogger(__name__)

MAGIC = 0x4D4D4D45_52494E47  # "MMMERING"
SHM_TAG_ENV = "MMME_SHM_TAG"  # a tag in every segment's name (a test run sets its own)
MAX_CONSUMERS = 8
# header words
H_MAGIC, H_SLOTS, H_SLOT_BYTES, H_WRITE_SEQ, H_CLOSED, H_OVERFLOW = 0, 1, 2, 3, 4, 5
H_FRAME_BYTES, H_N_CONSUMERS = 6, 7
H_HALF_FULL = 8  # times a lossless consumer fell half a ring behind (counted at commit)
H_CONSUMER = 16  # each consumer: read_seq, high_water, lossless, reserved x5
C_READ, C_HIGH, C_LOSSLESS = 0, 1, 2
# free words after the consumers, for users of the ring (e.g. writer telemetry)
H_USER = H_CONSUMER + 8 * MAX_CONSUMERS
N_USER = 256


def segment_name(kind: str) -> str:
    """A name for a new shared-memory segment that says whose it is: ``mmme``, the
    ``MMME_SHM_TAG`` of the environment (empty unless set), ``kind`` and the creating
    process, so a leftover segment in /dev/shm can be traced to its owner."""
    tag = os.environ.get(SHM_TAG_ENV, "")
    return f"mmme{tag}_{kind}{os.getpid():x}_{secrets.token_hex(3)}"


@numba.njit(nogil=True, cache=False)
def copy_bytes(dst: np.ndarray, src: np.ndarray) -> None:  # pragma: no cover - compiled
    """Copy ``src`` into the start of ``dst`` (both 1-D uint8); releases the GIL."""
    for i in range(src.size):
        dst[i] = src[i]


class FrameRing:
    """The ring. Create it in the producer's process; ``attach`` to it by name elsewhere.

    ``close()`` detaches; the creator's ``close()`` also frees the shared memory.
    """

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm: shared_memory.SharedMemory | None = shm
        self.owner = owner
        self.name = shm.name
        self.header = np.ndarray((PAGE // 8,), dtype=np.int64, buffer=shm.buf)
        if self.header[H_MAGIC] != MAGIC:
            raise LabError(f"shared memory {shm.name!r} is not a frame ring")
        self.n_slots = int(self.header[H_SLOTS])
        self.slot_bytes = int(self.header[H_SLOT_BYTES])
        self.frame_bytes = int(self.header[H_FRAME_BYTES])
        meta_bytes = _round_up(self.n_slots * JOURNAL_DTYPE.itemsize)
        self.meta = np.ndarray((self.n_slots,), dtype=JOURNAL_DTYPE, buffer=shm.buf, offset=PAGE)
        self.slots = np.ndarray(
            (self.n_slots, self.slot_bytes),
            dtype=np.uint8,
            buffer=shm.buf,
            offset=PAGE + meta_bytes,
        )
        self.user = self.header[H_USER : H_USER + N_USER]

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls, n_slots: int, frame_bytes: int, consumers: tuple[bool, ...] = (True, False)
    ) -> FrameRing:
        """A new ring; ``consumers`` lists, per consumer, whether it is lossless."""
        if not 1 <= len(consumers) <= MAX_CONSUMERS:
            raise ValueError(f"1 to {MAX_CONSUMERS} consumers")
        slot_bytes = _round_up(frame_bytes)
        size = PAGE + _round_up(n_slots * JOURNAL_DTYPE.itemsize) + n_slots * slot_bytes
        free = shutil.disk_usage("/dev/shm").free if _has_dev_shm() else None
        if free is not None and free < size:
            raise LabError(
                f"the frame ring needs {size / 1e9:.2f} GB of shared memory but "
                f"/dev/shm has {free / 1e9:.2f} GB free; shorten the ring or "
                f"enlarge /dev/shm"
            )
        shm = shared_memory.SharedMemory(segment_name("ring"), create=True, size=size)
        header = np.ndarray((PAGE // 8,), dtype=np.int64, buffer=shm.buf)
        header[:] = 0
        header[H_SLOTS], header[H_SLOT_BYTES], header[H_FRAME_BYTES] = (
            n_slots,
            slot_bytes,
            frame_bytes,
        )
        header[H_N_CONSUMERS] = len(consumers)
        for c, lossless in enumerate(consumers):
            header[H_CONSUMER + 8 * c + C_LOSSLESS] = int(lossless)
        header[H_MAGIC] = MAGIC
        ring = cls(shm, owner=True)
        ring.slots[:, :1] = 0  # touch every slot once: no page faults while recording
        ring.slots.reshape(-1)[::PAGE] = 0
        copy_bytes(ring.slots[0], np.zeros(1, np.uint8))  # compile the kernel now
        return ring

    @classmethod
    def attach(cls, name: str) -> FrameRing:
        try:
            shm = _attach_untracked(name)
        except FileNotFoundError:
            raise LabError(f"frame ring {name!r} does not exist") from None
        return cls(shm, owner=False)

    def close(self) -> None:
        """Detach; the owner also unlinks the shared memory. Idempotent."""
        if self._shm is None:
            return
        self.header = self.meta = self.slots = self.user = None  # type: ignore[assignment]
        shm, self._shm = self._shm, None
        shm.close()
        if self.owner:
            shm.unlink()

    # ------------------------------------------------------------ producer

    @property
    def n_consumers(self) -> int:
        return int(self.header[H_N_CONSUMERS])

    def _consumer(self, c: int, field: int) -> int:
        return int(self.header[H_CONSUMER + 8 * c + field])

    def claim(self) -> int | None:
        """Index of the slot to fill next, or None when a lossless consumer is a whole ring
        behind (the frame must then be dropped: call ``lost()`` so it is counted)."""
        seq = int(self.header[H_WRITE_SEQ])
        for c in range(self.n_consumers):
            if self._consumer(c, C_LOSSLESS) and seq - self._consumer(c, C_READ) >= self.n_slots:
                return None
        return seq % self.n_slots

    def lost(self, count: int = 1) -> None:
        """Count frames the producer had to drop because the ring was full."""
        self.header[H_OVERFLOW] += count

    def commit(self, slot: int, record: np.ndarray | None = None) -> None:
        """Publish the claimed slot (after its bytes are in place)."""
        if record is not None:
            self.meta[slot] = record[0] if record.shape else record
        seq = int(self.header[H_WRITE_SEQ]) + 1
        self.header[H_WRITE_SEQ] = seq
        half = (self.n_slots + 1) // 2
        for c in range(self.n_consumers):
            base = H_CONSUMER + 8 * c
            if not self.header[base + C_LOSSLESS]:
                continue  # a latest-only or detached consumer: nothing waits for it
            fill = seq - int(self.header[base + C_READ])
            if fill > self.header[base + C_HIGH]:
                self.header[base + C_HIGH] = fill
            if fill == half:
                # crossing half full: always long before a frame can be lost (a whole ring)
                self.header[H_HALF_FULL] += 1

    def push(self, frame: np.ndarray, record: np.ndarray | None = None) -> bool:
        """Copy one frame in (numba kernel) and publish it; False when it was lost."""
        slot = self.claim()
        if slot is None:
            self.lost()
            return False
        copy_bytes(self.slots[slot], frame.reshape(-1).view(np.uint8))
        self.commit(slot, record)
        return True

    def close_stream(self) -> None:
        """Tell consumers that no more frames come."""
        self.header[H_CLOSED] = 1

    # ------------------------------------------------------------ consumers

    @property
    def closed(self) -> bool:
        return bool(self.header[H_CLOSED])

    @property
    def write_seq(self) -> int:
        return int(self.header[H_WRITE_SEQ])

    @property
    def half_full_events(self) -> int:
        """How often a lossless consumer fell half a ring behind (see ``commit``)."""
        return int(self.header[H_HALF_FULL])

    @property
    def overflow(self) -> int:
        return int(self.header[H_OVERFLOW])

    def pending(self, c: int) -> int:
        return self.write_seq - self._consumer(c, C_READ)

    def get(self, c: int, k: int = 0) -> tuple[np.ndarray, Any]:
        """The k-th unread frame of consumer ``c``: (slot bytes view, journal record)."""
        seq = self._consumer(c, C_READ) + k
        slot = seq % self.n_slots
        return self.slots[slot], self.meta[slot : slot + 1]

    def read_slot(self, c: int) -> int:
        """Slot index of consumer ``c``'s next unread frame."""
        return self._consumer(c, C_READ) % self.n_slots

    def release(self, c: int, count: int = 1) -> None:
        self.header[H_CONSUMER + 8 * c + C_READ] += count

    def read_seq(self, c: int) -> int:
        """Sequence number of consumer ``c``'s next unread frame."""
        return self._consumer(c, C_READ)

    def lossless(self, c: int) -> bool:
        return bool(self._consumer(c, C_LOSSLESS))

    def detach(self, c: int) -> None:
        """Consumer ``c`` no longer holds the producer back (a writer that is gone)."""
        self.header[H_CONSUMER + 8 * c + C_LOSSLESS] = 0

    def latest(self) -> tuple[int, np.ndarray, Any] | None:
        """(seq, slot view, record) of the newest frame, for latest-only consumers.

        Check ``still_valid(seq)`` after using the view: the producer does not wait
        for latest-only consumers.
        """
        seq = self.write_seq - 1
        if seq < 0:
            return None
        slot = seq % self.n_slots
        return seq, self.slots[slot], self.meta[slot]

    def still_valid(self, seq: int) -> bool:
        return self.write_seq - seq < self.n_slots

    def fill_frac(self, c: int = 0) -> float:
        return self.pending(c) / self.n_slots

    def high_water_frac(self, c: int = 0) -> float:
        return self._consumer(c, C_HIGH) / self.n_slots


def _attach_untracked(name: str) -> shared_memory.SharedMemory:
    """Attach without registering with the resource tracker: only the owner may unlink.

    (Python < 3.13 registers every attach, and its tracker would unlink the block
    when the attaching process exits.)
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def _round_up(n: int) -> int:
    return int(-(-n // PAGE) * PAGE)


def _has_dev_shm() -> bool:
    import os

    return os.path.isdir("/dev/shm")
