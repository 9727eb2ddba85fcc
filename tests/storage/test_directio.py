"""Direct-I/O file writing and block reading of frames (``storage.directio``,
``storage.framereads``) and the face video's tile layout."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from mmmelab.errors import SessionFormatError
from mmmelab.storage.bidsvideo import from_tiles, tile_colours, to_tiles
from mmmelab.storage.directio import DirectWriter, direct_works
from mmmelab.storage.frames import JOURNAL_DTYPE, FrameGeometry, FrameWriter
from mmmelab.storage.framestore import FrameStore

pytestmark = pytest.mark.timeout(60)


def _muxer_like(f: io.RawIOBase, rng: np.random.Generator, size: int) -> bytes:
    """Writes in pieces of random size, going back now and then to patch what is
    behind (in the buffer and already on disk), like a muxer's header and index."""
    model = bytearray()
    while len(model) < size:
        piece = rng.integers(0, 256, int(rng.integers(1, 300_000)), dtype=np.uint8).tobytes()
        f.seek(len(model))
        f.write(piece)
        model += piece
        if rng.random() < 0.3:
            at = int(rng.integers(0, len(model)))
            patch = rng.integers(0, 256, min(int(rng.integers(1, 5000)), len(model) - at),
                                 dtype=np.uint8).tobytes()  # fmt: skip
            f.seek(at)
            f.write(patch)
            model[at : at + len(patch)] = patch
    f.seek(0, io.SEEK_END)
    assert f.tell() == len(model)
    return bytes(model)


@pytest.mark.parametrize("block", [4096, 64 << 10, 8 << 20])
def test_direct_writer_gives_the_bytes_written_patches_and_all(tmp_path: Path, block: int):
    rng = np.random.default_rng(block)
    path = tmp_path / "out.bin"
    with DirectWriter(path, block=block) as f:
        want = _muxer_like(f, rng, 3_000_000)
    assert f.direct == direct_works(tmp_path)
    assert path.read_bytes() == want  # exact length: the unaligned tail and no padding


def test_direct_writer_without_direct_io_writes_the_same(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("mmmelab.storage.directio.direct_works", lambda _folder: False)
    path = tmp_path / "plain.bin"
    with DirectWriter(path, block=1 << 16) as f:
        want = _muxer_like(f, np.random.default_rng(1), 500_000)
    assert not f.direct and path.read_bytes() == want


def test_direct_writer_raises_a_write_error_of_its_thread(tmp_path: Path, monkeypatch):
    import mmmelab.storage.directio as dio

    real = dio.write_all

    def failing(fd: int, data: memoryview, offset: int | None = None) -> None:
        if data.nbytes == 1 << 16:  # a full block, written by the thread
            raise OSError(28, "No space left on device")
        real(fd, data, offset)

    monkeypatch.setattr(dio, "write_all", failing)
    writer = DirectWriter(tmp_path / "full.bin", block=1 << 16)

    def fill() -> None:  # the error surfaces on a write or on the close
        with writer as f:
            for _ in range(20):
                f.write(b"x" * 50_000)

    with pytest.raises(OSError, match="No space left"):
        fill()
    assert writer.closed  # and its thread and descriptors are gone
    writer.close()  # closing again does nothing


def _store(tmp_path: Path, n: int, per_chunk: int, skip: set[int] = frozenset()) -> FrameStore:
    geo = FrameGeometry(width=40, height=10, frames_per_chunk=per_chunk)
    w = FrameWriter(tmp_path / "camera", geo)
    rec = np.zeros(1, JOURNAL_DTYPE)
    for i in range(n):
        rec["acq_nframe"] = i
        w.append(np.full((10, 40), i % 251, np.uint8), rec)
    w.close()
    if skip:  # drop journal records: the frames left are no longer contiguous on disk
        j = np.fromfile(tmp_path / "camera" / "journal.bin", JOURNAL_DTYPE)
        keep = np.array([i not in skip for i in range(n)])
        j[keep].tofile(tmp_path / "camera" / "journal.bin")
    return FrameStore(tmp_path / "camera")


@pytest.mark.parametrize("per_block", [1, 3, 16])
def test_frame_blocks_give_every_frame_in_order(tmp_path: Path, per_block: int):
    store = _store(tmp_path, 50, per_chunk=7, skip={10, 11, 30})
    got = []
    with store.blocks(2, 45, per_block) as blocks:
        for first, block in blocks:
            assert block.shape[1:] == (10, 40) and len(block) <= per_block
            got += [(first + k, int(f[0, 0])) for k, f in enumerate(block)]
    want = [(i, int(store[i][0, 0])) for i in range(2, 45)]
    assert got == want
    store.close()


def test_frame_blocks_stop_early_and_report_a_cut_chunk(tmp_path: Path):
    store = _store(tmp_path, 30, per_chunk=10)
    with store.blocks(0, None, 4) as blocks:  # left after one block: the thread ends
        next(iter(blocks))
    chunk = tmp_path / "camera" / "frames-00001.raw"
    os.truncate(chunk, chunk.stat().st_size // 2)  # cut after the store was opened
    with store.blocks(0, None, 10) as blocks, pytest.raises(SessionFormatError, match="cut"):
        for _ in blocks:
            pass
    store.close()


def test_tiles_put_each_mosaic_site_in_its_quarter_and_back():
    rng = np.random.default_rng(3)
    mosaic = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    tiles = to_tiles(mosaic, np.empty_like(mosaic))
    assert np.array_equal(tiles[:3, :4], mosaic[0::2, 0::2])
    assert np.array_equal(tiles[3:, 4:], mosaic[1::2, 1::2])
    assert np.array_equal(from_tiles(tiles), mosaic)
    assert tile_colours("RGGB") == ["red", "green", "green", "blue"]
    assert tile_colours("BGGR") == ["blue", "green", "green", "red"]
    assert tile_colours("GRBG") == ["green", "red", "blue", "green"]
