"""``mmme spot`` (sessions and plain videos) and ``mmme bench spotting``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError
from mmmelab.progress import LazyBar


def add_parsers(sub: Any, bench: Any, positive: Any) -> None:
    sp = sub.add_parser("spot", help="find expression candidates in a session or a video")
    sp.add_argument("source", type=Path, help="a session folder, or a video file (any fps)")
    sp.add_argument("--out", type=Path, required=True, help="folder for table, curves, provenance")
    sp.add_argument("--ccf", action="store_true", help="the heart-rate filter (MMME eq. 12)")
    sp.add_argument("--ccf-k", type=positive, default=1.0, help="CCF multiplier (1 or 1.5)")
    sp.add_argument("--flow", choices=("dis", "farneback"), default="dis")
    sp.add_argument("--interval", choices=("extent", "fixed"), default="extent",
                    help="extent: measured onset/offset; fixed: apex +- k (MEGC)")  # fmt: skip
    sp.add_argument("--global-motion", choices=("similarity", "translation", "none"),
                    default="similarity", help="how the head's motion is removed")  # fmt: skip
    sp.add_argument("--stabilise", action="store_true",
                    help="warp each crop onto the segment's first (slow head drift)")  # fmt: skip
    sp.add_argument("--segment", type=positive, default=60.0,
                    help="window, s, where there are no clip markers (videos)")  # fmt: skip
    sp.add_argument("--json", action="store_true", help="print one JSON summary")
    bs = bench.add_parser("spotting", help="the spotter on a simulated 2040x1080 150 fps session")
    bs.add_argument("--minutes", type=positive, default=1.0, help="length of the session")
    bs.add_argument("--dir", type=Path, default=None, help="folder for the temporary session")
    bs.add_argument("--hr-from", choices=("apex", "onset"), default="apex",
                    help="the simulated heart-rate response counts from the apex (climbing "
                         "through it, as CCF assumes) or from the onset")  # fmt: skip
    bs.add_argument("--json", action="store_true", help="print only the JSON object")


def run_spot(args: argparse.Namespace) -> int:
    from mmmelab.analysis.spotting.run import spot_session, spot_video, write_outputs
    from mmmelab.analysis.spotting.spotter import SpotParams

    src: Path = args.source
    if not src.exists():
        raise LabError(f"{src}: no such session folder or video file")
    params = SpotParams(flow=args.flow, interval=args.interval, global_motion=args.global_motion,
                        stabilise=args.stabilise)  # fmt: skip
    with LazyBar("frame", "spot", disable=args.json) as progress:
        if src.is_dir():
            result = spot_session(src, params, args.ccf, args.ccf_k, args.segment, progress)
        else:
            if args.ccf:
                raise LabError(f"{src}: --ccf needs a session (a video has no heart rate)")
            result = spot_video(src, params, args.segment, progress)
    paths = write_outputs(result, args.out, params, src)
    summary = {
        "source": str(src), "frames": result.info["frames"], "segments": result.info["segments"],
        "candidates": len(result.unfiltered.annotations), "kept": len(result.table.annotations),
        "ME": len([a for a in result.table.annotations if a.kind.value == "ME"]),
        "MaE": len([a for a in result.table.annotations if a.kind.value == "MaE"]),
        "rejected": _rejected(result), "outputs": [str(p) for p in paths],
    }  # fmt: skip
    if "ccf" in result.info:
        summary["ccf_removed"] = result.info["ccf"]["removed"]
    if result.info.get("direct_fallback"):  # slower and CPU-hungrier, never silent
        summary["direct_fallback"] = result.info["direct_fallback"]
        print(f"note: frames read through the page cache: {summary['direct_fallback']}",
              file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['frames']} frames in {summary['segments']} segment(s): "
            f"{summary['kept']} candidate(s) ({summary['ME']} ME, {summary['MaE']} MaE)"
        )
        print("rejected: " + ", ".join(f"{k} {v}" for k, v in summary["rejected"].items()))
        if "ccf" in result.info:
            print(f"heart-rate filter: removed {summary['ccf_removed']} of "
                  f"{summary['candidates']} (reasons in the _spot.json)")  # fmt: skip
        for p in paths:
            print(p)
    return 0


def _rejected(result: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for seg in result.segments:
        for k, v in seg.rejected.items():
            out[k] = out.get(k, 0) + v
    return out
