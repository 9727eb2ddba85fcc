"""``mmme features`` and ``mmme concordance``: sessions in, tables, pages and provenance out.

Every output folder holds TSV tables, a JSON summary with the provenance (package
versions, every parameter and choice, the sha256 of each input file, seeds) and,
for concordance, a self-contained HTML page with its plots.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmmelab.analysis import provenance as _provenance
from mmmelab.analysis.annotations import annotation_path
from mmmelab.analysis.physio import CHOICES, FeatureParams, PhysioParams
from mmmelab.analysis.provenance import jsonable, sha256
from mmmelab.analysis.stats import concordance as conc
from mmmelab.errors import LabError

PACKAGES = ("numpy", "scipy", "pandas", "neurokit2", "mne", "mne-icalabel", "python-picard",
            "onnxruntime", "h5py", "joblib")  # fmt: skip


def versions() -> dict[str, str]:
    return _provenance.versions(PACKAGES)


def input_hashes(session: Path, annotations: Path | None) -> dict[str, str]:
    files = [session / "session.json", session / "sync.json",
             annotations or annotation_path(session)]  # fmt: skip
    return {str(p): sha256(p) for p in files if p.exists()}


def _prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise LabError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def _write_tsv(frame: Any, path: Path) -> None:
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.6g")


def provenance(params: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    return {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(),
        "software": versions(),
        "parameters": params,
        "choices": CHOICES,
        "inputs_sha256": inputs,
    }


# ---------------------------------------------------------------- features


def _session_features(
    item: tuple[Path, Path | None, PhysioParams, FeatureParams, bool, tuple[float, ...]],
) -> dict[str, Any]:
    from mmmelab.analysis.eeg import EegParams, from_stream, window_band_features
    from mmmelab.storage import SignalStream, open_session

    path, annotations, pparams, fparams, with_eeg, windows = item
    se = conc.load_session(path, annotations, pparams)
    t3 = conc.window_rows(se, windows, surrogates=False, fparams=fparams)
    t6 = conc.table6_rows(se, fparams)
    eeg_summary: dict[str, Any] = {}
    if with_eeg:
        with open_session(path) as s:
            stream = s.streams.get("eeg")
            if isinstance(stream, SignalStream):
                result = from_stream(stream, EegParams())
                for row in t6:
                    row.update(window_band_features(result, row["start_s"], row["end_s"]))
                eeg_summary = result.summary()
            else:
                eeg_summary = {"problem": "no EEG stream"}
    return {"session": se.session, "table3": t3, "table6": t6, "eeg": eeg_summary,
            "annotations": se.annotations, "physio_problems": se.physio.problems}  # fmt: skip


def run_features(
    sessions: list[Path],
    out: Path,
    annotations: Path | None = None,
    windows: tuple[float, ...] = conc.WINDOWS_S,
    with_eeg: bool = True,
    jobs: int = 1,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Table 3 (pre/post windows) and Table 6 (10 s, + EEG band power) per session."""
    import pandas as pd

    out = _prepare_out(out)
    pparams, fparams = PhysioParams(), FeatureParams()
    items = [(Path(s), annotations, pparams, fparams, with_eeg, windows) for s in sessions]
    results = conc.run_parallel(_session_features, items, jobs, scheduler, "features")
    t3 = pd.DataFrame([r for res in results for r in res["table3"]])
    t6 = pd.DataFrame([r for res in results for r in res["table6"]])
    _write_tsv(t3, out / "table3_features.tsv")
    _write_tsv(t6, out / "table6_features.tsv")
    inputs: dict[str, str] = {}
    for s in sessions:
        inputs |= input_hashes(Path(s), annotations)
    summary = {
        "sessions": [r["session"] for r in results],
        "rows": {"table3": len(t3), "table6": len(t6)},
        "eeg": {r["session"]: r["eeg"] for r in results},
        "annotations": {r["session"]: r["annotations"] for r in results},
        "physio_problems": {r["session"]: r["physio_problems"] for r in results},
        "provenance": provenance(
            {
                "physio": pparams.to_dict(),
                "features": fparams.to_dict(),
                "windows_s": list(windows),
                "table6_window_s": 2 * conc.TABLE6_HALF_S,
                "eeg": with_eeg,
            },
            inputs,
        ),
    }
    (out / "features.json").write_text(json.dumps(summary, indent=2, default=_json))
    return summary


_json = jsonable  # the one JSON default for analysis outputs


# ---------------------------------------------------------------- concordance


def _session_concordance(item: tuple[Path, Path | None, tuple[float, ...], int]) -> dict[str, Any]:
    path, annotations, windows, seed = item
    return conc.analyse_session(path, annotations, windows, seed)


def run_concordance(
    sessions: list[Path],
    out: Path,
    annotations: Path | None = None,
    windows: tuple[float, ...] = conc.WINDOWS_S,
    seed: int = 0,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Section 4.1 over ``sessions`` (events pooled), with the surrogate control and plots."""
    import pandas as pd

    from mmmelab.analysis.report import concordance_page, locked_figure, p_figure

    out = _prepare_out(out)
    items = [(Path(s), annotations, tuple(windows), seed) for s in sessions]
    results = conc.run_parallel(_session_concordance, items, jobs, scheduler, "concordance")
    rows = pd.DataFrame([r for res in results for r in res["rows"]])
    if not len(rows):
        raise LabError("no micro-expression in the annotation files of these sessions")
    table = conc.concordance_table(rows)
    _write_tsv(rows, out / "windows.tsv")
    _write_tsv(table, out / "concordance.tsv")
    control = []
    for d_s in windows:
        sur = table[(table["source"] == "surrogate") & (table["D_s"] == d_s)]["p"].dropna()
        mep = table[(table["source"] == "ME") & (table["D_s"] == d_s)]["p"].dropna()
        control.append(
            {
                "D_s": d_s,
                "tests": int(len(sur)),
                "share_p05": float((sur < 0.05).mean()) if len(sur) else float("nan"),
                "me_share_p05": float((mep < 0.05).mean()) if len(mep) else float("nan"),
            }
        )
    locked = conc.locked_summary([r["traces"] for r in results])
    inputs: dict[str, str] = {}
    for s in sessions:
        inputs |= input_hashes(Path(s), annotations)
    summary = {
        "sessions": [r["session"] for r in results],
        "subjects": [r["subject"] for r in results],
        "events": {r["session"]: r["n_events"] for r in results},
        "exclusions": conc.exclusion_counts(rows),
        "control": control,
        "significant_p05": table[(table["source"] == "ME") & (table["p"] < 0.05)][
            ["D_s", "feature", "t", "p", "q_bh"]
        ].to_dict("records"),
        "annotations": {r["session"]: r["annotations"] for r in results},
        "physio_problems": {r["session"]: r["physio_problems"] for r in results},
        "simulation_hr_response": {r["session"]: r["truth_hr_response"] for r in results},
        "provenance": provenance(
            {
                "windows_s": list(windows),
                "pre": "[apex - D, apex)",
                "post": "[apex, apex + D)",
                "exclusion": "an ME whose epoch [apex - D, apex + D) overlaps another ME",
                "test": "scipy.stats.ttest_rel(pre, post) on complete pairs",
                "correction": "Benjamini-Hochberg over every feature x window (per source)",
                "surrogates": "matched count per trial, inside the clip, epochs free of "
                "expressions; numpy default_rng([seed, crc32(session)])",
                "seed": seed,
                "physio": PhysioParams().to_dict(),
                "features": FeatureParams().to_dict(),
            },
            inputs,
        ),
    }
    (out / "concordance.json").write_text(json.dumps(summary, indent=2, default=_json))
    page = concordance_page(
        table,
        summary,
        locked_figure(locked, "Around the ME apex"),
        p_figure(table),
        summary["provenance"],
    )
    (out / "concordance.html").write_text(page, encoding="utf-8")
    if progress:
        progress(f"wrote {out / 'concordance.html'}")
    return summary
