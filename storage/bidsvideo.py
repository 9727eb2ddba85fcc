"""The face video for BIDS (the BEP047 draft): the camera's frames as recorded,
losslessly encoded, with each frame's time in a table beside it.

Layout. The sensor's Bayer mosaic is kept, never demosaiced. In the mosaic order
(``layout="mosaic"``) neighbouring pixels are of different colours, which a
lossless codec's predictor handles badly. The default ``layout="tiles"`` stores
the same bytes rearranged as four half-size images, one per mosaic site::

    [ even rows, even columns | even rows, odd columns ]
    [ odd rows,  even columns | odd rows,  odd columns ]

(for RGGB: red, green | green, blue). Each tile is a smooth picture of the face,
so a frame takes about half the bytes (measured at 2040x1080, MagicYUV: 0.49 of
RAW8 against 0.87 in mosaic order) and encodes faster; :func:`from_tiles` puts the
mosaic back exactly. The sidecar states the layout and which colour each tile is.

I/O. The frames are read ahead in blocks and the file is written past the page
cache (both direct I/O, ``framereads.FrameBlocks`` and ``directio.DirectWriter``):
through the page cache, the minute's 20 GB in and 10 GB out cost more CPU than
the encoding on a two-core machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import LabError
from mmmelab.storage.bids import Timebase, write_json, write_tsv
from mmmelab.storage.directio import DirectWriter
from mmmelab.storage.frames import BAYER_OFFSETS
from mmmelab.storage.session import CameraStream

FULL_RANGE = 2  # AVCOL_RANGE_JPEG
LAYOUTS = ("tiles", "mosaic")
MUXERS = {"avi": "avi", "mkv": "matroska"}


@dataclass(frozen=True)
class Codec:
    """A video encoding for the export: the encoder, container, pixel format and options."""

    name: str  # PyAV/FFmpeg encoder
    container: str
    pix_fmt: str
    options: dict[str, str]
    why: str
    threads: str = "AUTO"  # FFmpeg's threading: FRAME, SLICE or AUTO (x264 has its own)


CODECS = {
    "magicyuv": Codec("magicyuv", "avi", "gray", {},
                      "MagicYUV: lossless, intra only, built for speed - the fastest lossless "
                      "codec here (see mmme bench export)",
                      "FRAME"),
    "ffv1": Codec("ffv1", "mkv", "gray", {"level": "3", "slices": "4", "slicecrc": "1",
                                          "g": "1"},
                  "FFV1 level 3, intra only, slice CRCs: lossless, an archival standard "
                  "(IETF RFC 9043), every frame decodable alone", "SLICE"),
    "x264": Codec("libx264", "mkv", "gray", {"qp": "0", "preset": "ultrafast",
                                             "tune": "fastdecode"},
                  "H.264 at qp 0: lossless, readable everywhere"),
}  # fmt: skip


def to_tiles(mosaic: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``mosaic`` (even height and width) rearranged into ``out`` as four tiles."""
    h, w = mosaic.shape
    hh, hw = h // 2, w // 2
    out[:hh, :hw] = mosaic[0::2, 0::2]
    out[:hh, hw:w] = mosaic[0::2, 1::2]
    out[hh:h, :hw] = mosaic[1::2, 0::2]
    out[hh:h, hw:w] = mosaic[1::2, 1::2]
    return out


def from_tiles(tiles: np.ndarray) -> np.ndarray:
    """The mosaic back from a frame in the ``tiles`` layout (the inverse of :func:`to_tiles`)."""
    h, w = tiles.shape
    hh, hw = h // 2, w // 2
    mosaic = np.empty_like(tiles)
    mosaic[0::2, 0::2] = tiles[:hh, :hw]
    mosaic[0::2, 1::2] = tiles[:hh, hw:]
    mosaic[1::2, 0::2] = tiles[hh:, :hw]
    mosaic[1::2, 1::2] = tiles[hh:, hw:]
    return mosaic


def tile_colours(pattern: str) -> list[str]:
    """The colour each tile holds, top left, top right, bottom left, bottom right."""
    sites = dict(zip(BAYER_OFFSETS[pattern], ("red", "green", "green", "blue"), strict=True))
    return [sites[(y, x)] for y, x in ((0, 0), (0, 1), (1, 0), (1, 1))]


def write_video(cam: CameraStream, folder: Path, pre: str, tb: Timebase,
                codec: str = "magicyuv", layout: str = "tiles", progress: Any = None,
                limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The camera's frames, as recorded (nothing demosaiced, nothing lost), in
    ``<pre>_video.<ext>`` with its sidecar, and ``<pre>_frametimes.tsv``: each frame's
    number, master time and time on the EEG file's axis, with the dropped frames
    listed in the sidecar. ``layout``: see the module docstring (an odd-sized frame
    is kept in mosaic order, and the sidecar says so). ``limit``: only the first
    frames (the benchmark's codec probes). ``progress(done, total)`` after each
    block of frames."""
    import av

    spec = CODECS.get(codec)
    if spec is None:
        raise LabError(f"--codec {codec}: one of {', '.join(CODECS)}")
    if layout not in LAYOUTS:
        raise LabError(f"--layout {layout}: one of {', '.join(LAYOUTS)}")
    frames = cam.frames
    n = len(frames) if limit is None else min(limit, len(frames))
    if not n:
        raise LabError(f"{cam.name}: no frames")
    h, w = frames.height, frames.width
    tiles = layout == "tiles" and h % 2 == 0 and w % 2 == 0
    name = f"{pre}_video.{spec.container}"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = DirectWriter(path, 32 << 20, 4)
    with sink, frames.blocks(0, n, 32) as blocks, av.open(sink, "w", format=MUXERS[spec.container],
                                                           buffer_size=1 << 20) as out:  # fmt: skip
        stream: Any = out.add_stream(spec.name, rate=int(round(cam.rate_hz)))
        stream.width, stream.height, stream.pix_fmt = w, h, spec.pix_fmt
        stream.options = dict(spec.options)
        stream.thread_type = spec.threads
        stream.codec_context.thread_count = os.cpu_count() or 1
        # full range: H.264 decoders return 4:0:0 as yuvj420p, whose luma is the image
        # exactly; as limited range a grey conversion would rescale every value
        stream.codec_context.color_range = FULL_RANGE
        for first, block in blocks:  # frame threads encode in parallel
            for j, img in enumerate(block, first):
                vf = av.VideoFrame(w, h, "gray")  # a new frame each time: the threads hold them
                plane = np.frombuffer(vf.planes[0], np.uint8)  # type: ignore[call-overload]
                dest = plane.reshape(h, vf.planes[0].line_size)[:, :w]
                if tiles:
                    to_tiles(img, dest)
                else:
                    dest[:] = img
                vf.pts, vf.color_range = j, FULL_RANGE
                for pkt in stream.encode(vf):
                    out.mux(pkt)
            if progress:
                progress(first + len(block), n)
        for pkt in stream.encode():
            out.mux(pkt)
    nf = cam.journal["acq_nframe"][:n].astype(np.int64)
    master = np.asarray(cam.master_time, dtype=np.float64)[:n]
    write_tsv(folder / f"{pre}_frametimes.tsv",
              ["frame_index", "frame_number", "onset", "master_time"],
              zip(range(n), nf.tolist(), tb.to_file(master).tolist(), master.tolist(),
                  strict=True))  # fmt: skip
    gaps, missing = cam.dropped(n)
    where = [d for d in cam.dropped_frames if d["after_acq_nframe"] < nf[-1]]
    pattern = frames.bayer_pattern
    layout_text = (
        f"the Bayer mosaic ({pattern}) as four half-size tiles, one per mosaic site: top "
        "left even rows and even columns, top right even rows and odd columns, bottom left "
        "odd rows and even columns, bottom right odd rows and odd columns ("
        + ", ".join(tile_colours(pattern)) + "); mosaic[y::2, x::2] = tile (y, x)"
        if tiles else f"the Bayer mosaic ({pattern}) in sensor order"
    )  # fmt: skip
    meta = {
        "FrameRate": cam.rate_hz, "Width": int(w), "Height": int(h),
        "Duration": round(float(master[-1] - master[0]) + 1.0 / cam.rate_hz, 3),
        "FrameCount": n, "Codec": spec.name, "CodecChoice": spec.why,
        "PixelFormat": f"8-bit grey, full range, holding {layout_text}; white balance "
                       f"{list(frames.white_balance)}; demosaic to view in colour",
        "MosaicLayout": "tiles" if tiles else "mosaic",
        "BayerPattern": pattern,
        "Device": str(frames.meta.get("model", "XIMEA camera")),
        "FrameTimes": f"{pre}_frametimes.tsv: frame_number is the camera's own counter "
                      "(acq_nframe), onset the exposure start on the EEG file's axis",
        "DroppedFrames": {"gaps": gaps, "frames": missing, "where": where},
        "Specification": "BIDS extension proposal BEP047 (video), draft",
    }  # fmt: skip
    write_json(folder / f"{pre}_video.json", meta)
    return {"file": name, "frames": n, "bytes": path.stat().st_size, "dropped": missing,
            "layout": meta["MosaicLayout"]}  # fmt: skip
