"""BIDS writers for a recorded session: EEG (through mne-bids), physiology, events,
the face video (the BEP047 draft) and the dataset-level files.

Time. BIDS times a recording by its data file: an event's ``onset`` is seconds from
the EEG file's first sample at its nominal rate. The devices' clocks drift against
each other (tens of ppm: 0.2 s over an hour), so every other time - an event's,
a physiology sample's, a video frame's - is taken from the master clock (the sync
certificate's alignment) to the EEG file's time axis through ``Timebase``, which
interpolates between the EEG samples' own master times. The physiology is written
sample for sample (never resampled): its ``SamplingFrequency`` and ``StartTime``
are those of a straight-line fit of its samples' times on the EEG file's axis, and
the fit's largest residual is stated in its sidecar; missing samples are ``n/a``
rows. The video keeps each frame's time in a frame table beside it.

Nothing here decides consent: ``mmmelab.export`` calls ``consent.check_public``
before it asks for a face file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.errors import LabError
from mmmelab.storage.session import SignalStream

BIDS_VERSION = "1.10.0"
TASK = "mmme"
#: physiology channel -> (BIDS column, units, description)
PHYSIO_COLUMNS = {
    "ECG": ("cardiac", "mV", "electrocardiogram (BIOPAC ECG100C, lead II)"),
    "PPG": ("ppg", "V", "photoplethysmogram (BIOPAC PPG100C), relative amplitude"),
    "RSP": ("respiratory", "V", "respiration belt (BIOPAC RSP100C), relative amplitude"),
    "SKT": ("skin_temperature", "degC", "skin temperature (BIOPAC SKT100C)"),
    "EDA": ("eda", "uS", "electrodermal activity (BIOPAC EDA100C), skin conductance"),
}
EOG_NAMES = ("HEO", "VEO", "HEOG", "VEOG", "EOG")
LABEL = re.compile(r"[^A-Za-z0-9]")


def label(text: str) -> str:
    """A BIDS entity label: letters and digits only."""
    out = LABEL.sub("", str(text))
    if not out:
        raise LabError(f"{text!r} gives no BIDS label (letters and digits)")
    return out


def prefix(sub: str, ses: str, task: str = TASK) -> str:
    """The BIDS file-name prefix of one recording."""
    return f"sub-{sub}_ses-{ses}_task-{task}"


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` as an indented JSON sidecar at ``path`` (folders made); returns the
    path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_plain) + "\n")
    return path


def _plain(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def write_tsv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A BIDS TSV: a header, tab-separated, ``n/a`` for missing values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE,
                   escapechar="\\")  # fmt: skip
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    path.write_text(buf.getvalue())
    return path


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float | np.floating):
        return f"{float(v):.6f}".rstrip("0").rstrip(".") if np.isfinite(v) else "n/a"
    text = str(v)
    return text.replace("\t", " ").replace("\n", " ") if text else "n/a"


# ------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Timebase:
    """Master time -> seconds on the EEG file's axis (sample / nominal rate)."""

    master: np.ndarray  # increasing master times of EEG samples (a subset)
    file_s: np.ndarray  # their file times
    slope: float
    intercept: float

    @classmethod
    def of(cls, eeg: SignalStream, step: int = 100) -> Timebase:
        idx = eeg.sample_index
        if not len(idx):
            raise LabError(f"stream {eeg.name}: no samples")
        master = np.asarray(eeg.master_time, dtype=np.float64)
        file_s = (idx - idx[0]) / eeg.rate_hz
        keep = np.unique(np.r_[np.arange(0, len(idx), step), len(idx) - 1])
        m, f = master[keep], file_s[keep]
        slope, intercept = np.polyfit(m - m[0], f, 1)
        return cls(m, f, float(slope), float(intercept - slope * m[0]))

    def to_file(self, master: np.ndarray | float) -> np.ndarray:
        t = np.asarray(master, dtype=np.float64)
        inside = np.interp(t, self.master, self.file_s)
        outside = self.intercept + self.slope * t
        span = (t >= self.master[0]) & (t <= self.master[-1])
        return np.where(span, inside, outside)


# ------------------------------------------------------------------------- EEG


def write_eeg(eeg: SignalStream, root: Path, sub: str, ses: str, line_hz: float,
              fmt: str = "BrainVision") -> dict[str, Any]:  # fmt: skip
    """The EEG through mne-bids (``BrainVision`` or ``EDF``): channel types (EOG by
    name), the line frequency; device gaps filled with zeros and listed (the caller
    writes them to events.tsv as ``BAD_ACQ_SKIP``). Returns the files and the gaps."""
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    idx = eeg.sample_index
    n = int(idx[-1] - idx[0] + 1)
    data = np.zeros((len(eeg.channels), n), dtype=np.float64)
    pos = idx - idx[0]
    scale = {"uV": 1e-6, "mV": 1e-3, "V": 1.0}.get(eeg.units)
    if scale is None:
        raise LabError(f"stream {eeg.name}: units {eeg.units!r}, not uV, mV or V")
    block = 200_000
    for a in range(0, len(idx), block):
        data[:, pos[a : a + block]] = (
            np.asarray(eeg.data[a : a + block], dtype=np.float64).T * scale
        )
    gaps = []
    jumps = np.flatnonzero(np.diff(idx) > 1)
    for j in jumps:
        gaps.append({"onset_s": float((idx[j] + 1 - idx[0]) / eeg.rate_hz),
                     "duration_s": float((idx[j + 1] - idx[j] - 1) / eeg.rate_hz)})  # fmt: skip
    types = ["eog" if c.upper() in EOG_NAMES else "eeg" for c in eeg.channels]
    info = mne.create_info(list(eeg.channels), eeg.rate_hz, types, verbose=False)
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.info["line_freq"] = float(line_hz)
    path = BIDSPath(subject=sub, session=ses, task=TASK, datatype="eeg", root=root,
                    suffix="eeg")  # fmt: skip
    import warnings

    with warnings.catch_warnings():  # mne-bids' own notices (no digitisation, no events)
        warnings.simplefilter("ignore")
        write_raw_bids(raw, path, format=fmt, allow_preload=True, overwrite=True, verbose=False)
    sidecar = path.copy().update(extension=".json")
    meta = json.loads(Path(sidecar.fpath).read_text())
    meta.update({"Manufacturer": "Compumedics Neuroscan",
                 "ManufacturersModelName": str(eeg.attrs.get("device_model", "SynAmps RT")),
                 "EEGReference": "as recorded (SynAmps RT: the reference electrode of the cap)",
                 "SoftwareFilters": "n/a", "RecordingType": "continuous",
                 "MISCChannelCount": 0,
                 "SoftwareVersions": f"mmme-lab {__version__} (recorded over the SynAmps' "
                                     "TCP data protocol)",
                 "TaskDescription": "MMME paradigm: emotional film clips, self-report, "
                                    "neutral clips, suppression reminders"})  # fmt: skip
    write_json(Path(sidecar.fpath), meta)
    return {"folder": Path(path.directory), "file": Path(path.fpath).name, "gaps": gaps,
            "samples": n, "rate_hz": eeg.rate_hz}  # fmt: skip


# ------------------------------------------------------------------- physiology


def write_physio(physio: SignalStream, folder: Path, pre: str, tb: Timebase,
                 recording: str = "biopac") -> dict[str, Any]:  # fmt: skip
    """``<pre>_recording-<recording>_physio.tsv.gz`` + JSON, sample for sample."""
    idx = physio.sample_index.astype(np.int64)
    if not len(idx):
        raise LabError(f"stream {physio.name}: no samples")
    t_file = tb.to_file(physio.master_time)
    k = (idx - idx[0]).astype(np.float64)
    slope, start = np.polyfit(k, t_file, 1)
    resid_ms = float(np.max(np.abs(t_file - (start + slope * k))) * 1e3)
    n = int(idx[-1] - idx[0] + 1)
    cols = []
    for c in physio.channels:
        col = PHYSIO_COLUMNS.get(c.upper(), (label(c).lower(), physio.units, c))
        cols.append(col)
    values = np.full((n, len(cols)), np.nan)
    pos = idx - idx[0]
    block = 500_000
    for a in range(0, len(idx), block):
        values[pos[a : a + block]] = np.asarray(physio.data[a : a + block], dtype=np.float64)
    trigger = None
    if "digital" in physio.aux:
        dig = np.asarray(physio.aux["digital"][()]).reshape(len(idx), -1)
        trigger = np.full(n, -1, dtype=np.int64)
        weights = 1 << np.arange(dig.shape[1], dtype=np.int64)
        trigger[pos] = (dig.astype(np.int64) != 0) @ weights
    name = f"{pre}_recording-{recording}_physio"
    _write_physio_tsv(folder / f"{name}.tsv.gz", values, trigger)
    meta: dict[str, Any] = {
        "SamplingFrequency": round(float(1.0 / slope), 6),
        "StartTime": round(float(start), 6),
        "Columns": [c[0] for c in cols] + (["trigger"] if trigger is not None else []),
        "TaskName": TASK,
        "PhysioType": "generic",
        "Manufacturer": "BIOPAC Systems",
        "ManufacturersModelName": str(physio.attrs.get("device_model", "MP160")),
        "RecordingDuration": round(n / physio.rate_hz, 3),
        "NominalSamplingFrequency": physio.rate_hz,
        "TimingSource": "the sync certificate's alignment of this device's clock to the master "
                        "clock, mapped to the EEG file's time axis; SamplingFrequency and "
                        "StartTime are a straight-line fit of the samples' times",
        "TimingResidualMax_ms": round(resid_ms, 4),
        "MissingSamples": int(n - len(idx)),
    }  # fmt: skip
    for column, units, desc in cols:
        meta[column] = {"Units": units, "Description": desc}
    if trigger is not None:
        meta["trigger"] = {"Description": "the MP160's digital inputs as a bit field (bit k = "
                                          "input k); -1 where the sample is missing"}  # fmt: skip
    write_json(folder / f"{name}.json", meta)
    return {"file": f"{name}.tsv.gz", "rate_hz": meta["SamplingFrequency"],
            "start_s": meta["StartTime"], "residual_ms": resid_ms, "samples": n,
            "missing": meta["MissingSamples"]}  # fmt: skip


def _write_physio_tsv(path: Path, values: np.ndarray, trigger: np.ndarray | None) -> None:
    """Headerless gzipped TSV (BIDS physio), ``n/a`` for missing values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # no name and no time in the gzip header: the same data give the same file
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 3, raw, mtime=0) as gz, \
            io.TextIOWrapper(gz, newline="") as fh:  # fmt: skip
        block = 100_000
        for a in range(0, len(values), block):
            v = values[a : a + block]
            text = np.char.mod("%.7g", v)
            text[~np.isfinite(v)] = "n/a"
            if trigger is not None:
                t = trigger[a : a + block].astype(str)
                text = np.column_stack([text, np.where(trigger[a : a + block] < 0, "n/a", t)])
            fh.write("\n".join("\t".join(row) for row in text.tolist()))
            fh.write("\n")


# ------------------------------------------------------------------------ events

EVENT_COLUMNS = {
    "onset": "seconds from the EEG file's first sample (the event's master-clock time "
             "mapped through the sync certificate)",
    "duration": "seconds; 0 for an instantaneous marker",
    "trial_type": "what happened (see Levels)",
    "value": "the trigger code sent on the bus (n/a for annotations and gaps)",
    "sample": "EEG sample (from 0) at the onset",
    "master_time": "the onset on the master clock (pylsl.local_clock, seconds)",
    "trial": "trial number of the paradigm (from 0)",
    "clip": "the clip's id",
    "emotion": "target emotion (markers), reported emotion (rating) or coded emotion "
               "(annotations)",
    "valence": "self-reported valence, 1-9 (rating rows)",
    "arousal": "self-reported arousal, 1-9 (rating rows)",
    "kind": "ME or MaE (annotation rows)",
    "onset_frame": "camera frame number (journal acq_nframe) of the onset (annotation rows)",
    "apex_frame": "camera frame number of the apex; n/a when not annotated",
    "offset_frame": "camera frame number of the offset",
    "apex": "the apex, seconds on the same axis as onset",
    "aus": "action units, FACS notation (L/R side, intensity A-E)",
    "label3": "MMME's three classes: negative, positive, surprise (annotation rows)",
    "coders": "how many coders marked the event (consensus rows)",
    "agreement": "the coders' agreement on this event: mean pairwise IoU of their intervals",
    "note": "free text (experimenter notes)",
}  # fmt: skip


def write_events(path: Path, rows: list[dict[str, Any]], levels: dict[str, str]) -> Path:
    """``events.tsv`` sorted by onset, and its JSON describing every column used."""
    used = [c for c in EVENT_COLUMNS if c in ("onset", "duration") or any(
        r.get(c) is not None for r in rows)]  # fmt: skip
    rows = sorted(rows, key=lambda r: (r["onset"], r.get("trial_type", "")))
    write_tsv(path, used, ([r.get(c) for c in used] for r in rows))
    meta: dict[str, Any] = {c: {"Description": EVENT_COLUMNS[c]} for c in used}
    meta["onset"]["Units"] = meta["duration"]["Units"] = "s"
    if "trial_type" in meta:
        meta["trial_type"]["Levels"] = {k: v for k, v in levels.items()
                                        if any(r.get("trial_type") == k for r in rows)}  # fmt: skip
    if "apex" in meta:
        meta["apex"]["Units"] = "s"
    write_json(path.with_suffix(".json"), meta)
    return path
