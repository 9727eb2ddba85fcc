"""``mmme annotate`` (the coding window, or with ``--adjudicate`` the adjudication
window), ``mmme agreement`` (the coders' agreement, per session and pooled),
``mmme clip-study`` (the raters' validation of the clips) and ``mmme bench annotate``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError


def add_parsers(sub: Any, bench: Any, positive: Any) -> None:
    ba = bench.add_parser("annotate", help="the coding window: open, seek, step, play")
    ba.add_argument("--dir", type=Path, default=None, help="folder for the temporary sessions")
    ba.add_argument("--long-minutes", type=positive, default=60.0,
                    help="length of the session the opening is measured on")  # fmt: skip
    ba.add_argument("--json", action="store_true", help="print only the JSON object")
    an = sub.add_parser("annotate", help="code a session's micro-expressions frame by frame")
    an.add_argument("session", type=Path)
    an.add_argument("--coder", required=True, help="your coder name (initials or an id)")
    an.add_argument(
        "--spots",
        type=Path,
        default=None,
        help="folder written by mmme spot: its candidates and curves as tracks",
    )
    an.add_argument("--eeg", default="Fz,Cz,Pz", help="EEG channels shown (comma-separated)")
    an.add_argument(
        "--adjudicate",
        action="store_true",
        help="walk the disputes of the submitted passes and write the consensus",
    )
    cs = sub.add_parser("clip-study", help="evaluators rate candidate clips; choose the best")
    cs.add_argument("--clips", type=Path, required=True, help="folder of candidate clips")
    who = cs.add_mutually_exclusive_group(required=True)
    who.add_argument("--rater", help="run one evaluator's pass (resumes where they stopped)")
    who.add_argument(
        "--summarise",
        action="store_true",
        help="alpha, ICC and kappa over the rater files; write the protocol",
    )
    cs.add_argument(
        "--ratings", type=Path, default=None, help="rater files (default CLIPS/ratings)"
    )
    cs.add_argument("--seed", type=int, default=0, help="study seed (each rater's clip order)")
    cs.add_argument("--rating-limit", type=positive, default=60.0, help="seconds to answer")
    cs.add_argument("--best", type=int, default=6, help="clips per emotion in the protocol")
    cs.add_argument("--protocol", type=Path, default=None,
                    help="protocol file to write (default CLIPS/validated.toml)")  # fmt: skip
    cs.add_argument("--name", default="validated", help="the protocol's name")
    cs.add_argument("--json", action="store_true", help="print the summary as JSON")
    ag = sub.add_parser("agreement", help="agreement of the coders' submitted passes")
    ag.add_argument("sessions", type=Path, nargs="+")
    ag.add_argument("--threshold", type=float, default=0.5, help="IoU to match two events")
    ag.add_argument("--sided", action="store_true", help="AU agreement counts L/R apart")
    ag.add_argument("--all", action="store_true",
                    help="every coder file, submitted or not (says which were not)")  # fmt: skip
    ag.add_argument("--json", action="store_true", help="print one JSON object")


def run_annotate(args: argparse.Namespace) -> int:
    from mmmelab.analysis.annotations.coding import check_coder

    check_coder(args.coder)
    _session_folder(args.session)
    eeg = tuple(c.strip() for c in args.eeg.split(",") if c.strip())
    if args.adjudicate:
        from mmmelab.gui.adjudicate import run_adjudicate

        return run_adjudicate(args.session, args.coder)
    from mmmelab.gui.annotate import run_annotate as run

    return run(args.session, args.coder, args.spots, eeg)


def _session_folder(path: Path) -> None:
    from mmmelab.storage.manifest import MANIFEST

    if not (path / MANIFEST).is_file():
        raise LabError(f"{path}: not a session folder (no {MANIFEST})")


def _tables(session: Path, every: bool) -> tuple[dict[str, Any], list[str]]:
    from mmmelab.analysis.annotations import read_table
    from mmmelab.analysis.annotations.coding import submitted_coders

    folder = session / "annotations"
    _session_folder(session)
    files = sorted(folder.glob("coder-*.tsv"))
    names = [p.stem[len("coder-") :] for p in files if not p.stem.startswith("coder-auto")]
    done = set(submitted_coders(session))
    chosen = names if every else [n for n in names if n in done]
    not_submitted = [n for n in names if n not in done]
    return {n: read_table(folder / f"coder-{n}.tsv") for n in chosen}, not_submitted


def run_agreement(args: argparse.Namespace) -> int:
    from mmmelab.analysis.annotations import AnnotationTable
    from mmmelab.analysis.annotations.agreement import agreement

    per_session = {}
    pooled: dict[str, list[Any]] = {}
    fps = set()
    shift = 0
    notes = []
    for session in args.sessions:
        tables, open_passes = _tables(session, args.all)
        if open_passes:
            notes.append(f"{session.name}: not submitted: {', '.join(open_passes)}"
                         + ("" if args.all else " (left out; --all takes them)"))  # fmt: skip
        if len(tables) < 2:
            raise LabError(f"{session}: agreement needs two or more coders' passes; found "
                           f"{', '.join(tables) or 'none'}")  # fmt: skip
        per_session[session.name] = agreement(tables, args.threshold, args.sided)
        fps |= {t.fps for t in tables.values()}
        # pooled over sessions: each session's events moved past the last one's
        last = max((a.offset for t in tables.values() for a in t.annotations), default=0)
        for c, t in tables.items():
            moved = [replace(a, onset=a.onset + shift, offset=a.offset + shift,
                             apex=None if a.apex is None else a.apex + shift)
                     for a in t.annotations]  # fmt: skip
            pooled.setdefault(c, []).extend(moved)
        shift += last + 10**6
    if len(fps) != 1:
        raise LabError(f"the sessions' coder files have different frame rates {sorted(fps)}")
    rate = fps.pop()
    out: dict[str, Any] = {"sessions": per_session, "notes": notes}
    if len(args.sessions) > 1:
        both = {c: AnnotationTable(v, rate, c) for c, v in pooled.items()}
        out["pooled"] = agreement(both, args.threshold, args.sided)
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    for name, rep in per_session.items():
        _print_report(name, rep)
    if "pooled" in out:
        _print_report(f"all {len(args.sessions)} sessions", out["pooled"])
    for n in notes:
        print(f"note: {n}")
    return 0


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _print_report(name: str, rep: dict[str, Any]) -> None:
    print(f"{name}: coders {', '.join(rep['coders'])}; {rep['groups']} events, "
          f"{rep['marked_by_all']} marked by all")  # fmt: skip
    for p in rep["pairs"]:
        a, b = p["coders"]
        kf = p["keyframes"]
        on = kf["onset"]
        k = p["emotion_cohen_kappa"]
        print(f"  {a} / {b}: matched {p['matched']} of {p['events'][0]} / {p['events'][1]}; "
              f"AU r {_fmt(p['au']['pooled'])} (pooled), {_fmt(p['au']['per_event_mean'])} "
              f"(per event); emotion kappa {_fmt(k['value'])} ({k['band']}); onset "
              f"|d| {_fmt(on['mean_ms'] if on else None, '.1f')} ms")  # fmt: skip
    fk = rep["emotion_fleiss_kappa"]
    print(f"  Fleiss' kappa {_fmt(fk.get('value'))} ({fk.get('band', fk.get('note', ''))})")


def coding_screenshots(out: Path, say: Any = print) -> list[Path]:
    """A simulated session (1024x544, the realistic face), spotted, with one coder's
    events, in the coding window: ``docs/screenshots/annotate.png``."""
    import shutil
    import tempfile

    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.analysis.annotations.coding import CodingSession
    from mmmelab.analysis.spotting.run import spot_session, write_outputs
    from mmmelab.analysis.spotting.spotter import SpotParams
    from mmmelab.gui.devtools.screenshots import shoot_coding as shoot

    work = Path(tempfile.mkdtemp(prefix="mmme-coding-shots-"))
    try:
        proto = short_trials(15.0, 3.0)
        plan = StudyPlan(participants=1, minutes=0.6, camera_width=1024, camera_height=544,
                         responders=1, hr_response_to=("ME", "MaE"), me_per_clip=3.0,
                         mae_per_clip=1.0, min_gap_s=4.5, seed=4)  # fmt: skip
        say("simulating a session for the coding window ...")
        folder = simulate_study(work, plan, protocol=proto)[0]
        align_session(folder)
        params = SpotParams()
        write_outputs(spot_session(folder, params), work / "spots", params, folder)
        truth = []
        with CodingSession(folder, "ann") as cs:
            from mmmelab.storage import open_session

            with open_session(folder) as s:
                truth = s.manifest["simulation_truth"]["expressions"]
            for e in truth[:2]:
                cs.mark("onset", cs.number_at(e["onset"]))
                cs.mark("apex", cs.number_at(e["apex"]))
                cs.mark("offset", cs.number_at(e["offset"]))
                cs.set_labels(aus=e.get("aus", ""), emotion=e["emotion"])
                cs.commit()
            if len(truth) > 2:
                cs.mark("onset", cs.number_at(truth[2]["onset"]))
        out.mkdir(parents=True, exist_ok=True)
        return shoot(folder, out, work / "spots")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_clip_study(args: argparse.Namespace) -> int:
    from mmmelab import clipstudy

    if args.rater is not None:
        run = clipstudy.RaterPass(args.clips, args.rater, args.ratings, args.seed)
        if not run.remaining():
            print(f"rater {args.rater}: every clip is rated ({run.path})")
            return 0
        from mmmelab.gui.clipstudy import run_clip_study as run_window

        return run_window(run, args.rating_limit)
    if args.best < 1:
        raise LabError(f"--best {args.best}: at least one clip per emotion")
    protocol = args.protocol or args.clips / "validated.toml"
    out = clipstudy.summarise(args.clips, args.ratings, args.best, protocol, args.name, args.seed)
    protocol.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    st = out["stats"]
    print(f"{out['clips']} clips, {len(out['raters'])} raters")
    for dim in ("valence", "arousal"):
        a, icc2 = st[dim]["cronbach_alpha"], st[dim]["icc"]["ICC2"]
        ci_a = f"[{_fmt(a['ci_low'])}, {_fmt(a['ci_high'])}]"
        ci_i = f"[{_fmt(icc2['ci_low'])}, {_fmt(icc2['ci_high'])}]"
        print(f"  {dim}: alpha {_fmt(a['value'])} {ci_a}; ICC(2,1) {_fmt(icc2['value'])} {ci_i}")
    fk = st["emotion"].get("fleiss_kappa", {})
    print(f"  emotion: Fleiss' kappa {_fmt(fk.get('value'))} ({st['emotion'].get('band', '')})")
    for emo, ids in out["chosen"].items():
        print(f"  {emo}: {', '.join(ids) or '(none)'}")
    if out["short_of_best"]:
        print(f"note: fewer than {args.best} clips for {', '.join(out['short_of_best'])}")
    print(out["protocol"])
    return 0
