"""The clip and display check before Start: a few seconds of a clip with its sound
on the participant's screen, judged as the experimenter needs it.

- display: the refresh rate the operating system reports for the participant's
  screen, and what the test presentation measured: frames shown, dropped and
  repeated, the interval between presented frames (median and 99th percentile)
  and the latest a frame came. A raster window cannot see the monitor's vertical
  blank, so the measured figure is the presentation interval; the photodiode
  patch is the ground truth for onsets.
- audio: an output device exists and the clip's sound started (with its delay
  from the first frame).
- photodiode: the patch is enabled and flipped at the first frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmmelab.acquisition.rigchecks import Check, Verdict, worst

TEST_SECONDS = 3.0


def display_verdicts(
    refresh_hz: float,
    fps: float,
    t_display: list[float],
    dropped: int,
    repeated: int,
    late_max_s: float,
    audio: dict[str, Any],
    photodiode: dict[str, Any],
) -> dict[str, Any]:
    """The display check's record: {"checks": [...], "verdict": ...}."""
    t = np.asarray(t_display, dtype=np.float64)
    gaps = np.diff(t) * 1000.0 if len(t) > 1 else np.zeros(0)
    period_ms = 1000.0 / fps if fps > 0 else math.nan
    figures = {
        "refresh_hz_reported": round(refresh_hz, 3),
        "clip_fps": fps,
        "frames_shown": len(t),
        "dropped": dropped,
        "repeated": repeated,
        "interval_ms_median": round(float(np.median(gaps)), 3) if len(gaps) else None,
        "interval_ms_p99": round(float(np.percentile(gaps, 99)), 3) if len(gaps) else None,
        "late_max_ms": round(late_max_s * 1000.0, 3),
    }
    ratio = refresh_hz / fps if fps > 0 and refresh_hz > 0 else math.nan
    if len(t) < 2:
        display = Check("display", Verdict.RED, "the test clip showed no frames", figures)
    elif dropped or late_max_s * 1000.0 > period_ms:
        display = Check(
            "display", Verdict.RED,
            f"{dropped} frame(s) dropped, the latest {late_max_s * 1000:.1f} ms late "
            f"(one frame is {period_ms:.1f} ms): the participant PC cannot keep up",
            figures,
        )  # fmt: skip
    elif math.isfinite(ratio) and abs(ratio - round(ratio)) > 0.02:
        display = Check(
            "display", Verdict.AMBER,
            f"the screen refreshes at {refresh_hz:g} Hz, not a multiple of the clip's "
            f"{fps:g} fps: frames alternate in length (judder); set the screen to "
            f"{fps * max(1, round(ratio)):g} Hz if it can",
            figures,
        )  # fmt: skip
    else:
        display = Check(
            "display", Verdict.GREEN,
            f"{len(t)} frames, none dropped; a frame every {figures['interval_ms_median']} ms "
            f"(clip {period_ms:.1f} ms; the screen reports {refresh_hz:g} Hz)",
            figures,
        )  # fmt: skip
    checks = [display, _audio(audio), _photodiode(photodiode)]
    return {"checks": [c.to_dict() for c in checks], "verdict": worst(checks).value}


def _audio(a: dict[str, Any]) -> Check:
    if not a.get("clip_has_sound"):
        return Check("audio", Verdict.AMBER, "the test clip has no sound track to play", a)
    if not a.get("device"):
        return Check(
            "audio", Verdict.RED,
            "no audio output device: the clips' sound will not be heard", a,
        )  # fmt: skip
    if a.get("offset_ms") is None:
        return Check("audio", Verdict.RED, "the audio output never started", a)
    return Check(
        "audio", Verdict.GREEN,
        f"sound on {a.get('device')}, started {a['offset_ms']:.0f} ms after the first frame", a,
    )  # fmt: skip


def _photodiode(p: dict[str, Any]) -> Check:
    if not p.get("enabled"):
        return Check(
            "photodiode", Verdict.AMBER,
            "no photodiode patch: clip onsets rest on the software's display times", p,
        )  # fmt: skip
    if not p.get("flips"):
        return Check("photodiode", Verdict.RED, "the photodiode patch never flipped", p)
    return Check(
        "photodiode", Verdict.GREEN,
        f"the patch ({p.get('corner')}, {p.get('size_px')} px) flipped at the first frame", p,
    )  # fmt: skip
