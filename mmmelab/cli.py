"""The ``mmme`` command line.

    mmme demo [--headless] [--out DIR]        the 2-trial protocol on the simulated lab, in the
                                              GUI when there is a display
    mmme attach                               reopen the console on the running session
    mmme record --lab L --protocol P --out D  a headless recording with a given configuration
    mmme check SESSION [--json]               integrity check (exit code 1 when not ok)
    mmme align SESSION [--json]               every stream onto the master clock (sync.json)
    mmme import FILE [--json]                 summarise a Curry, .cnt or .acq file
    mmme simulate DIR --participants N --minutes M   a simulated study (sessions + truth)
    mmme features SESSION [--annotations F] --out D  Table 3 / Table 6 / EEG band features
    mmme concordance SESSION... --out D       ME-physiology concordance (TSV, JSON, HTML)
    mmme spot SESSION|VIDEO --out DIR         spotting candidates (MDMD-like optical flow)
    mmme annotate SESSION --coder NAME        the frame-exact coding window (--adjudicate)
    mmme agreement SESSION... [--json]        the coders' agreement (AU r, kappas, ICC)
    mmme clip-study --clips DIR --rater R     one evaluator rates the candidate clips
    mmme clip-study --clips DIR --summarise   alpha, ICC, kappa; a protocol of the best clips
    mmme dataset build SESSION... --out DS    recognition samples from coded sessions
    mmme recognize DS --out DIR [--protocol loso|kfold]  per-modality SVMs and their vote
    mmme bench camera|sync|gui|ringbuffer --json  performance figures of this machine
    mmme screenshots [--out DIR]              pictures of the GUI windows (scripts/screenshots.sh)
    mmme --version

Errors the user can fix (a bad config file, a device that does not answer, a
corrupt session) print one clear line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from mmmelab import __version__
from mmmelab.errors import LabError

logger = logging.getLogger("mmmelab.cli")

EXIT_OK, EXIT_NOT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmme", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"mmme-lab {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def participant_args(sp: argparse.ArgumentParser, default_id: str | None) -> None:
        sp.add_argument(
            "--participant",
            default=default_id,
            required=default_id is None,
            help="pseudonymous participant id: the lab's pattern, P and digits by default "
            "(e.g. P07)",
        )
        sp.add_argument(
            "--session", type=_session_number, default=1, help="session number 1-99 (default 1)"
        )
        sp.add_argument(
            "--consent",
            type=int,
            choices=(1, 2),
            default=2,
            help="1: faces may be shown; 2: research use only (default)",
        )
        sp.add_argument("--notes", default="", help="free notes stored in the manifest")

    demo = sub.add_parser(
        "demo",
        help="the 2-trial protocol on the simulated lab: the GUI with a display, else headless",
    )
    demo.add_argument("--headless", action="store_true", help="no GUI, even with a display")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo-sessions"),
        help="folder for the session (default ./demo-sessions)",
    )
    participant_args(demo, "P01")
    sub.add_parser("attach", help="reopen the experimenter console on the session that is running")

    rec = sub.add_parser("record", help="headless recording with a lab and protocol file")
    rec.add_argument("--lab", type=Path, required=True, help="lab configuration (TOML)")
    rec.add_argument("--protocol", type=Path, required=True, help="protocol (TOML)")
    rec.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the session (default: the lab's data_root)",
    )
    participant_args(rec, None)

    bench = sub.add_parser("bench", help="measure performance on this machine (JSON figures)")
    what = bench.add_subparsers(dest="bench", metavar="WHAT", required=True)
    cam = what.add_parser("camera", help="camera -> ring -> writer -> disk, against the disk")
    cam.add_argument("--seconds", type=float, default=60.0, help="length of the 150 fps run")
    cam.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure")
    cam.add_argument(
        "--volumes", default="", help="DIR1,DIR2[,...]: measure frames striped over these"
    )
    cam.add_argument("--json", action="store_true", help="print only the JSON object")
    syn = what.add_parser("sync", help="alignment of a skewed simulated session vs truth")
    syn.add_argument("--minutes", type=float, default=5.0, help="length of the session")
    syn.add_argument("--json", action="store_true", help="print only the JSON object")
    gui = what.add_parser("gui", help="the GUI on the simulated lab while recording at 150 fps")
    gui.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    gui.add_argument("--json", action="store_true", help="print only the JSON object")
    ana = what.add_parser("analysis", help="physiology, EEG and concordance on a simulated session")
    ana.add_argument("--minutes", type=float, default=60.0, help="length of the session")
    ana.add_argument("--dir", type=Path, default=None, help="folder for the temporary session")
    ana.add_argument("--json", action="store_true", help="print only the JSON object")
    flt = what.add_parser("faults", help="one short recording per fault: what was lost and said")
    flt.add_argument("--only", nargs="+", default=None, help="run only these faults")
    flt.add_argument("--json", action="store_true", help="print only the JSON object")
    soak = what.add_parser("soak", help="a full-rate session: drops, memory and fd growth")
    soak.add_argument("--minutes", type=_positive_float, default=10.0)
    soak.add_argument("--dir", type=Path, default=None, help="folder on the disk to record to")
    soak.add_argument("--json", action="store_true", help="print only the JSON object")
    ring = what.add_parser("ringbuffer", help="ring copy rate against numpy")
    ring.add_argument("--json", action="store_true", help="print only the JSON object")

    shots = sub.add_parser("screenshots", help="PNGs of the three GUI windows in a demo session")
    shots.add_argument(
        "--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs"
    )

    aln = sub.add_parser("align", help="align every stream onto the master clock (sync.json)")
    aln.add_argument("session", type=Path)
    aln.add_argument("--json", action="store_true", help="print the certificate as JSON")

    imp = sub.add_parser("import", help="summarise a vendor file (Curry, .cnt, .acq)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--json", action="store_true", help="print one JSON object")

    sim = sub.add_parser("simulate", help="write a simulated study (complete sessions + truth)")
    sim.add_argument("out", type=Path, help="folder for the sessions")
    sim.add_argument("--participants", type=_positive_int, default=8)
    sim.add_argument("--minutes", type=_positive_float, default=10.0, help="per session")
    sim.add_argument("--camera-size", default="64x48", help="WIDTHxHEIGHT (default 64x48)")
    sim.add_argument(
        "--responders", type=int, default=None,
        help="how many participants (the first ones) have the heart-rate response "
        "(default: every other one)",
    )  # fmt: skip
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--dropped-frames", type=int, default=0, help="places with 2 lost frames")

    def jobs_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--jobs", type=_positive_int, default=1, help="sessions in parallel")
        sp.add_argument("--scheduler", default=None, help="Dask scheduler address (a cluster)")

    feat = sub.add_parser("features", help="Table 3, Table 6 and EEG band features of sessions")
    feat.add_argument("sessions", type=Path, nargs="+")
    feat.add_argument("--annotations", type=Path, default=None, help="default: the consensus")
    feat.add_argument("--out", type=Path, required=True)
    feat.add_argument("--windows", type=_positive_float, nargs="+", default=[3, 5, 10, 15])
    feat.add_argument("--no-eeg", action="store_true", help="skip the EEG (ICA takes a while)")
    jobs_args(feat)

    con = sub.add_parser("concordance", help="ME-physiology concordance (MMME section 4.1)")
    con.add_argument("sessions", type=Path, nargs="+")
    con.add_argument("--annotations", type=Path, default=None, help="default: the consensus")
    con.add_argument("--out", type=Path, required=True)
    con.add_argument("--windows", type=_positive_float, nargs="+", default=[3, 5, 10, 15])
    con.add_argument("--seed", type=int, default=0, help="for the surrogate apex times")
    con.add_argument("--json", action="store_true", help="print the summary as JSON")
    jobs_args(con)

    rig = sub.add_parser("check-rig", help="the set-up checks on a lab, without the GUI")
    rig.add_argument("--lab", type=Path, required=True,
                     help="lab configuration (TOML), or the shipped 'simulated'")  # fmt: skip
    rig.add_argument("--seconds", type=_positive_float, default=3.0, help="data per check")
    rig.add_argument("--impedance-max", type=_positive_float, default=10.0, help="kOhm")
    rig.add_argument("--json", action="store_true", help="print one JSON object")

    ev = sub.add_parser("eval-spotting", help="spotting against the coders (MEGC, IoU >= 0.5)")
    ev.add_argument("--gt", type=Path, required=True,
                    help="annotation table (.tsv), MEGC csv, or a folder of sessions")  # fmt: skip
    ev.add_argument("--pred", type=Path, required=True, help="the same kinds of input")
    ev.add_argument("--rule", choices=("one-to-one", "gt-found"), default="one-to-one")
    ev.add_argument("--iou", type=_positive_float, default=0.5, help="match threshold")
    ev.add_argument("--fps", type=_positive_float, default=None,
                    help="fps of csv input without a type column (ME/MaE by duration)")  # fmt: skip
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    from mmmelab.spotcli import add_parsers as spot_parsers

    spot_parsers(sub, what, _positive_float)
    from mmmelab.codingcli import add_parsers as coding_parsers

    coding_parsers(sub, what, _positive_float)
    from mmmelab.recognitioncli import add_parsers as recognition_parsers

    recognition_parsers(sub, what, _positive_float)
    from mmmelab.exportcli import add_parsers as export_parsers

    export_parsers(sub, what)

    chk = sub.add_parser("check", help="integrity check of a session folder")
    chk.add_argument("session", type=Path)
    chk.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _session_number(text: str) -> int:
    from mmmelab.participant import MAX_SESSION

    value = _whole(text)
    if not 1 <= value <= MAX_SESSION:
        raise argparse.ArgumentTypeError(f"{value}: use a session number from 1 to {MAX_SESSION}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _bench(args: argparse.Namespace) -> int:
    from mmmelab import bench

    if args.bench == "camera":
        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        if args.volumes:
            from mmmelab.volumebench import bench_volumes

            folders = [Path(v) for v in args.volumes.split(",") if v]
            result = bench_volumes(folders, args.seconds, bench.progress_to_stderr)
        else:
            result = bench.bench_camera(args.seconds, args.dir, bench.progress_to_stderr)
    elif args.bench == "sync":
        result = bench.bench_sync(args.minutes, bench.progress_to_stderr)
    elif args.bench == "gui":
        from mmmelab.gui.devtools.bench import bench_gui

        result = bench_gui(args.seconds, bench.progress_to_stderr)
    elif args.bench == "analysis":
        from mmmelab.study import bench_analysis

        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        result = bench_analysis(args.minutes, args.dir)
    elif args.bench == "faults":
        from mmmelab.faultbench import bench_faults

        result = bench_faults(bench.progress_to_stderr, args.only)
    elif args.bench == "soak":
        from mmmelab.soak import bench_soak

        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        result = bench_soak(args.minutes, args.dir, bench.progress_to_stderr)
    elif args.bench == "recognition":
        from mmmelab.recognitionbench import bench_recognition

        if args.participants < 3:
            raise LabError(f"--participants {args.participants}: LOSO needs three or more")
        result = bench_recognition(args.participants, args.minutes, args.scale, args.eeg_scale,
                                   args.dir, args.deep, bench.progress_to_stderr)  # fmt: skip
    elif args.bench == "export":
        from mmmelab.exportbench import bench_export

        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        if args.video_minutes <= 0 or args.long_minutes <= 0:
            raise LabError("--video-minutes and --long-minutes must be positive")
        result = bench_export(args.video_minutes, args.long_minutes, args.dir, args.codec,
                              say=bench.progress_to_stderr)  # fmt: skip
    elif args.bench == "annotate":
        from mmmelab.annotatebench import bench_annotate

        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        result = bench_annotate(args.dir, bench.progress_to_stderr, args.long_minutes)
    elif args.bench == "spotting":
        from mmmelab.spotbench import bench_spotting

        if args.dir is not None and not args.dir.is_dir():
            raise LabError(f"--dir {args.dir} is not a folder")
        result = bench_spotting(args.minutes, args.dir, bench.progress_to_stderr, args.hr_from)
    else:
        result = bench.bench_ringbuffer()
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    # liblsl reads its configuration when pylsl is first imported (below, lazily).
    from importlib import resources

    os.environ.setdefault("LSLAPICFG", str(resources.files("mmmelab") / "data" / "lsl_api.cfg"))
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    from mmmelab import analysiscli, recordcli

    try:
        if args.command == "demo":
            return recordcli.demo(args)
        if args.command == "attach":
            from mmmelab.gui.app import run_attach

            return run_attach()
        if args.command == "record":
            return recordcli.record(args.lab, args.protocol, args.out, args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "import":
            return analysiscli.import_file(args)
        if args.command == "align":
            return analysiscli.align(args)
        if args.command == "simulate":
            return analysiscli.simulate(args)
        if args.command == "features":
            return analysiscli.features(args)
        if args.command == "concordance":
            return analysiscli.concordance(args)
        if args.command == "check-rig":
            return recordcli.check_rig(args)
        if args.command == "eval-spotting":
            return analysiscli.eval_spotting(args)
        if args.command in ("dataset", "recognize"):
            from mmmelab import recognitioncli

            if args.command == "dataset":
                return recognitioncli.run_dataset(args)
            return recognitioncli.run_recognize(args)
        if args.command in ("annotate", "agreement", "clip-study"):
            from mmmelab import codingcli

            run = {"annotate": codingcli.run_annotate, "agreement": codingcli.run_agreement,
                   "clip-study": codingcli.run_clip_study}[args.command]  # fmt: skip
            return run(args)
        if args.command == "export":
            from mmmelab.exportcli import run_export

            return run_export(args)
        if args.command in ("report", "consolidate"):
            from mmmelab.exportcli import run_consolidate, run_report

            return (run_report if args.command == "report" else run_consolidate)(args)
        if args.command == "spot":
            from mmmelab.spotcli import run_spot

            return run_spot(args)
        if args.command == "screenshots":
            from mmmelab.codingcli import coding_screenshots
            from mmmelab.gui.devtools.screenshots import take_screenshots

            say = lambda m: print(m, file=sys.stderr)  # noqa: E731
            for path in [*take_screenshots(args.out, say), *coding_screenshots(args.out, say)]:
                print(path)
            return EXIT_OK
        return recordcli.check(args)
    except LabError as exc:
        print(f"mmme {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        from mmmelab.extras import missing_error

        error = missing_error(exc.name, f"mmme {args.command}")
        if error is None:
            return _unexpected(args.command, exc)
        print(f"mmme {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - one line for any error, never a traceback
        return _unexpected(args.command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    """One line, never a traceback (-v shows it)."""
    logger.debug("unexpected error", exc_info=exc)
    print(
        f"mmme {command}: error: unexpected {type(exc).__name__}: "
        f"{_one_line(str(exc))} (run with -v for details; please report it)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _one_line(text: str) -> str:
    return " ".join(text.split())
