"""Importers for the vendors' own files, for offline work next to our sessions.

* Curry 7/8/9 (``.cdt`` with ``.dpa``/``.dpo``, ``.dat`` with ``.dap``) via MNE
  (``mne.io.read_raw_curry``, which needs the ``curryreader`` package);
* Neuroscan ``.cnt`` (Scan/Acquire) via MNE; ``data_format="auto"`` also tries 32-
  and 16-bit samples when MNE's guess fails (headers with a zero sample count);
* BIOPAC AcqKnowledge ``.acq`` (every version, compressed or not) via bioread,
  channels at their own rates (AcqKnowledge's per-channel dividers kept).

Every importer returns an :class:`ImportedRecording`: channels with name, unit,
rate and data in physical units (EEG in microvolts), and events with their time in
seconds from the start of the recording. Unreadable files raise
:class:`~mmmelab.errors.SessionFormatError` naming the file and the reason.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import SessionFormatError

logger = logging.getLogger(__name__)

# what the vendor readers raise on a file they cannot read
_READ_ERRORS = (
    OSError,
    ValueError,
    RuntimeError,
    KeyError,
    IndexError,
    EOFError,
    AttributeError,
    UnicodeDecodeError,
    struct.error,
)


@dataclass
class ImportedChannel:
    name: str
    unit: str
    rate_hz: float
    data: np.ndarray


@dataclass
class ImportedRecording:
    path: str
    format: str
    channels: list[ImportedChannel]
    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds, label)
    start: str | None = None  # ISO time, if recorded

    def channel(self, name: str) -> ImportedChannel:
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        labels: dict[str, int] = {}
        for _, label in self.events:
            labels[label] = labels.get(label, 0) + 1
        return {
            "path": self.path,
            "format": self.format,
            "start": self.start,
            "channels": [
                {"name": c.name, "unit": c.unit, "rate_hz": c.rate_hz, "samples": len(c.data)}
                for c in self.channels
            ],
            "events": len(self.events),
            "event_labels": labels,
        }


def _from_mne(raw: Any, path: Path, fmt: str) -> ImportedRecording:
    data = raw.get_data()
    types = raw.get_channel_types()
    rate = float(raw.info["sfreq"])
    channels = []
    for name, kind, row in zip(raw.ch_names, types, data, strict=True):
        volts = kind in ("eeg", "eog", "ecg", "emg", "seeg", "ecog", "misc")
        channels.append(
            ImportedChannel(name, "uV" if volts else "", rate, row * 1e6 if volts else row)
        )
    events = [(float(a["onset"]), str(a["description"])) for a in raw.annotations]
    meas = raw.info.get("meas_date")
    return ImportedRecording(str(path), fmt, channels, events, meas.isoformat() if meas else None)


def read_curry(path: Path | str) -> ImportedRecording:
    """A Curry recording (the data file; its companion files must sit beside it)."""
    import mne

    path = Path(path)
    try:
        raw = mne.io.read_raw_curry(path, preload=True, verbose="error")
    except _READ_ERRORS as exc:
        raise SessionFormatError(f"{path}: not a readable Curry recording ({exc})") from None
    return _from_mne(raw, path, "curry")


def read_cnt(path: Path | str, data_format: str = "auto") -> ImportedRecording:
    """A Neuroscan ``.cnt`` file; ``data_format`` is ``auto``, ``int16`` or ``int32``.

    With ``auto``, MNE's own guess is used when it works. When it fails (headers
    whose sample count is zero), both sample widths are read and the one whose
    data look like a physiological signal wins: real EEG is smooth from one
    sample to the next (high lag-1 autocorrelation), the wrong width gives noise.
    """
    import mne

    path = Path(path)

    def load(fmt: str) -> Any:
        return mne.io.read_raw_cnt(path, data_format=fmt, preload=True, verbose="error")

    errors = []
    candidates = [data_format] if data_format != "auto" else ["auto"]
    for fmt in candidates:
        try:
            rec = _from_mne(load(fmt), path, "cnt")
            rec.format = f"cnt ({fmt})"
            return rec
        except _READ_ERRORS as exc:
            errors.append(f"{fmt}: {exc}")
    if data_format == "auto":
        scored = []
        for fmt in ("int16", "int32"):
            try:
                raw = load(fmt)
            except _READ_ERRORS as exc:
                errors.append(f"{fmt}: {exc}")
                continue
            scored.append((_smoothness(raw.get_data()), fmt, raw))
        if scored:
            score, fmt, raw = max(scored, key=lambda item: item[0])
            logger.info(
                "%s: MNE could not tell the sample width; %s reads as a smooth signal "
                "(lag-1 autocorrelation %.2f)",
                path,
                fmt,
                score,
            )
            rec = _from_mne(raw, path, "cnt")
            rec.format = f"cnt ({fmt})"
            return rec
    raise SessionFormatError(f"{path}: not a readable Neuroscan .cnt file ({'; '.join(errors)})")


def _smoothness(data: np.ndarray) -> float:
    """Median over channels of the lag-1 autocorrelation."""
    x = data - data.mean(axis=1, keepdims=True)
    num = (x[:, 1:] * x[:, :-1]).sum(axis=1)
    den = (x * x).sum(axis=1)
    ok = den > 0
    return float(np.median(num[ok] / den[ok])) if ok.any() else -1.0


def read_acq(path: Path | str) -> ImportedRecording:
    """A BIOPAC AcqKnowledge ``.acq`` file, every channel at its own rate."""
    import bioread

    path = Path(path)
    try:
        datafile = bioread.read_file(str(path))
    except _READ_ERRORS as exc:
        raise SessionFormatError(f"{path}: not a readable AcqKnowledge file ({exc})") from None
    channels = [
        ImportedChannel(
            str(c.name),
            str(c.units or ""),
            float(c.samples_per_second),
            np.asarray(c.data, dtype=np.float64),
        )
        for c in datafile.channels
    ]
    base = float(datafile.samples_per_second)
    events = []
    for marker in datafile.event_markers:
        label = str(marker.text or marker.type or "")
        events.append((marker.sample_index / base, label))
    created = getattr(datafile, "earliest_marker_created_at", None)
    return ImportedRecording(
        str(path), "acq", channels, events, str(created) if created is not None else None
    )


def import_file(path: Path | str) -> ImportedRecording:
    """Dispatch on the file name: ``.cdt``/``.dat`` Curry, ``.cnt`` Neuroscan, ``.acq`` BIOPAC."""
    path = Path(path)
    if not path.is_file():
        raise SessionFormatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".cdt", ".dat"):
        return read_curry(path)
    if suffix == ".cnt":
        return read_cnt(path)
    if suffix == ".acq":
        return read_acq(path)
    raise SessionFormatError(
        f"{path}: unknown file type {suffix!r}; mmme imports Curry "
        f"(.cdt, .dat), Neuroscan (.cnt) and AcqKnowledge (.acq) files"
    )
