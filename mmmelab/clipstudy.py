"""The clip validation study (MMME section 3.2): evaluators rate candidate clips, the
ratings choose the clips a protocol shows.

**A rater's pass** (``RaterPass``): every candidate clip in ``--clips DIR`` (video
files whose names are the clip ids; ``neutral.*`` and ``practice.*`` are the
protocol's own and are not rated), in an order drawn for that rater (seeded by the
study seed and the rater's name, so it is the same when the rater resumes), each
followed by the rating screen - emotion category, valence 1-9, arousal 1-9. Each
answer is written at once, atomically, to ``<ratings>/rater-<R>.tsv``; a rater who
stops resumes where they left off. An optional ``DIR/candidates.tsv`` (``id``,
``emotion``) names each clip's intended emotion.

**The summary** (``summarise``): per dimension Cronbach's alpha over the clips x
raters matrix (MMME eq. 1, raters as items) and the ICCs with 95 % CIs (ICC(2,1)
and ICC(3,1), and their k-rater means) for valence and arousal; Fleiss' kappa on
the category; per clip the consensus emotion (the most chosen, with its share),
mean and SD of valence and arousal. The protocol keeps, per emotion, the ``best``
clips (6 in the paper) whose consensus is that emotion, ranked by the share of
raters who chose it, then by mean arousal; the file it writes loads in
``mmme record`` as it is (durations measured from the files).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.errors import LabError
from mmmelab.protocol import Emotion

VIDEO_EXT = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
OWN = ("neutral", "practice")
COLUMNS = ("clip", "position", "emotion", "valence", "arousal", "response_s", "rated_at")
_ID = re.compile(r"[A-Za-z0-9_\-]{1,32}")


@dataclass(frozen=True)
class Candidate:
    id: str
    path: Path
    intended: str = ""  # the emotion the clip was chosen to elicit, when known


def candidates(folder: Path) -> list[Candidate]:
    """The candidate clips in ``folder`` (one line of error for a bad one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabError(f"--clips {folder}: not a folder")
    intended = _intended(folder)
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in VIDEO_EXT or p.stem in OWN:
            continue
        if not _ID.fullmatch(p.stem):
            raise LabError(f"{p}: a clip id (the file name) must be 1-32 letters, digits, "
                           f"'_' or '-' (it becomes the protocol's clip id)")  # fmt: skip
        out.append(Candidate(p.stem, p, intended.get(p.stem, "")))
    if not out:
        raise LabError(f"--clips {folder}: no video files ({', '.join(VIDEO_EXT)})")
    return out


def _intended(folder: Path) -> dict[str, str]:
    path = folder / "candidates.tsv"
    if not path.exists():
        return {}
    allowed = {e.value for e in Emotion}
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row_no, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            emo = (row.get("emotion") or "").strip().lower()
            if emo and emo not in allowed:
                raise LabError(f"{path}, row {row_no}: emotion {emo!r} is not one of "
                               f"{sorted(allowed)}")  # fmt: skip
            out[(row.get("id") or "").strip()] = emo
    return out


def check_rater(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_\-.]{1,32}", name or "") or name.startswith("."):
        raise LabError(f"rater {name!r}: use 1-32 letters, digits, '-', '_' or '.'")
    return name


def _atomic(path: Path, text: str) -> None:
    from mmmelab.analysis.annotations.writing import atomic_write

    atomic_write(path, text)


class RaterPass:
    """One evaluator's pass over the candidates, resumable."""

    def __init__(self, clips: Path, rater: str, ratings: Path | None = None,
                 seed: int = 0) -> None:  # fmt: skip
        self.clips = candidates(clips)
        self.rater = check_rater(rater)
        self.folder = Path(ratings) if ratings is not None else Path(clips) / "ratings"
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(f"{seed}:{rater}".encode()).digest()
        self.order = [c.id for c in self.clips]
        random.Random(int.from_bytes(digest[:8], "little")).shuffle(self.order)
        self.seed = seed
        self.rows: dict[str, dict[str, str]] = self._read()

    @property
    def path(self) -> Path:
        return self.folder / f"rater-{self.rater}.tsv"

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        rows = read_ratings(self.path)
        unknown = sorted(set(rows) - set(self.order))
        if unknown:
            raise LabError(f"{self.path}: rates clips not in --clips: {', '.join(unknown[:5])}")
        return rows

    def remaining(self) -> list[Candidate]:
        by_id = {c.id: c for c in self.clips}
        return [by_id[i] for i in self.order if i not in self.rows]

    def record(self, clip: str, emotion: str | None, valence: int | None, arousal: int | None,
               response_s: float) -> None:  # fmt: skip
        """One answer (``None`` everywhere: the rater did not answer in time)."""
        if clip not in self.order:
            raise LabError(f"{clip!r} is not a candidate clip")
        self.rows[clip] = {
            "clip": clip, "position": str(self.order.index(clip) + 1),
            "emotion": emotion or "n/a", "valence": "n/a" if valence is None else str(valence),
            "arousal": "n/a" if arousal is None else str(arousal),
            "response_s": f"{response_s:.2f}", "rated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }  # fmt: skip
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for cid in self.order:
            if cid in self.rows:
                w.writerow(self.rows[cid])
        _atomic(self.path, buf.getvalue())


def read_ratings(path: Path) -> dict[str, dict[str, str]]:
    """A rater's file: clip -> its row; bad values are named with file and row."""
    allowed = {e.value for e in Emotion} | {"n/a"}
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise LabError(f"{path}: not a rating file (no column {sorted(missing)[0]!r})")
            for n, row in enumerate(reader, start=2):
                if row["emotion"] not in allowed:
                    raise LabError(f"{path}, row {n}: emotion {row['emotion']!r} is not one of "
                                   f"the seven")  # fmt: skip
                for col in ("valence", "arousal"):
                    v = row[col]
                    if v != "n/a" and not (v.isdigit() and 1 <= int(v) <= 9):
                        raise LabError(f"{path}, row {n}: {col} {v!r} is not 1-9")
                rows[row["clip"]] = row
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"{path}: cannot be read ({exc})") from None
    return rows


def _duration_s(path: Path) -> float:
    import av

    try:
        with av.open(str(path)) as c:
            if c.duration:
                return float(c.duration) / 1_000_000.0
            v = c.streams.video[0]
            return float((v.duration or 0) * (v.time_base or 0))
    except (av.FFmpegError, IndexError) as exc:
        raise LabError(f"{path}: cannot be read as a video ({exc})") from None


def summarise(clips: Path, ratings: Path | None = None, best: int = 6,
              protocol: Path | None = None, name: str = "validated",
              seed: int = 1) -> dict[str, Any]:  # fmt: skip
    """Statistics of every rater file, and the protocol of the best clips (if asked)."""
    from mmmelab.analysis.stats.reliability import (
        cronbach_alpha,
        fleiss_counts,
        fleiss_kappa,
        icc,
        kappa_band,
    )

    cands = candidates(clips)
    folder = Path(ratings) if ratings is not None else Path(clips) / "ratings"
    files = sorted(folder.glob("rater-*.tsv"))
    if len(files) < 2:
        raise LabError(f"{folder}: the summary needs two or more rater files (rater-*.tsv); "
                       f"found {len(files)}")  # fmt: skip
    raters = [p.stem[len("rater-") :] for p in files]
    data = {r: read_ratings(p) for r, p in zip(raters, files, strict=True)}
    ids = [c.id for c in cands]
    stats: dict[str, Any] = {}
    for dim in ("valence", "arousal"):
        m = np.array([[float(data[r][c][dim]) if c in data[r] and data[r][c][dim] != "n/a"
                       else np.nan for r in raters] for c in ids])  # fmt: skip
        complete = int(np.all(np.isfinite(m), axis=1).sum())
        forms, note = icc(m)
        stats[dim] = {"cronbach_alpha": cronbach_alpha(m).to_dict(),
                      "icc": {f.form: f.to_dict() for f in forms}, "icc_note": note,
                      "clips_rated_by_all": complete}  # fmt: skip
    labelled = [
        [data[r][c]["emotion"] for r in raters]
        for c in ids
        if all(c in data[r] and data[r][c]["emotion"] != "n/a" for r in raters)
    ]
    fk = fleiss_kappa(fleiss_counts(labelled, [e.value for e in Emotion])[0]) if labelled else None
    stats["emotion"] = (
        {"fleiss_kappa": fk.to_dict(), "band": kappa_band(fk.value)}
        if fk is not None
        else {"note": "no clip labelled by every rater"}
    )
    per_clip: list[dict[str, Any]] = []
    for c in cands:
        rows = [data[r][c.id] for r in raters if c.id in data[r]]
        votes = Counter(r["emotion"] for r in rows if r["emotion"] != "n/a")
        top, count = votes.most_common(1)[0] if votes else ("n/a", 0)
        tied = [e for e, k in votes.items() if k == count and e != top]
        v = [int(r["valence"]) for r in rows if r["valence"] != "n/a"]
        a = [int(r["arousal"]) for r in rows if r["arousal"] != "n/a"]
        per_clip.append({
            "clip": c.id, "intended": c.intended, "raters": len(rows),
            "consensus": "n/a" if tied else top, "tied_with": tied,
            "agreement": count / len(rows) if rows else 0.0,
            "valence_mean": float(np.mean(v)) if v else None,
            "valence_sd": float(np.std(v, ddof=1)) if len(v) > 1 else None,
            "arousal_mean": float(np.mean(a)) if a else None,
            "arousal_sd": float(np.std(a, ddof=1)) if len(a) > 1 else None,
        })  # fmt: skip
    chosen: dict[str, list[str]] = {}
    for emo in (e.value for e in Emotion):
        pool = [p for p in per_clip if p["consensus"] == emo]
        pool.sort(key=lambda p: (-p["agreement"], -(p["arousal_mean"] or 0.0), p["clip"]))
        chosen[emo] = [p["clip"] for p in pool[:best]]
    short = {e: len(v) for e, v in chosen.items() if len(v) < best}
    out: dict[str, Any] = {
        "raters": raters, "clips": len(cands), "stats": stats, "per_clip": per_clip,
        "chosen": chosen, "short_of_best": short, "best": best,
        "rule": "per emotion: clips whose consensus is that emotion, by share of raters "
                "who chose it, then by mean arousal",
        "software": {"name": "mmme-lab", "version": __version__},
    }  # fmt: skip
    if protocol is not None:
        out["protocol"] = str(_write_protocol(Path(protocol), Path(clips), cands, chosen,
                                              name, seed))  # fmt: skip
    return out


def _write_protocol(path: Path, clips: Path, cands: list[Candidate],
                    chosen: dict[str, list[str]], name: str, seed: int) -> Path:  # fmt: skip
    by_id = {c.id: c for c in cands}
    own = {p.stem: p for p in clips.iterdir() if p.stem in OWN and p.suffix.lower() in VIDEO_EXT}
    if "neutral" not in own:
        raise LabError(f"{clips}: the protocol needs a neutral clip between trials "
                       f"(neutral.mp4 beside the candidates)")  # fmt: skip
    picked = [cid for emo in chosen.values() for cid in emo]
    if not picked:
        raise LabError("no clip has a consensus emotion: nothing to put in a protocol")
    lines = [
        "# Written by mmme clip-study --summarise: the clips the raters agreed on most,",
        f"# per emotion (see {path.stem}.json beside this file for every figure).",
        "",
        "[protocol]",
        f'name = "{name}"',
        f"seed = {seed}",
        f"stimuli_dir = {json.dumps(str(clips.resolve()))}",
        'order = "random"',
        f"trials = {len(picked)}",
        "",
    ]
    if "practice" in own:
        p = own["practice"]
        lines += ["[[practice]]", 'id = "practice"', f'file = "{p.name}"',
                  f"duration_s = {_duration_s(p):.3f}", ""]  # fmt: skip
    n = own["neutral"]
    lines += ["[neutral]", 'id = "neutral"', f'file = "{n.name}"',
              f"duration_s = {_duration_s(n):.3f}", ""]  # fmt: skip
    for emo, ids in chosen.items():
        for cid in ids:
            c = by_id[cid]
            lines += ["[[clips]]", f'id = "{cid}"', f'emotion = "{emo}"', f'file = "{c.path.name}"',
                      f"duration_s = {_duration_s(c.path):.3f}", ""]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, "\n".join(lines))
    return path
