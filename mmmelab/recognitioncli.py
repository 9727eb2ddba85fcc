"""``mmme dataset build`` and ``mmme recognize``: samples from coded sessions, and the
classical per-modality classifiers with the paper's weighted vote over a protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmmelab.errors import LabError
from mmmelab.progress import LazyBar


def add_parsers(sub: Any, bench: Any, positive: Any) -> None:
    br = bench.add_parser("recognition", help="the recognisers on a simulated study")
    br.add_argument("--participants", type=int, default=10)
    br.add_argument("--minutes", type=positive, default=5.0, help="length of each session")
    br.add_argument("--deep", action="store_true",
                    help="also LOSO with HTNet on the face (minutes more)")  # fmt: skip
    br.add_argument("--scale", type=positive, default=3.0,
                    help="size of the simulated emotion-specific physiology")  # fmt: skip
    br.add_argument("--eeg-scale", type=positive, default=0.8,
                    help="size of the simulated emotion-specific EEG")  # fmt: skip
    br.add_argument("--dir", type=Path, default=None, help="folder for the temporary study")
    br.add_argument("--json", action="store_true", help="print only the JSON object")
    ds = sub.add_parser("dataset", help="samples for recognition from coded sessions")
    what = ds.add_subparsers(dest="dataset_command", metavar="build|import", required=True)
    b = what.add_parser("build", help="one sample per consensus annotation, in DS/dataset.h5")
    b.add_argument("sessions", type=Path, nargs="+")
    b.add_argument("--out", type=Path, required=True, help="the dataset folder")
    b.add_argument("--no-eeg", action="store_true", help="leave the EEG out")
    b.add_argument("--no-face", action="store_true", help="leave the face crops out")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    im = what.add_parser("import", help="a public ME dataset's released folders and sheet")
    im.add_argument("--layout", choices=("casme2", "samm", "casme3"), required=True)
    im.add_argument("--root", type=Path, required=True, help="the dataset's top folder")
    im.add_argument("--sheet", type=Path, required=True, help="its coding sheet (.xlsx, .csv)")
    im.add_argument("--out", type=Path, required=True, help="the dataset folder to write")
    im.add_argument("--json", action="store_true", help="print the summary as JSON")
    rc = sub.add_parser("recognize", help="per-modality classifiers and their weighted vote")
    rc.add_argument("dataset", type=Path)
    rc.add_argument("--out", type=Path, required=True)
    rc.add_argument("--protocol", choices=("loso", "kfold"), default="loso")
    rc.add_argument("--k", type=int, default=10, help="folds of --protocol kfold (DFME: 10)")
    rc.add_argument("--modalities", default="face,eeg,ecg,ppg,rsp,skt,eda")
    rc.add_argument("--classes", type=int, choices=(3, 7), default=7)
    rc.add_argument("--weight", choices=("recall", "precision"), default="recall",
                    help="the vote's p_ij: per-class recall (paper_spec) or precision")  # fmt: skip
    rc.add_argument("--seed", type=int, default=0)
    rc.add_argument("--inner-k", type=int, default=3,
                    help="inner subject folds (settings, epochs, vote weights)")  # fmt: skip
    rc.add_argument("--face-model", choices=("mdmo", "htnet", "tsfmicro"), default="mdmo",
                    help="the face's classifier: an SVM on the MDMO-like descriptor, or a deep "
                         "model (the [models] extra)")  # fmt: skip
    rc.add_argument("--eeg-model", choices=("bandpower", "eegnet"), default="bandpower",
                    help="the EEG's classifier: an SVM on band power, or EEGNet")  # fmt: skip
    rc.add_argument("--tsf-fusion", choices=("late", "early", "t2s", "s2t"), default="late",
                    help="TSFmicro's branch fusion (the paper's best: late)")  # fmt: skip
    rc.add_argument("--epochs", type=_count, default=30,
                    help="deep models: most epochs; inner CV picks the number")  # fmt: skip
    rc.add_argument("--batch", type=_count, default=32)
    rc.add_argument("--lr", type=float, default=8e-4)
    rc.add_argument("--size", choices=("cpu", "paper"), default="cpu",
                    help="deep model sizes: small enough for a CPU, or the papers'")  # fmt: skip
    rc.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    rc.add_argument("--json", action="store_true", help="print the table as JSON")


def run_dataset(args: argparse.Namespace) -> int:
    if args.dataset_command == "import":
        return _import(args)
    from mmmelab.analysis.recognition.dataset import build_dataset
    from mmmelab.storage.manifest import MANIFEST

    for s in args.sessions:
        if not (s / MANIFEST).is_file():
            raise LabError(f"{s}: not a session folder (no {MANIFEST})")
    with LazyBar("session") as bar:
        summary = build_dataset(args.sessions, args.out, not args.no_eeg, not args.no_face, bar)
        bar(len(args.sessions), len(args.sessions))
    brief = {k: summary[k] for k in ("samples", "subjects", "params")} | {
        "notes": {k: v["notes"] for k, v in summary["sessions"].items() if v["notes"]}
    }
    if args.json:
        print(json.dumps(brief, default=str))
    else:
        print(f"{summary['samples']} samples of {len(summary['subjects'])} subjects -> "
              f"{args.out / 'dataset.h5'}")  # fmt: skip
        for k, v in brief["notes"].items():
            print(f"note: {k}: {'; '.join(v)}")
    return 0


def run_recognize(args: argparse.Namespace) -> int:
    from mmmelab.analysis.recognition.run import recognize
    from mmmelab.analysis.recognition.training import TrainSettings

    mods = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if args.inner_k < 2:
        raise LabError(f"--inner-k {args.inner_k}: at least 2")
    with LazyBar("fold", "folds") as bar, LazyBar("epoch", "  epochs", position=1) as epochs:
        train = TrainSettings(epochs=args.epochs, batch=args.batch, lr=args.lr,
                              size=args.size, device=args.device, fusion=args.tsf_fusion,
                              epoch_progress=epochs)  # fmt: skip
        report = recognize(args.dataset, args.out, args.protocol, args.k, mods, args.classes,
                           args.weight, args.seed, args.inner_k, bar, args.face_model,
                           args.eeg_model, train)  # fmt: skip
    if args.json:
        print(json.dumps({"protocol": report["protocol"], "classes": report["classes"],
                          "chance_uar": report["chance_uar"], "table": report["table"]},
                         default=str))  # fmt: skip
        return 0
    print(f"{report['protocol']}, {len(report['folds'])} folds, {len(report['classes'])} classes"
          f" (chance UAR {report['chance_uar']:.3f}); pooled / per-fold mean")  # fmt: skip
    for r in report["table"]:
        cells = "  ".join(f"{m} {_f(r[m + '_pooled'])}/{_f(r[m + '_mean'])}"
                          for m in ("accuracy", "uf1", "uar"))  # fmt: skip
        print(f"  {r['modality']:<7} {cells}")
    print(args.out / "recognition.json")
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _import(args: argparse.Namespace) -> int:
    from mmmelab.analysis.recognition.importer import import_dataset

    with LazyBar("sample") as bar:
        summary = import_dataset(args.layout, args.root, args.sheet, args.out, bar)
    brief = {k: summary[k] for k in ("samples", "subjects", "notes", "source")}
    if args.json:
        print(json.dumps(brief, default=str))
    else:
        print(f"{summary['samples']} samples of {len(summary['subjects'])} subjects -> "
              f"{args.out / 'dataset.h5'}")  # fmt: skip
        for n in summary["notes"]:
            print(f"note: {n}")
    return 0
