"""Integrity check of a recorded session (``mmme check``).

For every stream: how many frames or samples, the rate, gaps in the device's
own index, dropped frames; how many of the emitted trigger codes appear as
edges in that stream's trigger input; and whether every marker the protocol
implies was emitted. ``ok`` is true only for a finished, complete session with
nothing missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.storage.manifest import SessionStatus
from mmmelab.streams import FaultKind
from mmmelab.sync.codes import (
    code_onsets,
    common_subsequence,
    match_plan,
    session_plan,
    trigger_levels,
)


def trigger_codes(stream: SignalStream) -> np.ndarray | None:
    """Per-sample trigger code of a signal stream (stimulus byte), or None without trigger input."""
    return trigger_levels(stream.aux)


def rising_edges(levels: np.ndarray) -> np.ndarray:
    """The new level at every change to a non-zero level."""
    return levels[code_onsets(levels)]


def count_trigger_edges(stream: SignalStream, sent: list[int]) -> int:
    """How many of the ``sent`` codes appear, in order, as edges in the stream's trigger input."""
    levels = trigger_codes(stream)
    if levels is None:
        return 0
    return common_subsequence([frozenset({c}) for c in sent], rising_edges(levels).tolist())


def count_camera_edges(stream: CameraStream, markers: np.ndarray, latency_s: float = 0.05) -> int:
    """How many sent pulses the camera saw: a frame with GPI high arriving during the pulse.

    The camera samples its single input once per frame, so it sees that a pulse
    happened (and between which exposures), not which code it carried.
    """
    if not len(markers) or not stream.count:
        return 0
    high = stream.journal["gpi_level"] & 1 == 1
    t_high = np.sort(stream.host_time[high])
    lo = np.searchsorted(t_high, markers["t_on"])
    hi = np.searchsorted(t_high, markers["t_off"] + latency_s)
    return int(np.count_nonzero(hi > lo))


def check_session(path: Path | str) -> dict[str, Any]:
    """The ``mmme check --json`` report for one session folder."""
    with open_session(path) as session:
        problems = list(session.problems)
        # what the recorder itself found wrong (a failed writer, a lost device, ...)
        problems += [f"recorder: {p}" for p in session.manifest.get("problems", [])]
        status = session.status
        if status is not SessionStatus.COMPLETE:
            problems.append(f"session status is {status.value!r}, not 'complete'")
        sent = [int(c) for c in session.markers["code"]] if len(session.markers) else []
        streams: dict[str, Any] = {}
        recorded = _recorded_counts(session)
        for name, stream in session.streams.items():
            entry = _stream_report(stream, session.markers, recorded.get(name))
            problems += entry.pop("losses")
            streams[name] = entry
            if entry["count"] == 0:
                problems.append(f"stream {name!r} recorded nothing")
            if entry["gaps"]:
                problems.append(f"stream {name!r} has {entry['gaps']} gap(s)")
            if entry["dropped"]:
                problems.append(f"stream {name!r} dropped {entry['dropped']} frame(s)/sample(s)")
            if entry.pop("has_trigger_input") and entry["trigger_edges"] < len(sent):
                problems.append(
                    f"stream {name!r} shows {entry['trigger_edges']} of the "
                    f"{len(sent)} trigger codes sent"
                )
        streams["markers"] = {
            "kind": "markers",
            "count": len(sent),
            "rate_hz": 0.0,
            "gaps": 0,
            "dropped": 0,
            "channels": 1,
            "trigger_edges": int(np.sum(session.markers["ttl_ok"])) if len(sent) else 0,
        }
        for kind in ("camera", "eeg", "physio"):
            if not any(s["kind"] == kind for s in streams.values()):
                problems.append(f"no {kind} stream in the session")
        proto = session.manifest.get("protocol", {})
        plan = session_plan(len(proto.get("practice", [])), len(proto.get("trial_order", [])))
        found = match_plan(plan, sent)
        if found < len(plan):
            problems.append(
                f"{len(plan) - found} of the {len(plan)} markers the protocol implies are missing"
            )
        warnings = []
        for stream_name, kind, count, detail in _fault_rows(session):
            # live sync notes are warnings: the alignment certificate is the authority, and
            # a stream that lost its triggers shows above as missing trigger edges; writer
            # logs and restarts are warnings too: what they cost shows in the counts
            if kind in INFORMATIONAL:
                warnings.append(f"{stream_name}: {detail}")
                continue
            problems.append(f"{stream_name}: {kind} ({count}): {detail}")
        stimulus = _stimulus_report(session.logs.get("presentations"))
        if stimulus.get("frames_dropped"):
            warnings.append(
                f"stimulus: {stimulus['frames_dropped']} clip frame(s) dropped on the "
                f"participant's screen (see the presentations table)"
            )
        return {
            "ok": not problems,
            "session": str(Path(path)),
            "status": status.value,
            "simulated": session.simulated,
            "streams": streams,
            "markers": {"expected": len(plan), "found": found},
            "problems": problems,
            "warnings": warnings,
            "stimulus": stimulus,
        }


def _stimulus_report(pres: np.ndarray | None) -> dict[str, Any]:
    """Presentation quality of a GUI session (empty for headless sessions)."""
    if pres is None or not len(pres):
        return {}
    return {
        "presentations": int(len(pres)),
        "frames_shown": int(pres["frames_shown"].sum()),
        "frames_dropped": int(pres["frames_dropped"].sum()),
        "frames_repeated": int(pres["frames_repeated"].sum()),
        "late_ms_max": round(float(pres["late_ms_max"].max()), 2),
        "audio_offset_ms_median": (
            round(float(np.nanmedian(pres["audio_offset_ms"])), 2)
            if np.isfinite(pres["audio_offset_ms"]).any()
            else None
        ),
    }


INFORMATIONAL = frozenset(k.value for k in FaultKind if k.informational)


def _fault_rows(session: Any) -> list[tuple[str, str, int, str]]:
    """The session's fault rows: from signals.h5, or from the manifest when the signal
    writer failed and signals.h5 may lack some of them."""
    rows = [
        (r["stream"].decode(), r["kind"].decode(), int(r["count"]), r["detail"].decode())
        for r in session.faults
    ]
    kept = session.manifest.get("faults")
    if isinstance(kept, list) and len(kept) > len(rows):
        rows = [
            (str(f.get("stream", "")), str(f.get("kind", "")), int(f.get("count", 0)),
             str(f.get("detail", "")))
            for f in kept
            if isinstance(f, dict)
        ]  # fmt: skip
    return rows


def _recorded_counts(session: Any) -> dict[str, int]:
    """What the recorder says it took in per stream: camera frames grabbed, samples received.

    From the final manifest's telemetry; for a session whose recorder died, the
    camera's last telemetry row in signals.h5 (a lower bound).
    """
    out: dict[str, int] = {}
    tel = session.manifest.get("telemetry")
    if isinstance(tel, dict):
        for name, entry in tel.items():
            if not isinstance(entry, dict):
                continue
            key = "frames" if name == "camera" else "samples"
            if isinstance(entry.get(key), int | float):
                out[name] = int(entry[key])
    rows = session.logs.get("telemetry")
    if "camera" not in out and rows is not None and len(rows):
        out["camera"] = int(rows["frames"][-1])
    return out


def _stream_report(
    stream: SignalStream | CameraStream, markers: np.ndarray, recorded: int | None
) -> dict[str, Any]:
    """Counts of one stream and every loss that can be known, each with its reason."""
    sent = [int(c) for c in markers["code"]] if len(markers) else []
    losses: list[str] = []
    if isinstance(stream, CameraStream):
        gaps, missing = stream.dropped()
        ts = stream.device_time_s
        rate = float(1.0 / np.median(np.diff(ts))) if len(ts) > 1 else 0.0
        skipped = (
            int(stream.journal["api_skipped"][-1] + stream.journal["transport_skipped"][-1])
            if len(ts)
            else 0
        )
        dropped = max(missing, skipped)
        # a deleted or cut chunk file shows as a gap in acq_nframe (its problem line
        # comes from open_session), frames lost at the very end only against the count
        if recorded is not None and recorded > stream.count + dropped:
            # grabbed but never on disk and not in any gap: frames left in the ring
            # when the writer died, or cut off at the end
            never = recorded - stream.count - dropped
            losses.append(
                f"camera: {never} of the {recorded} frames the recorder grabbed are not on disk"
            )
            dropped += never
            gaps += 1
        return {
            "kind": "camera",
            "count": stream.count,
            "rate_hz": round(rate, 3),
            "gaps": gaps,
            "dropped": dropped,
            "channels": 1,
            "trigger_edges": count_camera_edges(stream, markers),
            "has_trigger_input": True,
            "losses": losses,
            "volumes": [
                {"volume": k, "folder": str(f), "frames": int(n), "present": f.is_dir()}
                for k, (f, n) in enumerate(
                    zip(stream.frames.volumes, stream.frames.volume_frames, strict=False)
                )
            ],
        }
    gaps, missing = stream.gaps()
    for reason, n in stream.lost.items():
        gaps += 1
        missing += n
        losses.append(f"stream {stream.name!r}: {n} sample(s) {reason}")
    if recorded is not None and recorded > stream.count + missing:
        never = recorded - stream.count - sum(stream.lost.values())
        if never > 0:
            losses.append(
                f"stream {stream.name!r}: {never} of the {recorded} samples the recorder "
                f"received never reached signals.h5"
            )
            missing += never
            gaps += 1
    return {
        "kind": stream.kind,
        "count": stream.count,
        "rate_hz": stream.rate_hz,
        "gaps": gaps,
        "dropped": missing,
        "channels": len(stream.channels),
        "trigger_edges": count_trigger_edges(stream, sent),
        "has_trigger_input": trigger_codes(stream) is not None,
        **(
            {"digital_channels": int(stream.aux["digital"].shape[1])}
            if "digital" in stream.aux
            else {}
        ),
        "losses": losses,
    }
