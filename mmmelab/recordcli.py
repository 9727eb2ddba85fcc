"""The recording commands: ``mmme record`` (headless), ``mmme demo`` (the GUI when
there is a display, else headless) and ``mmme check``.

A headless recording runs in the session service, as the GUI's does
(:mod:`mmmelab.acquisition.headless`); SIGINT, SIGTERM and SIGHUP stop it and save
the session (exit 128 + the signal).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmmelab.errors import LabError
from mmmelab.streams import ConsentLevel, SyncState

if TYPE_CHECKING:
    from mmmelab.acquisition.messages import PhaseInfo
    from mmmelab.acquisition.telemetry import EngineTelemetry

EXIT_OK, EXIT_NOT_OK = 0, 1


def progress(
    started: float, telemetry: Callable[[], EngineTelemetry]
) -> Callable[[PhaseInfo], None]:
    """A phase listener printing a line per phase: the elapsed time, the trial, the
    camera's health and each stream's live sync (stderr)."""

    def show(info: PhaseInfo) -> None:
        elapsed = time.monotonic() - started
        phase = info.phase
        what = ""
        if info.index >= 0:
            block = "practice" if info.practice else "trial"
            what = f"{block} {info.index + 1}  {info.clip_id}"
        tel = telemetry()
        cam = tel.camera
        health = ""
        if cam is not None and cam.fps:
            health = (
                f"  | camera {cam.fps:.0f} fps, ring {cam.ring_fill:.0%}, writer "
                f"{cam.writer_mb_s:.0f} MB/s, dropped {cam.dropped}, disk full in "
                f"{cam.time_to_full_s / 60:.0f} min"
            )
        say(f"[{elapsed:7.1f} s] {phase.value:<10} {what:<24}{health}")
        volumes = cam.volumes if cam is not None else ()
        if len(volumes) > 1:
            each = [
                f"{v.volume} {v.writer_mb_s:.0f} MB/s, full in "
                + ("-" if v.time_to_full_s is None else f"{v.time_to_full_s / 60:.0f} min")
                if v.in_stripe
                else f"{v.volume} out"
                for v in volumes
                if v.writer_mb_s is not None  # the first second has no rate yet
            ]
            if each:
                say(f"            volumes: {'; '.join(each)}")
        if cam is not None and cam.warning:
            say(f"            WARNING: {cam.warning}")
        if tel.sync:
            parts = [
                f"{n} {h.residual_ms:.2f} ms" if h.state == SyncState.OK else f"{n} {h.state}"
                for n, h in tel.sync.items()
            ]
            say(f"            sync: {', '.join(parts)}")

    return show


def say(line: str) -> None:
    """A progress line on stderr (stdout keeps the summary)."""
    print(line, file=sys.stderr, flush=True)


def record(lab_path: Path, protocol_path: Path, out: Path | None, args: argparse.Namespace) -> int:
    from mmmelab.config import load_lab
    from mmmelab.participant import ParticipantInfo, check_participant_id
    from mmmelab.protocol import load_protocol

    lab = load_lab(lab_path)
    protocol = load_protocol(protocol_path)
    participant = ParticipantInfo(
        check_participant_id(args.participant, lab.participant_pattern),
        args.session,
        ConsentLevel(args.consent),
        args.notes,
    )
    from mmmelab.storage.sessionwriter import check_output_root

    check_output_root(out if out is not None else lab.data_root)  # before anything else
    simulated = lab.simulated_devices()
    if simulated:
        from mmmelab.acquisition.simulation import require_sim

        require_sim(f"the simulated lab ({', '.join(simulated)})")
        say(f"*** SIMULATED DEVICES: {', '.join(simulated)} - this is not a real recording ***")
    from mmmelab.acquisition.headless import HEADLESS_ORPHAN_S, HeadlessConsole
    from mmmelab.acquisition.messages import Setup

    setup = Setup(lab, protocol, out_root=out, run_checks=False,
                  orphan_timeout_s=HEADLESS_ORPHAN_S)  # fmt: skip
    console = HeadlessConsole(setup)  # the session service, in a process of its own
    try:
        say(f"connecting devices ({lab.name}) ...")
        console.connect()
        with GracefulStop() as stop_signal:
            console.start(participant, simulate_participant=True)
            folder = console.folder
            say(
                f"recording {protocol.name!r}: {len(protocol.practice)} practice + "
                f"{len(protocol.trial_order)} trials into {folder}  (Ctrl-C stops and saves)"
            )

            def stopping() -> None:
                stop_signal.saving = True
                say(f"{stop_signal.name}: stopping and saving ...")

            show = progress(time.monotonic(), console.current_telemetry)
            result = console.follow(show, stop_signal.requested, stopping)
    finally:
        console.close()
    folder, stop_s = result.folder, result.stop_s
    if result.failure is not None:
        say(f"SESSION FAILED: {result.failure}")
    if folder is None:
        raise LabError(f"the session was not saved ({result.status})")
    if stop_signal.name:
        print(f"session saved ({result.status}) in {stop_s:.2f} s: {folder}")
        return 128 + stop_signal.signum
    from mmmelab.analysis.alignment import align_session, summary_lines
    from mmmelab.analysis.check import check_session

    report = check_session(folder)
    print_summary(report, stop_s)
    print("alignment (sync.json):")
    print("\n".join(summary_lines(align_session(folder))))
    return EXIT_OK if report["ok"] else EXIT_NOT_OK


class GracefulStop:
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

    def __enter__(self) -> GracefulStop:
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def print_summary(report: dict[str, Any], stop_s: float) -> None:
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


def demo(args: argparse.Namespace) -> int:
    from mmmelab.config import shipped

    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if has_display and not args.headless:
        from mmmelab.acquisition.simulation import require_sim
        from mmmelab.config import load_lab
        from mmmelab.gui.app import run_gui
        from mmmelab.participant import check_participant_id
        from mmmelab.protocol import load_protocol

        lab = load_lab(shipped("labs", "simulated"))
        pid = check_participant_id(args.participant, lab.participant_pattern)
        require_sim("the demo's simulated lab")
        print("opening the experimenter console on the simulated lab", file=sys.stderr)
        return run_gui(lab, load_protocol(shipped("protocols", "quick")), args.out, pid)
    if not args.headless:
        print("no display (DISPLAY is not set): recording headless", file=sys.stderr)
    return record(shipped("labs", "simulated"), shipped("protocols", "quick"), args.out, args)


def check(args: argparse.Namespace) -> int:
    from mmmelab.analysis.check import check_session

    report = check_session(args.session)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_summary(report, float("nan"))
    return EXIT_OK if report["ok"] else EXIT_NOT_OK


def lab_file(path: Path) -> Path:
    """A lab file, or the name of a shipped lab (``simulated``) when no such file exists."""
    from mmmelab.config import shipped

    if not path.exists() and path.suffix == "" and shipped("labs", path.name).exists():
        return shipped("labs", path.name)
    return path


def check_rig(args: argparse.Namespace) -> int:
    """Connect the lab, run every set-up check, disconnect; exit 0 only when no check
    is red (amber ones are shown and passed)."""
    import tempfile

    from mmmelab.acquisition.engine import SessionEngine
    from mmmelab.acquisition.rigcheck import run_rig_check
    from mmmelab.config import load_lab, shipped
    from mmmelab.participant import ParticipantInfo
    from mmmelab.protocol import load_protocol

    lab = load_lab(lab_file(args.lab))
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
