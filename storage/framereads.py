"""Reading stored frames fast: rows of any frame (:class:`RowReader`, for the face
pipeline's crops) and every frame in order (:class:`FrameBlocks`, for the video
export), both with direct I/O where the file system allows it."""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from mmmelab.errors import SessionFormatError
from mmmelab.storage.directio import PAGE, aligned_buffer

if TYPE_CHECKING:
    from mmmelab.storage.framestore import FrameStore


class RowReader:
    """Rows ``y0..y1-1`` of stored frames, read with ``O_DIRECT`` into a page-aligned
    buffer (the page-aligned span that holds them): the disk's DMA fills the buffer,
    so reading costs the CPU almost nothing (a buffered read copies every byte
    through the page cache: 10-30x the CPU time on this class of machine, measured).
    Where the file system refuses direct I/O the reads go through the page cache and
    the store says why (``FrameStore.direct_fallback``). ``read`` returns a view into
    the buffer, valid until the next read."""

    def __init__(self, store: FrameStore, y0: int, y1: int) -> None:
        self.store, self.y0, self.y1 = store, y0, y1
        first, last = y0 * store.width, y1 * store.width
        self.lo = first // PAGE * PAGE
        self.hi = min(store.stride, -(-last // PAGE) * PAGE)
        self._map = mmap.mmap(-1, self.hi - self.lo)
        self._buf = np.frombuffer(self._map, dtype=np.uint8)
        self._skip = first - self.lo
        self._rows = np.empty((y1 - y0, store.width), np.uint8)

    def read(self, index: int) -> np.ndarray:
        st = self.store
        if not -len(st) <= index < len(st):
            raise IndexError(f"frame {index} out of range (0..{len(st) - 1})")
        key, pos = st.locate(index)
        fd = st.direct_fd(key)
        if fd is None:
            rows: np.ndarray = st.read_rows(index, self.y0, self.y1, self._rows)
            return rows
        n = os.preadv(fd, [self._map], pos * st.stride + self.lo)
        if n != self.hi - self.lo:
            raise SessionFormatError(f"{st.chunk_path(key)}: frame {index} is cut short")
        size = (self.y1 - self.y0) * st.width
        return self._buf[self._skip : self._skip + size].reshape(self.y1 - self.y0, st.width)


class FrameBlocks:
    """Frames ``start..stop-1`` in order, read ahead by a thread in blocks of up to
    ``per_block`` consecutive frames, each block with one ``preadv`` (direct I/O
    where the file system allows it, as :class:`RowReader`). At most ``depth``
    blocks are in memory. Iterating yields ``(first_index, frames)`` with
    ``frames`` a ``(k, height, width)`` view valid until the next step; a read
    error in the thread is raised in the iterating one. Use as a context manager
    (or call :meth:`close`) so the thread never outlives the reading."""

    def __init__(self, store: FrameStore, start: int = 0, stop: int | None = None,
                 per_block: int = 16, depth: int = 3) -> None:  # fmt: skip
        n = len(store)
        stop = n if stop is None else min(stop, n)
        if not 0 <= start <= stop:
            raise IndexError(f"frames {start}..{stop} out of range (0..{n})")
        self.store = store
        self._runs = list(self._plan(start, stop, max(1, per_block)))
        k = max((r[3] for r in self._runs), default=1)
        self._free: queue.Queue[np.ndarray] = queue.Queue()
        for _ in range(max(2, depth)):
            self._free.put(aligned_buffer(k * store.stride).reshape(k, store.stride))
        self._ready: queue.Queue[tuple[int, np.ndarray, int] | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-blocks", daemon=True)
        self._thread.start()

    def _plan(self, start: int, stop: int, per: int
              ) -> Iterator[tuple[int, tuple[int, int], int, int]]:  # fmt: skip
        """(first index, (volume, chunk), position in chunk, count): runs contiguous on disk."""
        where = self.store.journal["index"][start:stop].astype(np.int64)
        vol = self.store.journal["volume"][start:stop]
        i = 0
        while i < len(where):
            chunk, pos = divmod(int(where[i]), self.store.per_chunk)
            k = 1
            room = min(per, self.store.per_chunk - pos, len(where) - i)
            while k < room and where[i + k] == where[i] + k and vol[i + k] == vol[i]:
                k += 1
            yield start + i, (int(vol[i]), chunk), pos, k
            i += k

    def _run(self) -> None:
        st = self.store
        try:
            for first, key, pos, k in self._runs:
                buf = self._free.get()
                if self._stop.is_set():
                    return
                fd = st.direct_fd(key)
                if fd is None:
                    fd = st.chunk_fd(key)
                view = memoryview(buf[:k].reshape(-1))  # type: ignore[arg-type]
                got = os.preadv(fd, [view], pos * st.stride)
                if got != view.nbytes:
                    raise SessionFormatError(
                        f"{st.chunk_path(key)}: frame {first + got // st.stride} is cut short"
                    )
                self._ready.put((first, buf, k))
        except Exception as exc:  # noqa: BLE001 - raised in the reader: never a silent hang
            self._ready.put(exc)
        else:
            self._ready.put(None)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        st, px = self.store, self.store.width * self.store.height
        held: np.ndarray | None = None
        try:
            while (item := self._ready.get()) is not None:
                if held is not None:
                    self._free.put(held)
                    held = None
                if isinstance(item, BaseException):
                    raise item
                first, held, k = item
                yield first, held[:k, :px].reshape(k, st.height, st.width)
        finally:
            if held is not None:
                self._free.put(held)

    def close(self) -> None:
        self._stop.set()
        self._free.put(aligned_buffer(PAGE).reshape(1, PAGE))  # wakes a waiting thread
        self._thread.join()

    def __enter__(self) -> FrameBlocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
