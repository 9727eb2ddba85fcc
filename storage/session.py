"""The session folder's format, and reading it back with :func:`open_session` (it is
written by :class:`mmmelab.storage.sessionwriter.SessionWriter`).

A session folder (``sub-<id>_ses-<nn>_<YYYYmmddTHHMMSS>``) holds::

    session.json    the manifest (mmmelab.storage.manifest)
    camera/         frames and their journal (mmmelab.storage.frames)
    signals.h5      EEG, physiology, markers, trials, faults (mmmelab.storage.signals)
    session.h5      written at finalisation: one HDF5 entry point that reads it all

``open_session`` is the single reading API the analysis uses. It works on a
finished session and on one whose recorder was killed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmmelab.errors import SessionFormatError
from mmmelab.storage.framestore import FrameStore
from mmmelab.storage.h5salvage import WRITTEN_ATTR, probe_open, salvage, superblock
from mmmelab.storage.manifest import SessionStatus, read_manifest
from mmmelab.storage.signals import open_signals

logger = logging.getLogger(__name__)

#: One row per trial: what was shown and what the participant answered.
TRIAL_DTYPE = np.dtype(
    [
        ("index", "<i4"),  # 0-based position in its block
        ("practice", "u1"),
        ("clip_id", "S32"),
        ("target_emotion", "S16"),
        ("chosen_emotion", "S16"),  # empty when missed
        ("valence", "<i1"),  # 1-9, 0 when missed
        ("arousal", "<i1"),  # 1-9, 0 when missed
        ("missed", "u1"),
        ("response_time_s", "<f8"),  # from rating onset; NaN when missed
        ("clip_onset", "<f8"),  # master clock, s
        ("rating_onset", "<f8"),
    ]
)

#: One row per stimulus frame put on the participant's screen (GUI sessions).
STIMULUS_FRAME_DTYPE = np.dtype(
    [
        ("trial", "<i2"),  # position in its block, as in the trials table
        ("practice", "u1"),
        ("kind", "u1"),  # mmmelab.streams.StimulusKind
        ("frame", "<i4"),  # index of the video frame in the clip
        ("t_due", "<f8"),  # master clock, s: onset + frame / clip fps
        ("t_display", "<f8"),  # master clock, s: the frame was handed to the screen
    ]
)

#: Audio of a presentation: none in the file, played, no output device, failed.

#: One row per clip presentation (emotional or neutral) with its timing quality.
PRESENTATION_DTYPE = np.dtype(
    [
        ("trial", "<i2"),
        ("practice", "u1"),
        ("kind", "u1"),
        ("clip_id", "S32"),
        ("t_space", "<f8"),  # the participant's Space press (NaN for neutral clips)
        ("t_onset", "<f8"),  # first frame displayed
        ("t_end", "<f8"),  # last frame displayed
        ("fps", "<f4"),  # the clip's own frame rate
        ("frames_shown", "<i4"),
        ("frames_dropped", "<i4"),  # frames whose time passed without being shown
        ("frames_repeated", "<i4"),  # refreshes that kept a frame past its time
        ("late_ms_max", "<f4"),  # largest display time minus due time
        ("audio", "u1"),  # mmmelab.streams.AudioState
        ("audio_offset_ms", "<f4"),  # audio start minus first frame; NaN without audio
    ]
)

#: Screens shown on an input, with the input time and the displayed time (GUI sessions).
DISPLAY_DTYPE = np.dtype(
    [
        ("code", "u1"),  # the event code (REMINDER_ON/OFF, RATING_ONSET, ...)
        ("t_input", "<f8"),  # key press or phase change, master clock
        ("t_display", "<f8"),  # the screen showing it was painted
        ("label", "S48"),
    ]
)

#: The logs every recording declares in signals.h5 besides markers, faults and trials.
SESSION_LOGS = {
    "stimulus_frames": STIMULUS_FRAME_DTYPE,
    "presentations": PRESENTATION_DTYPE,
    "display": DISPLAY_DTYPE,
}
SYNC_FILE = "sync.json"
SYNC_FORMAT_VERSION = 1


def _apply_segments(sync: dict[str, Any] | None, device_t: np.ndarray) -> np.ndarray | None:
    """Master times from a stream's sync.json entry (segments over index ranges)."""
    if not sync or not sync.get("segments"):
        return None
    out = np.full(len(device_t), np.nan)
    for seg in sync["segments"]:
        lo, hi = int(seg["first"]), int(seg["last"]) + 1
        out[lo:hi] = seg["a"] + seg["b"] * device_t[lo:hi]
    return out


@dataclass
class SignalStream:
    """A sampled stream (EEG, physiology). ``data`` is read lazily from HDF5."""

    name: str
    kind: str
    rate_hz: float
    channels: list[str]
    units: str
    data: h5py.Dataset
    blocks: np.ndarray
    aux: dict[str, h5py.Dataset]
    attrs: dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] | None = None
    #: samples written but unreadable, by reason (e.g. past the end of a cut file)
    lost: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.blocks["count"].sum()) if len(self.blocks) else 0

    @property
    def sample_index(self) -> np.ndarray:
        """Device sample index of every sample (gaps show as jumps)."""
        if not len(self.blocks):
            return np.zeros(0, np.int64)
        counts = self.blocks["count"].astype(np.int64)
        starts = np.repeat(self.blocks["first_sample"] - np.cumsum(counts) + counts, counts)
        return starts + np.arange(counts.sum())

    @property
    def host_time(self) -> np.ndarray:
        """Master-clock receive time per sample: each block's receipt time, back-dated by
        the sample period for its earlier samples."""
        if not len(self.blocks):
            return np.zeros(0)
        counts = self.blocks["count"].astype(np.int64)
        last = np.repeat(self.blocks["host_time"], counts)
        pos_from_end = np.repeat(np.cumsum(counts), counts) - 1 - np.arange(counts.sum())
        return last - pos_from_end / self.rate_hz

    @property
    def aligned(self) -> bool:
        if not self.sync:
            return False
        return bool(self.sync.get("segments")) or self.sync.get("method") == "lsl"

    @property
    def master_time(self) -> np.ndarray:
        """Each sample's time on the master clock: from the alignment (``mmme align``) when
        the session has been aligned, else the host receive times (``aligned`` says which)."""
        if self.sync and self.sync.get("method") == "lsl" and "lsl_time" in self.aux:
            times: np.ndarray = self.aux["lsl_time"][()].reshape(-1) + self.aux["lsl_offset"][
                ()
            ].reshape(-1)
            return times
        aligned = _apply_segments(self.sync, self.sample_index / self.rate_hz)
        return aligned if aligned is not None else self.host_time

    def gaps(self) -> tuple[int, int]:
        """(number of gaps, samples missing) from the blocks' device sample indices."""
        if len(self.blocks) < 2:
            return 0, 0
        expected = self.blocks["first_sample"][:-1] + self.blocks["count"][:-1]
        jump = self.blocks["first_sample"][1:] - expected
        return int(np.count_nonzero(jump)), int(np.abs(jump).sum())


@dataclass
class CameraStream:
    """The camera: frames memory-mapped by index, with the per-frame journal."""

    name: str
    rate_hz: float
    frames: FrameStore
    kind: str = "camera"
    sync: dict[str, Any] | None = None

    @property
    def journal(self) -> np.ndarray:
        return self.frames.journal

    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def host_time(self) -> np.ndarray:
        return self.journal["host_time"]

    @property
    def device_time_s(self) -> np.ndarray:
        return self.journal["ts_us"] / 1e6

    @property
    def aligned(self) -> bool:
        return bool(self.sync and self.sync.get("segments"))

    @property
    def master_time(self) -> np.ndarray:
        """Each frame's exposure start on the master clock (after ``mmme align``), else the
        host receive times (``aligned`` says which)."""
        readout = float(self.sync.get("readout_us", 0.0)) if self.sync else 0.0
        aligned = _apply_segments(self.sync, self.journal["ts_us"] / 1e6 - readout / 1e6)
        return aligned if aligned is not None else self.host_time

    @property
    def dropped_frames(self) -> list[dict[str, Any]]:
        """Where frames are missing and when they would have been exposed (after alignment)."""
        return list(self.sync.get("dropped_frames", [])) if self.sync else []

    def dropped(self, upto: int | None = None) -> tuple[int, int]:
        """(gaps, frames missing) from acq_nframe, among the first ``upto`` frames (all)."""
        nf = self.journal["acq_nframe"][:upto].astype(np.int64)
        if len(nf) < 2:
            return 0, 0
        jump = np.diff(nf) - 1
        return int(np.count_nonzero(jump)), int(jump[jump > 0].sum())


@dataclass
class Session:
    """A recorded session as returned by :func:`open_session`. Close it when done."""

    path: Path
    manifest: dict[str, Any]
    streams: dict[str, SignalStream | CameraStream]
    markers: np.ndarray
    faults: np.ndarray
    trials: np.ndarray
    problems: list[str]
    _h5: h5py.File | None = None
    sync: dict[str, Any] | None = None
    logs: dict[str, np.ndarray] = field(default_factory=dict)
    _tmp: Any = None  # the salvage copy of a cut signals.h5, removed on close

    @property
    def status(self) -> SessionStatus:
        return SessionStatus(self.manifest["status"])

    @property
    def consent_level(self) -> int:
        return int(self.manifest["participant"].get("consent_level", 2))

    @property
    def simulated(self) -> list[str]:
        return list(self.manifest.get("simulated", []))

    def close(self) -> None:
        for stream in self.streams.values():
            if isinstance(stream, CameraStream):
                stream.frames.close()
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signal_stream(name: str, grp: h5py.Group) -> SignalStream:
    """One stream of signals.h5. From a salvaged copy of a cut file, only the samples
    that survived in every array are kept; the rest are counted in ``lost``."""
    attrs = dict(grp.attrs)
    aux: dict[str, Any] = {k: grp[k] for k in grp if k not in ("data", "blocks")}
    data: Any = grp["data"]
    blocks = grp["blocks"][()]
    lost: dict[str, int] = {}
    if WRITTEN_ATTR in data.attrs:
        n = min(ds.shape[0] for ds in (data, *aux.values()))
        ends = np.cumsum(blocks["count"].astype(np.int64))
        blocks = blocks[: int(np.searchsorted(ends, n, side="right"))]
        n = int(blocks["count"].sum()) if len(blocks) else 0
        written = int(data.attrs[WRITTEN_ATTR])
        if n < written:
            lost["lay past the end of the cut signals.h5"] = written - n
        data = data[:n]
        aux = {k: v[:n] for k, v in aux.items()}
    return SignalStream(
        name=name,
        kind=str(attrs.get("kind", name)),
        rate_hz=float(attrs["rate_hz"]),
        channels=[
            c.decode() if isinstance(c, bytes) else str(c) for c in attrs.get("channels", [])
        ],
        units=str(attrs.get("units", "")),
        data=data,
        blocks=blocks,
        aux=aux,
        attrs=attrs,
        lost=lost,
    )


def _read_log(h5: h5py.File, name: str, problems: list[str]) -> np.ndarray:
    ds = h5[name]["log"]
    rows: np.ndarray = ds[()]
    written = int(ds.attrs.get(WRITTEN_ATTR, len(rows)))
    if written > len(rows):
        problems.append(f"{name}: {written - len(rows)} row(s) lay past the end of signals.h5")
    return rows


def _open_signals(path: Path, problems: list[str]) -> tuple[h5py.File | None, Any]:
    """Open signals.h5 in the way its state allows (see ``mmmelab.storage.h5salvage``).

    Returns the file (None when nothing can be read; ``problems`` says why) and a
    temporary folder to remove with the session (the salvage copy), or None.
    """
    info = superblock(path)
    try:
        if info is not None and info["size"] < info["eof"]:
            tmp = tempfile.TemporaryDirectory(prefix="mmme-salvage-")
            copy = Path(tmp.name) / "signals.h5"
            problem = salvage(path, copy)
            lead = (
                f"signals.h5 is cut short: {info['size']:,} of its {info['eof']:,} bytes "
                f"are on disk"
            )
            if problem is not None:
                tmp.cleanup()
                problems.append(f"{lead}; {problem}, so no signal can be read")
                return None, None
            problems.append(f"{lead}; what lies inside was read, the rest is counted as lost")
            return h5py.File(copy, "r"), tmp
        if info is not None and not info["checksum_ok"]:
            problems.append("signals.h5 has a damaged superblock, so no signal can be read")
            return None, None
        if info is None or info["flags"]:  # left open by its writer: SWMR, after a probe
            problem = probe_open(path)
            if problem is not None:
                problems.append(f"signals.h5 cannot be opened: {problem}")
                return None, None
            return open_signals(path), None
        return h5py.File(path, "r", libver="latest"), None  # closed cleanly: fails fast
    except OSError as exc:
        raise SessionFormatError(f"{path}: cannot be opened ({exc})") from None


def open_session(path: Path | str) -> Session:
    """Open a session folder for reading: every stream with its timestamps.

    Works on a finalised session and on one whose recorder died; ``problems``
    then says what is incomplete. Raises SessionFormatError when the folder is
    not a readable session.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    problems: list[str] = []
    if manifest["status"] == SessionStatus.RECORDING.value:
        problems.append(
            "the recorder did not finish this session (status is still "
            "'recording'); data up to the crash are readable"
        )
    streams: dict[str, SignalStream | CameraStream] = {}
    empty = np.zeros(0)
    markers = faults = trials = empty
    logs: dict[str, np.ndarray] = {}
    h5 = None
    declared = manifest["streams"]
    signals_path = folder / "signals.h5"
    tmp = None
    if signals_path.exists():
        h5, tmp = _open_signals(signals_path, problems)
    if h5 is not None:
        try:
            for name in h5:
                grp = h5[name]
                if "data" in grp and "blocks" in grp:
                    streams[name] = _signal_stream(name, grp)
                elif "data" in grp or "blocks" in grp or "kind" in grp.attrs:
                    problems.append(
                        f"stream {name!r}: its "
                        f"{'sample blocks' if 'data' in grp else 'data'} lay past the end "
                        f"of the cut signals.h5, so its samples cannot be placed in time"
                    )
            markers = _read_log(h5, "markers", problems) if "markers" in h5 else empty
            faults = _read_log(h5, "faults", problems) if "faults" in h5 else empty
            trials = _read_log(h5, "trials", problems) if "trials" in h5 else empty
            logs = {
                name: _read_log(h5, name, problems)
                for name in h5
                if name not in ("markers", "faults", "trials") and "log" in h5[name]
            }
        except (OSError, KeyError, ValueError) as exc:
            h5.close()
            if tmp is not None:
                tmp.cleanup()
            raise SessionFormatError(f"{signals_path}: cannot be read ({exc})") from None
    elif not signals_path.exists() and any(
        v.get("path", "").startswith("signals.h5") for v in declared.values()
    ):
        problems.append("signals.h5 is missing")
    if (folder / "camera" / "camera.json").exists():
        fps = float(declared.get("camera", {}).get("fps", 0.0))
        store = FrameStore(folder / "camera")
        streams["camera"] = CameraStream("camera", fps, store)
        for reason, n in store.missing.items():
            problems.append(f"camera: {n} journalled frame(s) cannot be read: {reason}")
        if store.torn_records:
            problems.append(
                "camera journal ends in a partial record (recorder killed "
                "mid-write); the partial record was ignored"
            )
    for name in declared:
        if name != "markers" and name not in streams:
            problems.append(f"stream {name!r} is declared in the manifest but has no data")
    sync = None
    if (folder / SYNC_FILE).exists():
        try:
            sync = json.loads((folder / SYNC_FILE).read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{SYNC_FILE} cannot be read ({exc}); streams are on host times")
        else:
            if sync.get("format_version") != SYNC_FORMAT_VERSION:
                problems.append(
                    f"{SYNC_FILE} has format_version {sync.get('format_version')!r};"
                    f" streams are on host times (run mmme align again)"
                )
                sync = None
    for name, stream in streams.items():
        stream.sync = (sync or {}).get("streams", {}).get(name)
    return Session(
        folder, manifest, streams, markers, faults, trials, problems, h5, sync, logs, tmp
    )
