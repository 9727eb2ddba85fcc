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

import contextlib
import io
import logging
import struct
from collections.abc import Iterator
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
    #: what was corrected or is doubtful (renamed channels, fixed marker indices, NaNs)
    warnings: list[str] = field(default_factory=list)

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
            "markers": [{"t_s": round(t, 6), "label": label} for t, label in self.events],
            "warnings": self.warnings,
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


CURRY_COMPRESSED_GUID = "{2912E8D8-F5C8-4E25-A8E7-A1385967DA09}"


def _curry_parameters(path: Path) -> tuple[Path, dict[str, str]]:
    """The parameter file beside a Curry data file, and its first ``Key = value`` of each key."""
    names = (
        [path.with_name(path.name + ext) for ext in (".dpa", ".dpo")]
        if path.suffix.lower() == ".cdt"
        else [path.with_suffix(".dap")]
    )
    for candidate in names:
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="latin-1")
            except OSError as exc:
                raise SessionFormatError(f"{candidate}: cannot be read ({exc})") from None
            values: dict[str, str] = {}
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() and key.strip() not in values:
                    values[key.strip()] = value.strip()
            return candidate, values
    raise SessionFormatError(
        f"{path}: its Curry parameter file is missing (looked for "
        f"{', '.join(n.name for n in names)} beside it)"
    )


def _check_curry(path: Path) -> tuple[int, int]:
    """Refuse, in one line, Curry files that cannot be read right; (samples, channels)."""
    params, values = _curry_parameters(path)
    if values.get("DataGuid", "") == CURRY_COMPRESSED_GUID:
        raise SessionFormatError(
            f"{path}: a compressed Curry file; export it from Curry as raw float data"
        )

    def number(key: str) -> int:
        if key not in values:
            raise SessionFormatError(f"{params}: the header has no {key}")
        try:
            return int(float(values[key]))
        except ValueError:
            raise SessionFormatError(f"{params}: {key} is {values[key]!r}, not a number") from None

    samples, channels, trials = number("NumSamples"), number("NumChannels"), number("NumTrials")
    if trials > 1:
        raise SessionFormatError(
            f"{path}: an epoched Curry file ({trials} trials of {samples} samples); mmme "
            f"imports continuous recordings - export the continuous data from Curry"
        )
    if channels < 1:
        raise SessionFormatError(f"{params}: NumChannels is {channels}")
    if values.get("DataFormat", "").upper() != "ASCII" and samples > 0:
        expected = samples * channels * 4  # Curry raw data are float32
        size = path.stat().st_size
        if size < expected:
            raise SessionFormatError(
                f"{path}: cut short - {size:,} bytes hold {size // (4 * channels):,} of the "
                f"{samples:,} samples its header describes"
            )
        if size > expected:
            raise SessionFormatError(
                f"{path}: holds {size:,} bytes but its header ({params.name}) describes "
                f"{samples:,} samples x {channels} channels = {expected:,} bytes; the data "
                f"file does not belong to this header"
            )
    return samples, channels


def read_curry(path: Path | str) -> ImportedRecording:
    """A Curry recording (the data file; its companion files must sit beside it).

    The header is checked first (compressed and epoched files, missing fields, a data
    file whose size disagrees with its header are refused in one line); samples that
    decode to NaN or infinity are reported with how much is usable.
    """
    import mne

    path = Path(path)
    _check_curry(path)
    try:
        with _quiet_vendor():
            raw = mne.io.read_raw_curry(path, preload=True, verbose="error")
    except Exception as exc:  # curryreader raises bare Exception; one line, never a traceback
        logger.debug("reading %s", path, exc_info=True)
        raise SessionFormatError(
            f"{path}: not a readable Curry recording ({_short(exc)})"
        ) from None
    rec = _from_mne(raw, path, "curry")
    _unique_names(rec)
    _report_non_finite(rec)
    return rec


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


@contextlib.contextmanager
def _quiet_vendor() -> Iterator[None]:
    """Vendor readers print to stdout; keep it for ``--json`` (their text goes to the log)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    for line in buf.getvalue().splitlines():
        if line.strip():
            logger.info("vendor reader: %s", line.strip())


def _report_non_finite(rec: ImportedRecording) -> None:
    bad = {c.name: int(np.count_nonzero(~np.isfinite(c.data))) for c in rec.channels}
    bad = {k: v for k, v in bad.items() if v}
    if not bad:
        return
    total = sum(len(c.data) for c in rec.channels)
    worst = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:5])
    msg = (
        f"{sum(bad.values()):,} of {total:,} samples decode to NaN or infinity "
        f"({len(bad)} channel(s): {worst}); {1 - sum(bad.values()) / total:.1%} are usable"
    )
    logger.warning("%s: %s", rec.path, msg)
    rec.warnings.append(msg)


def _unique_names(rec: ImportedRecording) -> None:
    seen: dict[str, int] = {}
    for ch in rec.channels:
        if ch.name in seen:
            seen[ch.name] += 1
            new = f"{ch.name} ({seen[ch.name]})"
            rec.warnings.append(f"channel name {ch.name!r} appears twice; renamed to {new!r}")
            ch.name = new
        else:
            seen[ch.name] = 1


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
        try:
            with _quiet_vendor():
                return mne.io.read_raw_cnt(path, data_format=fmt, preload=True, verbose="error")
        except _READ_ERRORS:
            raise
        except Exception as exc:  # MNE's own exception types: one line, no stack text
            logger.debug("reading %s", path, exc_info=True)
            raise ValueError(_short(exc)) from None

    errors = []
    candidates = [data_format] if data_format != "auto" else ["auto"]
    for fmt in candidates:
        try:
            rec = _from_mne(load(fmt), path, "cnt")
            rec.format = f"cnt ({fmt})"
            return rec
        except _READ_ERRORS as exc:
            errors.append(f"{fmt}: {_short(exc)}")
    if data_format == "auto":
        scored = []
        for fmt in ("int16", "int32"):
            try:
                raw = load(fmt)
            except _READ_ERRORS as exc:
                errors.append(f"{fmt}: {_short(exc)}")
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
        with _quiet_vendor():
            datafile = bioread.read_file(str(path))
            channels = [
                ImportedChannel(
                    str(c.name),
                    str(c.units or ""),
                    float(c.samples_per_second),
                    np.asarray(c.data, dtype=np.float64),
                )
                for c in datafile.channels
            ]
    except Exception as exc:  # bioread raises many types on cut or damaged files
        logger.debug("reading %s", path, exc_info=True)
        raise SessionFormatError(
            f"{path}: not a readable AcqKnowledge file ({_short(exc)})"
        ) from None
    base = float(datafile.samples_per_second)
    rec = ImportedRecording(str(path), "acq", channels)
    n_base = max((round(len(c.data) * base / c.rate_hz) for c in channels if c.rate_hz), default=0)
    for marker in datafile.event_markers:
        index = _marker_index(int(marker.sample_index), n_base, str(marker.text or ""), rec)
        if index is not None:
            rec.events.append((index / base, str(marker.text or "")))
    created = getattr(datafile, "earliest_marker_created_at", None)
    rec.start = str(created) if created is not None else None
    _unique_names(rec)
    _report_non_finite(rec)
    return rec


def _marker_index(index: int, n_base: int, label: str, rec: ImportedRecording) -> int | None:
    """A marker's sample index at the base rate, checked against the recording's length.

    bioread returns some compressed files' indices wrapped around 2^32 (a negative
    32-bit offset read unsigned): such an index is corrected when unwrapping puts it
    inside the recording; one that is still outside is dropped and reported.
    """
    if 0 <= index <= n_base:
        return index
    for fixed in (index - (1 << 32), index % (1 << 32)):
        if 0 <= fixed <= n_base:
            rec.warnings.append(
                f"marker {label!r}: sample index {index} is past the end ({n_base}); "
                f"read as {fixed} (wrapped around 2^32)"
            )
            return fixed
    rec.warnings.append(
        f"marker {label!r}: sample index {index} lies outside the recording (0..{n_base}); left out"
    )
    return None


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
