"""Align a recorded session onto the master clock and write its certificate, ``sync.json``.

For each stream: its trigger edges (EEG event channel, MP160 digital inputs,
camera GPI), matched to the marker log, give a map from device time to master
time per clock segment (see :mod:`mmmelab.sync.align`). Known latencies come
from the lab configuration stored in the session. A stream without usable
triggers falls back to its host receive times, and the certificate says so; a
stream that lost its triggers part-way is flagged.

``sync.json`` holds, per stream, the method, the segments (with the range of
samples or frames each covers, the offset, drift, edges used and residual RMS and
maximum in ms) and warnings; for the camera also the dropped-frame map. After
alignment, ``open_session`` returns every stream on the master clock.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab.errors import SessionFormatError
from mmmelab.storage import CameraStream, SignalStream, open_session
from mmmelab.storage.frames import FLAG_CLOCK_RESET
from mmmelab.storage.session import SYNC_FILE, SYNC_FORMAT_VERSION
from mmmelab.sync.align import (
    AlignMethod,
    Segment,
    StreamAlignment,
    align_coded,
    align_timed,
    camera_edges,
    coded_edges,
    host_time_segment,
)
from mmmelab.sync.codes import trigger_levels

LOST_TRIGGERS_AFTER = 3  # markers in a row a stream did not see before it is flagged


def _segments_by(index_breaks: list[int], n: int) -> list[tuple[int, int]]:
    edges = [0, *sorted(set(b for b in index_breaks if 0 < b < n)), n]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _lost_triggers(
    seg: Segment,
    alignment: StreamAlignment,
    marker_t: np.ndarray,
    edge_master: np.ndarray,
    stream_end: float,
) -> None:
    """Flag a stream whose matched edges stop while markers went on."""
    if not len(edge_master) or not len(marker_t):
        return
    last_seen = float(edge_master.max())
    missed = marker_t[(marker_t > last_seen + 0.05) & (marker_t < stream_end)]
    if len(missed) >= LOST_TRIGGERS_AFTER:
        alignment.warnings.append(
            f"lost its triggers: none of the {len(missed)} markers after "
            f"{last_seen:.3f} s (master clock) shows as an edge; the map there is extrapolated"
        )


def _align_signal(
    name: str,
    stream: SignalStream,
    markers: np.ndarray,
    box_latency_s: float,
    latency_s: float,
    breaks: list[int],
) -> tuple[StreamAlignment, list[dict[str, Any]]]:
    alignment = StreamAlignment(name)
    ranges: list[dict[str, Any]] = []
    index = stream.sample_index
    device_t = index / stream.rate_hz
    codes = trigger_levels(stream.aux)
    marker_t = markers["t_on"] + box_latency_s if len(markers) else np.zeros(0)
    marker_code = markers["code"].astype(np.int64) if len(markers) else np.zeros(0, np.int64)
    alignment.edges_expected = len(marker_t)
    for a, b in _segments_by(breaks, len(device_t)):
        t = device_t[a:b]
        seg = None
        if codes is not None:
            et, ec = coded_edges(t, codes[a:b], 1.0 / stream.rate_hz, latency_s)
            rough = _rough_map(stream, device_t, a, b)
            seg = align_coded(
                et, ec, marker_t, marker_code, float(t[0]), float(t[-1]), rough=(rough.a, rough.b)
            )
            if seg is not None:
                _lost_triggers(
                    seg, alignment, marker_t, seg.to_master(et), float(seg.to_master(t[-1:])[0])
                )
        if seg is None:
            seg = _rough_map(stream, device_t, a, b)
            alignment.warnings.append(
                f"samples {a}-{b - 1}: no usable trigger edges; mapped by host receive "
                f"times (accuracy of the order of the transport latency, "
                f"{seg.residual_rms_ms:.1f} ms RMS)"
            )
        alignment.segments.append(seg)
        ranges.append({"first": a, "last": b - 1})
    return alignment, ranges


def _rough_map(stream: SignalStream, device_t: np.ndarray, a: int, b: int) -> Segment:
    """Device to master time from the host receive times of the blocks in samples a..b."""
    blocks = stream.blocks
    ends = np.cumsum(blocks["count"]) - 1
    sel = (ends >= a) & (ends < b)
    return host_time_segment(
        device_t[ends[sel]], blocks["host_time"][sel], float(device_t[a]), float(device_t[b - 1])
    )


def _signal_breaks(stream_name: str, stream: SignalStream, faults: np.ndarray) -> list[int]:
    """Sample positions where a device clock may have restarted (reconnects, restarts)."""
    if not len(faults) or not len(stream.blocks):
        return []
    ends = np.cumsum(stream.blocks["count"])
    starts = ends - stream.blocks["count"]
    breaks = []
    for f in faults:
        if f["stream"].decode() == stream_name and f["kind"].decode() in ("restart", "clock_reset"):
            k = int(np.searchsorted(stream.blocks["host_time"], f["host_time"]))
            if k < len(starts):
                breaks.append(int(starts[k]))
    return breaks


def camera_exposure_device_s(journal: np.ndarray, readout_us: float) -> np.ndarray:
    """Each frame's exposure start on the camera clock (timestamps mark readout start)."""
    return journal["ts_us"] / 1e6 - readout_us / 1e6


def _align_camera(
    stream: CameraStream,
    markers: np.ndarray,
    box_latency_s: float,
    latency_s: float,
    readout_us: float,
    fps: float,
) -> tuple[StreamAlignment, list[dict[str, Any]], list[dict[str, Any]]]:
    alignment = StreamAlignment("camera")
    ranges: list[dict[str, Any]] = []
    journal = stream.journal
    exp_t = camera_exposure_device_s(journal, readout_us)
    gpi = (journal["gpi_level"] & 1).astype(np.int64)
    host = journal["host_time"]
    resets = [int(i) for i in np.flatnonzero((journal["flags"] & FLAG_CLOCK_RESET) != 0)]
    resets += [int(i) for i in np.flatnonzero(np.diff(exp_t) < 0) + 1]
    on = markers["t_on"] + box_latency_s if len(markers) else np.zeros(0)
    off = markers["t_off"] + box_latency_s if len(markers) else np.zeros(0)
    marker_t = np.concatenate([on, off])
    marker_rising = np.concatenate([np.ones(len(on), bool), np.zeros(len(off), bool)])
    alignment.edges_expected = 2 * len(on)
    period = 1.0 / fps if fps else 1.0 / 150.0
    for a, b in _segments_by(resets, len(exp_t)):
        t = exp_t[a:b]
        et, eh, rising, lo, hi = camera_edges(t, gpi[a:b], host[a:b], latency_s)
        seg = None
        if len(et):
            seg = align_timed(
                et, eh, rising, marker_t, marker_rising, float(t[0]), float(t[-1]), period, lo, hi
            )
        if seg is not None:
            _lost_triggers(
                seg, alignment, on, seg.to_master(et[rising]), float(seg.to_master(t[-1:])[0])
            )
        else:
            seg = host_time_segment(t, host[a:b], float(t[0]), float(t[-1]))
            alignment.warnings.append(
                f"frames {a}-{b - 1}: no usable GPI edges; mapped by host receive times"
            )
        alignment.segments.append(seg)
        ranges.append({"first": a, "last": b - 1})
    drops = []
    nf = journal["acq_nframe"].astype(np.int64)
    for k in np.flatnonzero(np.diff(nf) > 1):
        seg_i = next(i for i, r in enumerate(ranges) if r["first"] <= k <= r["last"])
        seg = alignment.segments[seg_i]
        missing = int(nf[k + 1] - nf[k] - 1)
        t_prev = float(seg.to_master(exp_t[k : k + 1])[0])
        drops.append(
            {
                "after_acq_nframe": int(nf[k]),
                "missing": missing,
                "master_times": [t_prev + (i + 1) * period * seg.b for i in range(missing)],
            }
        )
    return alignment, ranges, drops


def align_session(path: Path | str, write: bool = True) -> dict[str, Any]:
    """Align every stream of a session; returns the certificate (and writes sync.json)."""
    folder = Path(path)
    with open_session(folder) as session:
        lab = session.manifest.get("lab", {})
        box_latency = float(lab.get("triggerbox", {}).get("latency_ms", 0.0)) / 1000.0
        markers = session.markers
        cert: dict[str, Any] = {
            "format_version": SYNC_FORMAT_VERSION,
            "master": "pylsl.local_clock",
            "box_latency_ms": box_latency * 1000.0,
            "markers": int(len(markers)),
            "streams": {},
        }
        for name, stream in session.streams.items():
            if isinstance(stream, CameraStream):
                cam_info = session.manifest.get("streams", {}).get("camera", {})
                readout = float(cam_info.get("readout_us", 0.0))
                latency = float(lab.get("camera", {}).get("trigger_latency_ms", 0.0)) / 1000.0
                al, ranges, drops = _align_camera(
                    stream, markers, box_latency, latency, readout, stream.rate_hz
                )
                entry = al.to_dict() | {
                    "device_time": "exposure start = ts_us - readout_us",
                    "readout_us": readout,
                    "dropped_frames": drops,
                }
            elif stream.kind == "lsl":
                entry = {
                    "method": AlignMethod.LSL,
                    "device_time": "lsl_time + lsl_offset",
                    "warnings": [
                        "no trigger input: times come from LSL's own clock synchronisation"
                    ],
                    "segments": [],
                }
                cert["streams"][name] = entry
                continue
            else:
                latency = float(lab.get(name, {}).get("trigger_latency_ms", 0.0)) / 1000.0
                al, ranges = _align_signal(
                    name,
                    stream,
                    markers,
                    box_latency,
                    latency,
                    _signal_breaks(name, stream, session.faults),
                )
                entry = al.to_dict() | {
                    "device_time": "sample_index / rate_hz",
                    "rate_hz": stream.rate_hz,
                }
            for seg, rng in zip(entry["segments"], ranges, strict=True):
                seg.update(rng)
            cert["streams"][name] = entry
    if write:
        target = folder / SYNC_FILE
        tmp = folder / (SYNC_FILE + ".tmp")
        try:  # atomically: a reader sees the old certificate or the new one
            tmp.write_text(json.dumps(cert, indent=2))
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise SessionFormatError(
                f"{target}: cannot be written ({exc.strerror or exc}); the session folder "
                f"must be writable to store its alignment"
            ) from None
    return cert


def summary_lines(cert: dict[str, Any]) -> list[str]:
    lines = [f"{cert['markers']} markers; trigger box latency {cert['box_latency_ms']:g} ms"]
    for name, s in cert["streams"].items():
        if s["method"] == AlignMethod.LSL:
            lines.append(f"  {name:<8} LSL clock synchronisation (no triggers)")
            continue
        for seg in s["segments"]:
            start = seg["device_start"]
            offset = seg["a"] + (seg["b"] - 1.0) * start  # master minus device, at its start
            lines.append(
                f"  {name:<8} {seg['method']:<9} master-device {offset:+.6f} s, drift "
                f"{seg['drift_ppm']:+8.2f} ppm, {seg['edges_used']}/{seg['edges_found']} edges, "
                f"residual RMS {seg['residual_rms_ms']:.3f} ms, max "
                f"{seg['residual_max_ms']:.3f} ms"
            )
        for w in s.get("warnings", []):
            lines.append(f"  {name:<8} WARNING: {w}")
        if s.get("dropped_frames"):
            lost = sum(d["missing"] for d in s["dropped_frames"])
            lines.append(
                f"  {name:<8} {lost} dropped frame(s) at "
                f"{len(s['dropped_frames'])} place(s), their times estimated"
            )
    return lines
