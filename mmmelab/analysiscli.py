"""The analysis commands: ``mmme simulate``, ``features``, ``concordance``, ``align``,
``import`` and ``eval-spotting``."""

from __future__ import annotations

import argparse
import json

from mmmelab.errors import LabError

EXIT_OK = 0


def simulate(args: argparse.Namespace) -> int:
    from mmmelab.acquisition.simulation import require_sim
    from mmmelab.acquisition.study import StudyPlan
    from mmmelab.study import simulate

    require_sim("mmme simulate")
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


def features(args: argparse.Namespace) -> int:
    from mmmelab.analysis.pipeline import run_features

    summary = run_features(
        args.sessions, args.out, args.annotations, tuple(args.windows), not args.no_eeg,
        args.jobs, args.scheduler,
    )  # fmt: skip
    print(f"features of {len(summary['sessions'])} session(s): {summary['rows']} -> {args.out}")
    return EXIT_OK


def concordance(args: argparse.Namespace) -> int:
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


def align(args: argparse.Namespace) -> int:
    from mmmelab.analysis.alignment import align_session, summary_lines

    cert = align_session(args.session)
    if args.json:
        print(json.dumps(cert, indent=2))
    else:
        print(f"sync certificate written to {args.session / 'sync.json'}")
        print("\n".join(summary_lines(cert)))
    return EXIT_OK


def import_file(args: argparse.Namespace) -> int:
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


def eval_spotting(args: argparse.Namespace) -> int:
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
