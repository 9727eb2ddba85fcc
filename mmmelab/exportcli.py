"""``mmme export bids``: sessions out as a BIDS dataset, with consent enforced."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError
from mmmelab.progress import LazyBar


def add_parsers(sub: Any, bench: Any) -> None:
    be = bench.add_parser("export", help="video encoding, BIDS, ME dataset and report times")
    be.add_argument("--video-minutes", type=float, default=1.0,
                    help="full-resolution video to encode (1 min = 20 GB of RAW8)")  # fmt: skip
    be.add_argument("--long-minutes", type=float, default=60.0,
                    help="length of the session exported and reported")  # fmt: skip
    be.add_argument("--codec", choices=("magicyuv", "x264", "ffv1"), default="magicyuv")
    be.add_argument("--dir", type=Path, default=None, help="folder for the temporary sessions")
    be.add_argument("--json", action="store_true", help="print only the JSON object")
    ex = sub.add_parser("export", help="sessions out as BIDS (or the ME-dataset layout)")
    what = ex.add_subparsers(dest="export_command", metavar="bids|me-dataset", required=True)
    b = what.add_parser("bids", help="EEG, physiology, events, face video as one BIDS dataset")
    b.add_argument("sessions", type=Path, nargs="+")
    b.add_argument("--out", type=Path, required=True, help="the dataset's folder")
    b.add_argument("--restricted", type=Path, default=None,
                   help="a separate folder for the face video of consent-level-2 "
                        "participants (never published)")  # fmt: skip
    b.add_argument("--no-video", action="store_true", help="leave the face video out")
    b.add_argument("--codec", choices=("magicyuv", "x264", "ffv1"), default="magicyuv",
                   help="lossless video codec: MagicYUV (keeps up with 150 fps), x264 at qp "
                        "0 (smaller), FFV1 (archival)")  # fmt: skip
    b.add_argument("--layout", choices=("tiles", "mosaic"), default="tiles",
                   help="the Bayer mosaic as four half-size tiles, one per colour site (half "
                        "the bytes, lossless), or in sensor order")  # fmt: skip
    b.add_argument("--eeg-format", choices=("BrainVision", "EDF"), default="BrainVision")
    b.add_argument("--author", action="append", default=[],
                   help="an author for dataset_description.json (repeat)")  # fmt: skip
    b.add_argument("--license", default=None, help="the dataset's licence (e.g. CC-BY-4.0)")
    b.add_argument("--validate", action="store_true",
                   help="run the BIDS validator on the result (bids-validator-deno)")  # fmt: skip
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    c = sub.add_parser(
        "consolidate", help="gather a session striped over several volumes into one folder"
    )
    c.add_argument("session", type=Path)
    c.add_argument("--to", type=Path, required=True, help="where the whole session goes")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    r = sub.add_parser("report", help="the quality report of a session (one HTML page)")
    r.add_argument("session", type=Path)
    r.add_argument("--out", type=Path, default=None, help="default: SESSION/report.html")
    r.add_argument("--ica", action="store_true", help="run the EEG's ICA for its summary")
    r.add_argument("--open", action="store_true", help="open it in the web browser")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    m = what.add_parser("me-dataset", help="the CASME/SAMM-style layout: crops, sheet, splits")
    m.add_argument("sessions", type=Path, nargs="+")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--restricted", type=Path, default=None,
                   help="a separate folder for consent-level-2 participants' crops")  # fmt: skip
    m.add_argument("--no-faces", action="store_true", help="no crops: sheet, splits, signals")
    m.add_argument("--format", choices=("png", "jpg"), default="png")
    m.add_argument("--quality", type=int, default=95, help="JPEG quality (1-100)")
    m.add_argument("--size", type=int, default=None, help="resize crops to SIZE x SIZE")
    m.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_export(args: argparse.Namespace) -> int:
    from mmmelab.export import export_bids, validate
    from mmmelab.storage.manifest import MANIFEST

    for s in args.sessions:
        if not (s / MANIFEST).is_file():
            raise LabError(f"{s}: not a session folder (no {MANIFEST})")
    if args.export_command == "me-dataset":
        return _me_dataset(args)
    with LazyBar("session") as bar:
        summary = export_bids(args.sessions, args.out, args.restricted, not args.no_video,
                              args.codec, args.eeg_format, args.author, args.license,
                              bar, args.layout)  # fmt: skip
    if args.validate:
        summary["validator"] = validate(args.out)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for d in summary["sessions"]:
            face = ("video" if "video" in d else "video -> restricted" if "restricted_video" in d
                    else "no video")  # fmt: skip
            print(f"sub-{d['sub']} ses-{d['ses']}: consent {d['consent_level']}, "
                  f"{d['events']} events, {face}")  # fmt: skip
        if "validator" in summary:
            v = summary["validator"]
            print(f"BIDS validator: {v['n_errors']} errors, {v['n_warnings']} warnings")
        print(args.out)
    if args.validate and summary["validator"]["n_errors"]:
        codes = ", ".join(summary["validator"]["errors"])
        raise LabError(f"{args.out}: the BIDS validator found errors ({codes})")
    return 0


def _me_dataset(args: argparse.Namespace) -> int:
    from mmmelab.medataset import export_me_dataset

    if args.size is not None and args.size < 8:
        raise LabError(f"--size {args.size}: at least 8 pixels")
    with LazyBar("session") as bar:
        summary = export_me_dataset(args.sessions, args.out, args.restricted, args.format,
                                    args.quality, args.size, not args.no_faces, bar)  # fmt: skip
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        print(f"{summary['samples']} samples of {len(summary['subjects'])} subjects -> {args.out}")
        for n in summary["notes"]:
            print(f"note: {n}")
    return 0


def run_consolidate(args: argparse.Namespace) -> int:
    from mmmelab.storage.consolidate import consolidate
    from mmmelab.storage.manifest import MANIFEST

    if not (args.session / MANIFEST).is_file():
        raise LabError(f"{args.session}: not a session folder (no {MANIFEST})")
    with LazyBar("frame") as bar:
        summary = consolidate(args.session, args.to, bar)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        lost = sum(summary["frames_lost"].values())
        print(f"{summary['to']}: {summary['files']} files and {summary['frames']} frames from "
              f"{len(summary['volumes'])} volume(s), checksums verified"
              + (f"; {lost} frames were already lost: {summary['frames_lost']}" if lost
                 else ""))  # fmt: skip
    return 0


def run_report(args: argparse.Namespace) -> int:
    from mmmelab.analysis.report.session import write_report

    with LazyBar("section") as bar:
        summary = write_report(args.session, args.out, args.ica, bar)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "stats"} | {
            "stats": summary["stats"]}, default=str))  # fmt: skip
    else:
        print(
            f"{summary['path']} ({summary['bytes'] / 1e3:.0f} kB, {summary['seconds']:.1f} s; "
            f"{'ok' if summary['ok'] else str(summary['faults']) + ' faults/warnings'})"
        )
    if args.open:
        import webbrowser

        webbrowser.open(Path(summary["path"]).resolve().as_uri())
    return 0
