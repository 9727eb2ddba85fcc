"""Run every set-up check on a connected lab (the console's check button and
``mmme check-rig``): the camera's exposure, focus and lighting, the EEG's
impedances (or its signal), each physiology signal, and the trigger loop-back.

The result is the set-up record kept in the session manifest::

    {"checks": [Check.to_dict(), ...], "verdict": "green|amber|red",
     "loopback": {...}, "camera": {...settings...}, "t_master": ..., "duration_s": ...,
     "overridden": false}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mmmelab.acquisition import rigchecks as rc
from mmmelab.acquisition import signalchecks as sc
from mmmelab.acquisition.preview import Preview
from mmmelab.errors import LabError

if TYPE_CHECKING:
    from mmmelab.acquisition.engine import SessionEngine

logger = logging.getLogger(__name__)

#: below this the face box has almost no detail: the lens is far out of focus
SHARPNESS_FLOOR = 0.002
PHYSIO = ("ECG", "PPG", "RSP", "SKT", "EDA")
PHYSIO_S = 12.0  # two breaths at 10 a minute


def _quiet(_: str) -> None:
    pass


def run_rig_check(
    engine: SessionEngine,
    seconds: float = 3.0,
    threshold_kohm: float = 10.0,
    progress: Callable[[str], None] = _quiet,
    physio_seconds: float = PHYSIO_S,
) -> dict[str, Any]:
    """Every check on the engine's preview (started if needed), on data collected
    from now on: ``seconds`` for the camera and the EEG, ``physio_seconds`` for the
    physiology (a breathing rate needs a few breaths). The record is also stored as
    ``engine.setup.checks`` for the manifest."""
    t0 = time.monotonic()
    if engine.eeg_in_impedance_mode:
        raise LabError(
            "set-up check: the amplifier is in impedance mode (values on the Acquire PC); "
            "end it first, then run the checks on the EEG itself"
        )
    preview = engine.preview()
    preview.clear()
    wait = max(seconds, physio_seconds)
    progress(f"collecting {wait:g} s of every stream")
    if not preview.wait_for_data(wait, timeout_s=wait + 10.0):
        errors = preview.errors() or {"devices": "not enough data within the wait"}
        raise LabError("set-up check: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    checks: list[rc.Check] = []
    checks += camera_checks(preview, seconds)
    checks += eeg_checks(engine, preview, seconds, threshold_kohm)
    checks += physio_checks(preview, physio_seconds)
    progress("trigger loop-back")
    loop = preview.loopback()
    checks += loopback_checks(loop)
    record = {
        "checks": [c.to_dict() for c in checks],
        "verdict": rc.worst(checks).value,
        "loopback": loop,
        "camera": {**engine.lab.camera.settings(), "face_box": list(preview.face_box)},
        "t_master": engine.clock(),
        "duration_s": round(time.monotonic() - t0, 2),
        "overridden": False,
    }
    engine.setup.checks = record
    return record


def run_loopback(engine: SessionEngine) -> dict[str, Any]:
    """The trigger loop-back alone (about a second): one test code, per stream its edge
    and latency. When the set-up checks ran before, their trigger rows are replaced by
    these and the verdict is judged again, so the manifest keeps the latest truth.
    Returns the (updated) set-up record, or one with only these checks."""
    loop = engine.preview().loopback()
    checks = loopback_checks(loop)
    old = engine.setup.checks.get("checks") if engine.setup.checks else None
    kept = [rc.Check(c["name"], rc.Verdict(c["verdict"]), c["reason"], c.get("figures", {}))
            for c in old or [] if not c["name"].startswith("trigger")]  # fmt: skip
    merged = kept + checks
    record = dict(engine.setup.checks) if old is not None else {"loopback_only": True}
    record |= {
        "checks": [c.to_dict() for c in merged],
        "verdict": rc.worst(merged).value,
        "loopback": loop,
        "t_master": engine.clock(),
    }
    record.setdefault("overridden", False)
    engine.setup.checks = record
    return record


def camera_checks(preview: Preview, seconds: float) -> list[rc.Check]:
    """The camera's checks on the face box of the preview: exposure, focus, and lamp
    flicker over the last ``seconds``."""
    latest = preview.latest_frame()
    if latest is None:
        return [rc.Check("camera", rc.Verdict.RED, "no frame from the camera")]
    x, y, w, h = preview.face_box
    box = latest[1][y : y + h, x : x + w]
    focus = rc.sharpness(box)
    preview.focus.update(box)
    best = preview.focus.best
    figures = {"sharpness": round(focus, 6), "best_seen": round(best, 6)}
    if focus < SHARPNESS_FLOOR:
        verdict = rc.Verdict.RED
        reason = f"sharpness {focus:.4f}: the face box is blurred (focus the lens)"
    elif focus < 0.7 * best:
        verdict = rc.Verdict.AMBER
        reason = (f"sharpness {focus:.4f}, {focus / best:.0%} of the best seen ({best:.4f}): "
                  f"turn the focus ring back towards the peak")  # fmt: skip
    else:
        verdict = rc.Verdict.GREEN
        reason = f"sharpness {focus:.4f} (best seen {best:.4f})"
    return [
        rc.exposure(box),
        rc.Check("focus", verdict, reason, figures),
        rc.flicker(preview.face_means(seconds), preview.fps),
    ]


def eeg_checks(
    engine: SessionEngine, preview: Preview, seconds: float, threshold_kohm: float
) -> list[rc.Check]:
    """The EEG's checks: impedances against ``threshold_kohm`` when the amplifier gives
    them, else the signal itself over ``seconds`` (flat, noisy, line noise)."""
    driver = engine.devices.signal_drivers.get("eeg")
    if driver is None:
        return []
    labels = list(preview.layouts["eeg"].channels)
    z = getattr(driver, "impedances_kohm", None)
    out = []
    if z is not None and len(z) == len(labels):
        out.append(sc.impedances(z, labels, threshold_kohm))
    data, _, _ = preview.signal("eeg", seconds)
    out.append(
        sc.eeg_signal_flags(data, preview.layouts["eeg"].rate_hz, labels, engine.lab.line_hz)
    )
    positions = sc.head_positions(labels)  # for the console's head map
    for c in out:
        c.figures["positions"] = positions
    return out


def _column(labels: tuple[str, ...], name: str) -> int | None:
    for j, label in enumerate(labels):
        if label.upper().startswith(name):
            return j
    return None


def physio_checks(preview: Preview, seconds: float) -> list[rc.Check]:
    """The physiology's checks on ``seconds`` of the MP160's channels: heart rate (ECG
    against PPG), breathing, EDA, skin temperature."""
    if "physio" not in preview.layouts:
        return []
    layout = preview.layouts["physio"]
    data, _, _ = preview.signal("physio", seconds)
    col = {n: _column(layout.channels, n) for n in PHYSIO}
    rate = layout.rate_hz
    out = []

    def x(name: str) -> np.ndarray | None:
        j = col[name]
        return None if j is None else np.nan_to_num(data[:, j].astype(np.float64))

    ecg, ppg, rsp, skt, eda = (x(n) for n in PHYSIO)
    if ecg is not None and ppg is not None:
        out.append(sc.heart_rate(ecg, ppg, rate))
    if eda is not None:
        out.append(sc.eda(eda))
    if rsp is not None:
        out.append(sc.breathing(rsp, rate))
    if skt is not None:
        out.append(sc.skin_temperature(skt))
    missing = [n for n in PHYSIO if col[n] is None]
    if missing:
        out.append(
            rc.Check("physio channels", rc.Verdict.AMBER, f"no channel for {', '.join(missing)}")
        )
    return out


WHERE = {
    "camera": "the camera's GPI input",
    "eeg": "the amplifier's trigger input",
    "physio": "the MP160's digital inputs",
}


def loopback_checks(loop: dict[str, Any]) -> list[rc.Check]:
    """One check per stream of the trigger loopback: did the test pulses arrive, and with
    what latency."""
    out = []
    for name, res in loop["streams"].items():
        where = WHERE.get(name, name)
        if res["arrived"]:
            out.append(rc.Check(
                f"trigger {name}", rc.Verdict.GREEN,
                f"the test code reached {where} {res['latency_ms']:.1f} ms after the LSL marker",
                res,
            ))  # fmt: skip
        else:
            out.append(rc.Check(
                f"trigger {name}", rc.Verdict.RED,
                f"the test code never reached {where}: check its trigger cable",
                res,
            ))  # fmt: skip
    if not loop.get("ttl_ok", True):
        out.append(rc.Check("trigger box", rc.Verdict.RED, "the trigger box write failed"))
    return out
