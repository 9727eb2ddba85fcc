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
import signal
import sys
import time
from pathlib import Path
from typing import Any

from mmmelab import __version__
from mmmelab.errors import LabError
from mmmelab.streams import ConsentLevel, SyncState

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


def _simulate(args: argparse.Namespace) -> int:
    from mmmelab.acquisition.study import StudyPlan
    from mmmelab.study import simulate

    try:
        width, height = (int(v) for v in args.camera_size.lower().split("x"))
    except ValueError:
        raise LabError(
            f"--camera-size {args.camera_size!r}: use WIDTHxHEIGHT, e.g. 64x48"
        ) from None
    if not (16 <= width <= 2040 and 16 <= height <= 1080) or width % 2 or height % 2:
        raise LabError(f"--camera-size {args.camera_size}: even sizes 16-2040 x 16-1080 only")
    plan = StudyPlan(
        participants=args.participants,
        minutes=args.minutes,
        camera_width=width,
        camera_height=height,
        responders=args.responders,
        seed=args.seed,
        dropped_frames=args.dropped_frames,
    )
    for folder in simulate(args.out, plan):
        print(folder)
    return EXIT_OK


def _features(args: argparse.Namespace) -> int:
    from mmmelab.analysis.pipeline import run_features

    summary = run_features(
        args.sessions, args.out, args.annotations, tuple(args.windows), not args.no_eeg,
        args.jobs, args.scheduler,
    )  # fmt: skip
    print(f"features of {len(summary['sessions'])} session(s): {summary['rows']} -> {args.out}")
    return EXIT_OK


def _concordance(args: argparse.Namespace) -> int:
    from mmmelab.analysis.pipeline import run_concordance
    from mmmelab.study import as_json, print_concordance

    summary = run_concordance(
        args.sessions, args.out, args.annotations, tuple(args.windows), args.seed, args.jobs,
        args.scheduler,
    )  # fmt: skip
    if args.json:
        print(as_json({k: v for k, v in summary.items() if k != "provenance"}))
    else:
        print_concordance(summary, args.out)
    return EXIT_OK


def _progress(started: float, engine: Any) -> Any:
    from mmmelab.acquisition.paradigm import Phase

    def show(phase: Phase, trial: Any) -> None:
        elapsed = time.monotonic() - started
        what = ""
        if trial is not None:
            block = "practice" if trial.practice else "trial"
            what = f"{block} {trial.index + 1}  {trial.clip.id}"
        telemetry = engine.telemetry()
        cam = telemetry.get("camera", {})
        health = ""
        if cam.get("fps"):
            health = (
                f"  | camera {cam['fps']:.0f} fps, ring {cam['ring_fill']:.0%}, writer "
                f"{cam['writer_mb_s']:.0f} MB/s, dropped {cam['dropped']}, disk full in "
                f"{cam['time_to_full_s'] / 60:.0f} min"
            )
        print(
            f"[{elapsed:7.1f} s] {phase.value:<10} {what:<24}{health}", file=sys.stderr, flush=True
        )
        volumes = cam.get("volumes") or []
        if len(volumes) > 1:
            each = [
                f"{v['volume']} {v['writer_mb_s']:.0f} MB/s, full in "
                + ("-" if v["time_to_full_s"] is None else f"{v['time_to_full_s'] / 60:.0f} min")
                if v["in_stripe"]
                else f"{v['volume']} out"
                for v in volumes
                if v["writer_mb_s"] is not None  # the first second has no rate yet
            ]
            if each:
                print(f"            volumes: {'; '.join(each)}", file=sys.stderr, flush=True)
        if cam.get("warning"):
            print(f"            WARNING: {cam['warning']}", file=sys.stderr, flush=True)
        sync = telemetry.get("sync", {})
        if sync:
            parts = [
                f"{n} {h['residual_ms']:.2f} ms"
                if h["state"] == SyncState.OK
                else f"{n} {h['state']}"
                for n, h in sync.items()
            ]
            print(f"            sync: {', '.join(parts)}", file=sys.stderr, flush=True)

    return show


def _record(lab_path: Path, protocol_path: Path, out: Path | None, args: argparse.Namespace) -> int:
    from mmmelab.acquisition.engine import ParticipantInfo, SessionEngine
    from mmmelab.config import load_lab
    from mmmelab.participant import check_participant_id
    from mmmelab.protocol import load_protocol

    lab = load_lab(lab_path)
    protocol = load_protocol(protocol_path)
    participant = ParticipantInfo(
        check_participant_id(args.participant, lab.participant_pattern),
        args.session,
        ConsentLevel(args.consent),
        args.notes,
    )
    from mmmelab.storage.session import check_output_root

    check_output_root(out if out is not None else lab.data_root)  # before anything else
    simulated = lab.simulated_devices()
    if simulated:
        print(
            f"*** SIMULATED DEVICES: {', '.join(simulated)} - this is not a real recording ***",
            file=sys.stderr,
            flush=True,
        )
    with SessionEngine(lab, protocol, participant, out_root=out) as engine:
        print(f"connecting devices ({lab.name}) ...", file=sys.stderr, flush=True)
        engine.connect()
        with _GracefulStop() as stop_signal:
            folder = engine.start()
            print(
                f"recording {protocol.name!r}: {len(protocol.practice)} practice + "
                f"{len(protocol.trial_order)} trials into {folder}  (Ctrl-C stops and saves)",
                file=sys.stderr,
                flush=True,
            )
            engine.run(_progress(time.monotonic(), engine), stop_requested=stop_signal.requested)
            if stop_signal.name:
                print(f"{stop_signal.name}: stopping and saving ...", file=sys.stderr, flush=True)
            stop_signal.saving = True
            t0 = time.monotonic()
            engine.stop()
            stop_s = time.monotonic() - t0
        if engine.health.fatal is not None:
            print(f"SESSION FAILED: {engine.health.fatal}", file=sys.stderr, flush=True)
        if stop_signal.name:
            print(f"session saved ({_status(folder)}) in {stop_s:.2f} s: {folder}")
            return 128 + stop_signal.signum
    from mmmelab.analysis.alignment import align_session, summary_lines
    from mmmelab.analysis.check import check_session

    report = check_session(folder)
    _print_summary(report, stop_s)
    print("alignment (sync.json):")
    print("\n".join(summary_lines(align_session(folder))))
    return EXIT_OK if report["ok"] else EXIT_NOT_OK


class _GracefulStop:
    """While recording: SIGINT, SIGTERM and SIGHUP ask the run loop to stop and save.

    The handler only sets a flag (the engine is never interrupted mid-step); a
    signal while saving is refused with a message - the save finishes first.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.name = ""
        self.signum = 0
        self.saving = False
        self._old: dict[int, Any] = {}

    def requested(self) -> bool:
        return bool(self.name)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.saving or self.name:
            print(
                f"{signal.Signals(signum).name}: the session is being saved; "
                f"this takes a moment - please wait",
                file=sys.stderr,
                flush=True,
            )
            return
        self.name, self.signum = signal.Signals(signum).name, signum

    def __enter__(self) -> _GracefulStop:
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _status(folder: Path) -> str:
    from mmmelab.storage.manifest import read_manifest

    try:
        return str(read_manifest(folder)["status"])
    except LabError:
        return "unknown"


def _print_summary(report: dict[str, Any], stop_s: float) -> None:
    print(f"session: {report['session']}")
    print(
        f"status:  {report['status']} (stopped in {stop_s:.2f} s)"
        + (f"  SIMULATED: {', '.join(report['simulated'])}" if report["simulated"] else "")
    )
    for name, s in report["streams"].items():
        digital = f" + {s['digital_channels']} digital" if "digital_channels" in s else ""
        print(
            f"  {name:<8} {s['kind']:<8} {s['count']:>9} at {s['rate_hz']:>8.2f} Hz  "
            f"{s['channels']:>3} ch{digital}  gaps {s['gaps']}  dropped {s['dropped']}  "
            f"trigger edges {s['trigger_edges']}"
        )
    m = report["markers"]
    print(f"  markers: {m['found']}/{m['expected']} of those the protocol implies")
    st = report.get("stimulus") or {}
    if st:
        print(
            f"  stimulus: {st['presentations']} clip presentations, {st['frames_shown']} frames "
            f"shown, {st['frames_dropped']} dropped, {st['frames_repeated']} repeated"
        )
    for problem in report["problems"]:
        print(f"  problem: {problem}")
    for warning in report.get("warnings", []):
        print(f"  warning: {warning}")
    print("check:   " + ("ok" if report["ok"] else "NOT OK"))


def _demo(args: argparse.Namespace) -> int:
    from mmmelab.config import shipped

    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if has_display and not args.headless:
        from mmmelab.config import load_lab
        from mmmelab.gui.app import run_gui
        from mmmelab.participant import check_participant_id
        from mmmelab.protocol import load_protocol

        lab = load_lab(shipped("labs", "simulated"))
        pid = check_participant_id(args.participant, lab.participant_pattern)
        print("opening the experimenter console on the simulated lab", file=sys.stderr)
        return run_gui(lab, load_protocol(shipped("protocols", "quick")), args.out, pid)
    if not args.headless:
        print("no display (DISPLAY is not set): recording headless", file=sys.stderr)
    return _record(shipped("labs", "simulated"), shipped("protocols", "quick"), args.out, args)


def _check(args: argparse.Namespace) -> int:
    from mmmelab.analysis.check import check_session

    report = check_session(args.session)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_summary(report, float("nan"))
    return EXIT_OK if report["ok"] else EXIT_NOT_OK


def _align(args: argparse.Namespace) -> int:
    from mmmelab.analysis.alignment import align_session, summary_lines

    cert = align_session(args.session)
    if args.json:
        print(json.dumps(cert, indent=2))
    else:
        print(f"sync certificate written to {args.session / 'sync.json'}")
        print("\n".join(summary_lines(cert)))
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from mmmelab.analysis.importers import import_file

    summary = import_file(args.file).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"{summary['path']}: {summary['format']}, start {summary['start']}")
    for ch in summary["channels"]:
        print(f"  {ch['name']:<32} {ch['rate_hz']:>10g} Hz {ch['samples']:>9} samples {ch['unit']}")
    print(f"  {summary['events']} events: {summary['event_labels']}")
    return EXIT_OK


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
        from mmmelab.gui.bench import bench_gui

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


def _eval_spotting(args: argparse.Namespace) -> int:
    from mmmelab.analysis.spotting import evaluate, read_intervals

    if args.iou > 1:
        raise LabError(f"--iou {args.iou:g}: an IoU threshold is at most 1")
    gt, pred = read_intervals(args.gt, args.fps), read_intervals(args.pred, args.fps)
    result = evaluate(gt, pred, args.iou, args.rule)
    result["inputs"] = {"gt": str(args.gt), "pred": str(args.pred), "fps": args.fps}
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(f"rule {args.rule}, IoU >= {args.iou:g}, {result['videos']} video(s)")
    print(f"{'class':8} {'GT':>5} {'pred':>5} {'TP':>5} {'FP':>5} {'FN':>5} "
          f"{'P':>6} {'R':>6} {'F1':>6}")  # fmt: skip
    for name in ("ME", "MaE", "overall"):
        c = result[name]
        print(f"{name:8} {c['n_gt']:5d} {c['n_pred']:5d} {c['tp']:5d} {c['fp']:5d} {c['fn']:5d} "
              f"{c['precision']:6.3f} {c['recall']:6.3f} {c['f1']:6.3f}")  # fmt: skip
    apex = result["apex"]
    if apex["pairs"]:
        err = apex["apex_error_ms_median"]
        print(f"apex inside the event in {apex['apex_hit_rate']:.1%} of {apex['pairs']} matches"
              + (f"; median apex error {err:.0f} ms" if err is not None else ""))  # fmt: skip
    return EXIT_OK


def _lab_file(path: Path) -> Path:
    """A lab file, or the name of a shipped lab (``simulated``) when no such file exists."""
    from mmmelab.config import shipped

    if not path.exists() and path.suffix == "" and shipped("labs", path.name).exists():
        return shipped("labs", path.name)
    return path


def _check_rig(args: argparse.Namespace) -> int:
    """Connect the lab, run every set-up check, disconnect; exit 0 only when no check
    is red (amber ones are shown and passed)."""
    import tempfile

    from mmmelab.acquisition.engine import ParticipantInfo, SessionEngine
    from mmmelab.acquisition.rigcheck import run_rig_check
    from mmmelab.config import load_lab, shipped
    from mmmelab.protocol import load_protocol

    lab = load_lab(_lab_file(args.lab))
    protocol = load_protocol(shipped("protocols", "quick"))
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    with (
        tempfile.TemporaryDirectory(prefix="mmme-check-rig-") as tmp,
        SessionEngine(lab, protocol, ParticipantInfo("P0"), out_root=Path(tmp)) as engine,
    ):
        say(f"connecting devices ({lab.name}) ...")
        engine.connect()
        record = run_rig_check(engine, args.seconds, args.impedance_max, say)
    passed = record["verdict"] != "red"  # amber: passed, with a caution shown
    if args.json:
        print(json.dumps(record | {"passed": passed}))
    else:
        colour = {"green": "ok  ", "amber": "WARN", "red": "FAIL"}
        for c in record["checks"]:
            print(f"{colour[c['verdict']]} {c['name']:<18} {c['reason']}")
        print(f"set-up check: {record['verdict']} ({record['duration_s']:g} s)")
    return EXIT_OK if passed else EXIT_NOT_OK


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
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "attach":
            from mmmelab.gui.app import run_attach

            return run_attach()
        if args.command == "record":
            return _record(args.lab, args.protocol, args.out, args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "import":
            return _import(args)
        if args.command == "align":
            return _align(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "features":
            return _features(args)
        if args.command == "concordance":
            return _concordance(args)
        if args.command == "check-rig":
            return _check_rig(args)
        if args.command == "eval-spotting":
            return _eval_spotting(args)
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
            from mmmelab.gui.screenshots import take_screenshots

            say = lambda m: print(m, file=sys.stderr)  # noqa: E731
            for path in [*take_screenshots(args.out, say), *coding_screenshots(args.out, say)]:
                print(path)
            return EXIT_OK
        return _check(args)
    except LabError as exc:
        print(f"mmme {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, never a traceback (-v shows it)
        logger.debug("unexpected error", exc_info=True)
        print(
            f"mmme {args.command}: error: unexpected {type(exc).__name__}: "
            f"{_one_line(str(exc))} (run with -v for details; please report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _one_line(text: str) -> str:
    return " ".join(text.split())
