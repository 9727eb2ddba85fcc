"""A simulated study: complete sessions written faster than real time (``mmme simulate``).

Each session is written through the real writers - :class:`SessionWriter` (manifest,
``signals.h5`` by its writer process) and :class:`FrameWriter` (camera chunks and
journal) - from the simulated lab's models (``acquisition.simulation``): 64-channel
EEG, ECG/PPG/RSP/SKT/EDA, a small synthetic face, and the MMME paradigm's markers.
Every device has its own clock (offset and drift) and sees the shared trigger, so
``mmme align`` puts the session on the master clock exactly as it does a live one;
a simulated session then opens with :func:`mmmelab.storage.open_session` like a
recorded one.

The ground truth is in the manifest under ``simulation_truth``: every micro- and
macro-expression (onset, apex, offset on the master clock and as camera frames),
and whether this participant's heart rate responds to micro-expressions (it rises
by ``rise_bpm``, ``delay_s`` after the onset). The truth is also written as the
session's consensus annotation file by the caller (``mmme simulate``).

Runs in the caller's thread; the signal writer is its usual child process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.acquisition import simulation
from mmmelab.config import LabConfig, load_lab, shipped
from mmmelab.errors import LabError
from mmmelab.protocol import Protocol, load_protocol
from mmmelab.storage.directio import aligned_buffer
from mmmelab.storage.frames import JOURNAL_DTYPE, FrameGeometry, FrameWriter
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import TRIAL_DTYPE, SessionWriter
from mmmelab.storage.signals import SignalSpec
from mmmelab.streams import AuxSpec, StreamKind
from mmmelab.sync.codes import EventCode

logger = logging.getLogger(__name__)

EMOTIONS = ("happiness", "surprise", "sadness", "fear", "anger", "disgust", "contempt")
BLOCK_S = 0.1  # samples per signal block, as the live drivers deliver them
MASTER_START_S = 5000.0  # master clock (pylsl.local_clock) at the first sample
PULSE_S, GAP_S = 0.02, 0.02  # trigger pulse width and spacing (as the lab config)


@dataclass(frozen=True)
class StudyPlan:
    """What to simulate. ``responders``: how many participants (the first ones) have the
    heart-rate response after micro-expressions; None = every other participant."""

    participants: int = 8
    minutes: float = 10.0
    camera_width: int = 64
    camera_height: int = 48
    fps: float = 150.0
    eeg_channels: int = 64
    rate_hz: float = 1000.0
    me_per_clip: float = 1.3
    mae_per_clip: float = 0.6
    responders: int | None = None
    seed: int = 1
    bad_eeg_channels: int = 1  # channels made noisy (for bad-channel detection)
    dropped_frames: int = 0  # places where the camera drops two frames
    hr_response_to: tuple[str, ...] = ("ME",)  # expression kinds the heart rate answers
    hr_response: tuple[float, float, float] | None = None  # rise bpm, delay s, width s
    hr_response_at: str = "onset"  # the delay counts from the expression's onset or apex
    min_gap_s: float = 6.0  # between expression onsets
    # emotion-specific physiology and EEG after each expression (0: none), scaling
    # synth.EMOTION_PHYSIO and the EEG's alpha/beta change (for recognition studies)
    emotion_scale: float = 0.0
    emotion_scale_eeg: float | None = None  # the EEG's own scale (None: emotion_scale)
    # each participant sees the clips in their own seeded order (counterbalanced), not
    # the protocol's one order: short sessions then cover every emotion
    order_per_participant: bool = False

    def __post_init__(self) -> None:
        if self.hr_response_at not in ("onset", "apex"):
            raise LabError(f"hr_response_at must be 'onset' or 'apex', not {self.hr_response_at!r}")

    def eeg_scale(self) -> float:
        return self.emotion_scale if self.emotion_scale_eeg is None else self.emotion_scale_eeg

    def responder(self, k: int) -> bool:
        if self.responders is None:
            return k % 2 == 0
        return k < self.responders


@dataclass
class _Clock:
    """A device clock: device time = (master - start) * (1 + drift) + offset."""

    start_master: float
    offset_s: float
    drift_ppm: float

    def device(self, master: np.ndarray | float) -> Any:
        return (np.asarray(master) - self.start_master) * (
            1 + self.drift_ppm * 1e-6
        ) + self.offset_s

    def master(self, device: np.ndarray | float) -> Any:
        return (np.asarray(device) - self.offset_s) / (
            1 + self.drift_ppm * 1e-6
        ) + self.start_master


@dataclass
class _Timeline:
    markers: list[tuple[int, float, str]]  # (code, t_on master, label)
    trials: list[dict[str, Any]]
    expressions: list[dict[str, Any]]  # kind, onset, apex, offset (master s), emotion, trial
    end_s: float


def _place(
    rng: np.random.Generator, lo: float, hi: float, n: int, taken: list[float], gap: float = 6.0
) -> list:
    out: list[float] = []
    for _ in range(50 * max(n, 1)):
        if len(out) >= n:
            break
        t = float(rng.uniform(lo, hi))
        if all(abs(t - u) > gap for u in [*taken, *out]):
            out.append(t)
    return sorted(out)


def _timeline(plan: StudyPlan, protocol: Protocol, rng: np.random.Generator) -> _Timeline:
    """Markers, trials and expressions of one session on the master clock."""
    t = MASTER_START_S + 1.0
    end = MASTER_START_S + plan.minutes * 60.0 - 2.0
    markers: list[tuple[int, float, str]] = [(EventCode.SESSION_START, t, "")]
    trials: list[dict[str, Any]] = []
    expressions: list[dict[str, Any]] = []
    order = list(protocol.trial_order)
    if plan.order_per_participant:
        order = [order[i] for i in rng.permutation(len(order))]
    neutral = protocol.neutral.duration_s
    k = 0
    t += 1.0
    while True:
        clip = protocol.clip(order[k % len(order)])
        rating_s = float(rng.uniform(3.0, 9.0))
        if t + 1.0 + clip.duration_s + rating_s + neutral + 1.0 > end:
            break
        t_space = t + float(rng.uniform(0.5, 2.0))
        onset, offset = t_space + 0.05, t_space + 0.05 + clip.duration_s
        markers += [
            (EventCode.TRIAL_START, t, clip.id),
            (EventCode.CLIP_ONSET, onset, clip.id),
            (EventCode.CLIP_OFFSET, offset, clip.id),
            (EventCode.RATING_ONSET, offset + 0.1, clip.id),
            (EventCode.RATING_RESPONSE, offset + 0.1 + rating_s, clip.id),
            (EventCode.NEUTRAL_ONSET, offset + 0.3 + rating_s, ""),
            (EventCode.NEUTRAL_OFFSET, offset + 0.3 + rating_s + neutral, ""),
        ]
        target = clip.emotion.value if clip.emotion else "others"
        chosen = target if rng.random() < 0.7 else EMOTIONS[int(rng.integers(len(EMOTIONS)))]
        trials.append(
            {
                "index": k,
                "clip_id": clip.id,
                "target": target,
                "chosen": chosen,
                "valence": int(rng.integers(1, 10)),
                "arousal": int(rng.integers(1, 10)),
                "rt": rating_s,
                "clip_onset": onset,
                "clip_offset": offset,
                "rating_onset": offset + 0.1,
            }
        )
        taken: list[float] = []
        n_me = int(rng.poisson(plan.me_per_clip))
        for tm in _place(rng, onset + 3.0, offset - 3.0, n_me, taken, plan.min_gap_s):
            taken.append(tm)
            dur = float(rng.uniform(0.15, 0.5))
            expressions.append(
                {
                    "kind": "ME",
                    "onset": tm,
                    "apex": tm + dur * float(rng.uniform(0.3, 0.6)),
                    "offset": tm + dur,
                    "emotion": target,
                    "trial": k,
                }
            )
        for tm in _place(
            rng,
            onset + 3.0,
            offset - 3.0,
            int(rng.poisson(plan.mae_per_clip)),
            taken,
            plan.min_gap_s,
        ):
            taken.append(tm)
            dur = float(rng.uniform(0.6, 4.0))
            expressions.append(
                {
                    "kind": "MaE",
                    "onset": tm,
                    "apex": tm + dur * 0.4,
                    "offset": tm + dur,
                    "emotion": target,
                    "trial": k,
                }
            )
        t = offset + 0.3 + rating_s + neutral + 0.5
        k += 1
    markers.append((EventCode.SESSION_END, end, ""))
    sync_t = MASTER_START_S + 3.5
    while sync_t < end:
        markers.append((EventCode.SYNC, sync_t, ""))
        sync_t += 5.0
    markers.sort(key=lambda m: m[1])
    # keep pulses apart, as the bus does (a code never overlaps the previous one)
    spaced: list[tuple[int, float, str]] = []
    for code, tm, label in markers:
        if spaced and tm < spaced[-1][1] + PULSE_S + GAP_S:
            tm = spaced[-1][1] + PULSE_S + GAP_S
        spaced.append((code, tm, label))
    expressions.sort(key=lambda e: e["onset"])
    return _Timeline(spaced, trials, expressions, end + 1.0)


def _trigger_code(master_t: np.ndarray, on: np.ndarray, codes: np.ndarray, latency: float) -> Any:
    """The code on the trigger lines at each master time (0 between pulses)."""
    idx = np.searchsorted(on + latency, master_t, side="right") - 1
    level = np.zeros(len(master_t), np.int64)
    ok = idx >= 0
    high = ok & (master_t < on[np.clip(idx, 0, None)] + latency + PULSE_S)
    level[high] = codes[idx[high]]
    return level


class _SessionSimulator:
    def __init__(self, plan: StudyPlan, lab: LabConfig, protocol: Protocol, k: int, out: Path):
        self.plan, self.lab, self.protocol, self.k, self.out = plan, lab, protocol, k, out
        self.seed = plan.seed * 1000 + k
        self.rng = np.random.default_rng(self.seed)
        self.responder = plan.responder(k)
        r = self.rng
        self.clocks = {
            "eeg": _Clock(MASTER_START_S, float(r.uniform(-3, 3)), float(r.uniform(-80, 80))),
            "physio": _Clock(MASTER_START_S, float(r.uniform(-3, 3)), float(r.uniform(-80, 80))),
            "camera": _Clock(MASTER_START_S, float(r.uniform(0, 5)), float(r.uniform(-80, 80))),
        }
        self.timeline = _timeline(plan, protocol, self.rng)
        # the manifest's protocol lists the trials this session ran (mmme check reads it)
        self.protocol = dataclasses.replace(
            protocol, trial_order=tuple(tr["clip_id"] for tr in self.timeline.trials)
        )
        self.base_bpm = 70.0
        self.bad_channels: list[str] = []
        self.drops: list[int] = []
        self.face_truth: dict[str, Any] = {}
        self.box_latency = lab.triggerbox.latency_ms / 1000.0
        mk = self.timeline.markers
        self.on = np.array([m[1] for m in mk])
        self.codes = np.array([int(m[0]) for m in mk], np.int64)

    # ---------------------------------------------------------------- manifest

    def manifest_fields(self) -> dict[str, Any]:
        import h5py

        pid = f"S{self.k + 1:02d}"
        return {
            "participant": {
                "id": pid,
                "session": 1,
                "consent_level": 1 if self.k % 5 else 2,
                "notes": "simulated by mmme simulate",
            },
            "simulated": ["camera", "eeg", "physio", "triggerbox"],
            "simulated_by": "mmme simulate",
            "clock": {
                "master": "pylsl.local_clock",
                "start_master_s": MASTER_START_S,
                "start_unix_s": dt.datetime.now(dt.UTC).timestamp(),
                "host": "simulation",
            },
            "lab": self.lab.to_dict(),
            "lab_requested": self.lab.to_dict(),
            "protocol": self.protocol.to_dict(),
            "devices": {},
            "environment": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "h5py": h5py.__version__,
                "mmme_lab": __version__,
                "platform": platform.platform(),
            },
        }

    def truth(self, frame_of: Callable[[float], int]) -> dict[str, Any]:
        exprs = [
            e | {f"{key}_frame": frame_of(e[key]) for key in ("onset", "apex", "offset")}
            for e in self.timeline.expressions
        ]
        return {
            "generator": "mmme simulate",
            "seed": self.seed,
            "hr_response": self.responder,
            "heart_rate": {
                "base_bpm": self.base_bpm,
                "response_to": list(self.plan.hr_response_to),
                "response_from": self.plan.hr_response_at,
                "emotion_scale": self.plan.emotion_scale,
                "emotion_scale_eeg": self.plan.eeg_scale(),
                **simulation.hr_response_model(self.plan.hr_response),
            },
            "expressions": exprs,
            "clocks": {n: dataclasses.asdict(c) for n, c in self.clocks.items()},
            "bad_eeg_channels": self.bad_channels,
            "dropped_frames": self.drops,
            "face": self.face_truth,
        }

    # ---------------------------------------------------------------- writing

    def write(self, progress: Callable[[float], None]) -> Path:
        plan = self.plan
        lab = dataclasses.replace(
            self.lab,
            camera=dataclasses.replace(
                self.lab.camera, width=plan.camera_width, height=plan.camera_height, fps=plan.fps
            ),
        )
        self.lab = lab
        writer = SessionWriter(self.out, self.manifest_fields(), f"S{self.k + 1:02d}", 1)
        labels = simulation.synthetic_eeg_labels(plan.eeg_channels)
        specs = [
            SignalSpec(
                "eeg",
                StreamKind.EEG,
                plan.rate_hz,
                tuple(labels),
                "uV",
                (AuxSpec("trigger", "<u2"),),
                device={"model": "simulated SynAmps RT"},
            ),
            SignalSpec(
                "physio",
                StreamKind.PHYSIO,
                plan.rate_hz,
                tuple(lab.physio.channels),
                "device units",
                (AuxSpec("digital", "u1", 8),),
                device={"model": "simulated MP160"},
            ),
        ]
        geometry = FrameGeometry(plan.camera_width, plan.camera_height)
        readout_us = 1000.0
        writer.open_streams(
            geometry,
            specs,
            camera_info={"fps": plan.fps, "readout_us": readout_us, "model": "simulated MQ022CG"},
        )
        assert writer.signals is not None
        try:
            self._write_markers(writer)
            self._write_trials(writer)
            progress(0.05)
            frame_of = self._write_camera(
                writer.camera_folder, geometry, readout_us, lambda f: progress(0.05 + 0.2 * f)
            )
            progress(0.25)
            self._write_physio(writer)
            progress(0.5)
            self._write_eeg(writer, labels, progress)
        except BaseException:
            writer.finalize(SessionStatus.FAILED, {"problems": ["simulation interrupted"]})
            raise
        writer.finalize(SessionStatus.COMPLETE, {"simulation_truth": self.truth(frame_of)})
        progress(1.0)
        return writer.folder

    def _write_markers(self, writer: SessionWriter) -> None:
        assert writer.signals is not None
        for seq, (code, t_on, label) in enumerate(self.timeline.markers):
            writer.signals.marker(seq, int(code), label, t_on - 0.0005, t_on, t_on + PULSE_S, True)

    def _write_trials(self, writer: SessionWriter) -> None:
        assert writer.signals is not None
        rows = np.zeros(len(self.timeline.trials), TRIAL_DTYPE)
        for i, tr in enumerate(self.timeline.trials):
            rows[i] = (
                tr["index"],
                0,
                tr["clip_id"].encode(),
                tr["target"].encode(),
                tr["chosen"].encode(),
                tr["valence"],
                tr["arousal"],
                0,
                tr["rt"],
                tr["clip_onset"],
                tr["rating_onset"],
            )
        writer.signals.log("trials", rows)

    def _signal_blocks(
        self,
        writer: SessionWriter,
        name: str,
        data: np.ndarray,
        aux: dict[str, np.ndarray],
        first_index: int,
        clock: _Clock,
    ) -> None:
        assert writer.signals is not None
        rate = self.plan.rate_hz
        step = int(BLOCK_S * rate)
        for a in range(0, len(data), step):
            b = min(len(data), a + step)
            t_last = float(clock.master((first_index + b - 1) / rate))
            writer.signals.append(
                name,
                first_index + a,
                np.ascontiguousarray(data[a:b]),
                t_last + 0.002 + float(self.rng.uniform(0, 0.003)),
                {k: v[a:b] for k, v in aux.items()},
            )

    def _sample_times(self, clock: _Clock, first_index: int, n: int) -> np.ndarray:
        return clock.master((first_index + np.arange(n)) / self.plan.rate_hz)

    def _write_physio(self, writer: SessionWriter) -> None:
        plan, clock = self.plan, self.clocks["physio"]
        first = int(self.rng.integers(0, 1000))
        clock.offset_s += first / plan.rate_hz  # the device counts from its own start
        n = int(self.timeline.end_s - MASTER_START_S) * int(plan.rate_hz)
        t = self._sample_times(clock, first, n)
        at = plan.hr_response_at
        answered = [e for e in self.timeline.expressions if e["kind"] in plan.hr_response_to]
        onsets = tuple(float(e[at] - t[0]) for e in answered) if self.responder else ()
        emotions = tuple(str(e["emotion"]) for e in answered) if self.responder else ()
        self.base_bpm = float(self.rng.uniform(62, 80))
        sig = simulation.synthetic_physio(
            plan.rate_hz,
            n / plan.rate_hz,
            self.base_bpm,
            self.seed,
            onsets,
            skt_base=float(self.rng.uniform(30.5, 33.5)),
            eda_base=float(self.rng.uniform(2.0, 8.0)),
            response=plan.hr_response,
            emotions=emotions,
            emotion_scale=plan.emotion_scale,
        )
        data = np.stack([sig[ch] for ch in self.lab.physio.channels if ch in sig], axis=1)
        if data.shape[1] != len(self.lab.physio.channels):
            raise LabError(
                f"the simulated MP160 models ECG, PPG, RSP, SKT and EDA; the lab names "
                f"{list(self.lab.physio.channels)}"
            )
        latency = self.box_latency + self.lab.physio.trigger_latency_ms / 1000.0
        code = _trigger_code(t, self.on, self.codes, latency)
        digital = ((code[:, None] >> np.arange(8)) & 1).astype(np.uint8)
        self._signal_blocks(writer, "physio", data[:n], {"digital": digital}, first, clock)
        self._drain(writer, 0)

    def _mixing(self, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Scalp projections of the simulated sources: 14 cortical sources at random places,
        occipital alpha, and the eyes (blinks). Channels see each source through a Gaussian
        fall-off with distance, so neighbouring channels correlate as on a real head."""
        import mne

        builtin = mne.channels.get_builtin_montages()
        montage = mne.channels.make_standard_montage(
            "colin27_1005" if "colin27_1005" in builtin else "standard_1005"
        )
        pos = {k.upper(): v for k, v in montage.get_positions()["ch_pos"].items()}
        fallback = {"CB1": "PO9", "CB2": "PO10", "HEO": "F9", "VEO": "FP1"}
        xyz = np.array(
            [pos.get(n.upper(), pos.get(fallback.get(n.upper(), ""), np.zeros(3))) for n in labels]
        )
        centres = xyz[self.rng.choice(len(labels), 14, replace=False)]
        centres = np.vstack([centres, pos["OZ"], (pos["FP1"] + pos["FP2"]) / 2])
        dist = np.linalg.norm(xyz[:, None, :] - centres[None, :, :], axis=2)
        width = np.r_[np.full(14, 0.05), 0.06, 0.035]
        gain = np.r_[np.full(14, 6.0), 10.0, 150.0]
        return (gain * np.exp(-0.5 * (dist / width) ** 2)).astype(np.float32), xyz

    def _eeg_emotions(self, src: np.ndarray, t: np.ndarray) -> None:
        """Each expression's emotion-specific alpha change and beta burst around its
        apex (``synth.EMOTION_EEG`` x the plan's EEG scale), in place."""
        scale = self.plan.eeg_scale()
        for e in self.timeline.expressions:
            gain_a, beta = simulation.emotion_eeg(str(e["emotion"]))
            lo, hi = np.searchsorted(t, [e["apex"] - 5.0, e["apex"] + 5.0])
            if hi <= lo:
                continue
            bump = np.exp(-0.5 * ((t[lo:hi] - e["apex"]) / 2.0) ** 2).astype(np.float32)
            src[lo:hi, 14] *= 1.0 + scale * gain_a * bump
            src[lo:hi, 14] += scale * beta * bump * np.sin(2 * np.pi * 20.0 * t[lo:hi])

    def _write_eeg(self, writer: SessionWriter, labels: list[str], progress: Callable) -> None:
        plan, clock = self.plan, self.clocks["eeg"]
        first = 1_000_000 + int(self.rng.integers(0, 100_000))
        clock.offset_s += first / plan.rate_hz  # Curry counts samples from its own start
        n = int(self.timeline.end_s - MASTER_START_S) * int(plan.rate_hz)
        loop = simulation.synthetic_eeg(plan.eeg_channels, plan.rate_hz, 64.0, self.seed % 7)
        mixing, _ = self._mixing(labels)
        back = [i for i, lab in enumerate(labels) if lab.startswith(("C", "T"))][:14]
        background = loop[:, back] / loop[:, back].std(axis=0)
        bad = (
            list(
                self.rng.choice(
                    np.arange(10, plan.eeg_channels - 4), plan.bad_eeg_channels, replace=False
                )
            )
            if plan.bad_eeg_channels
            else []
        )
        self.bad_channels = [labels[i] for i in bad]
        latency = self.box_latency + self.lab.eeg.trigger_latency_ms / 1000.0
        piece = len(loop)
        blink = np.exp(-0.5 * ((np.arange(400) - 200) / 60.0) ** 2)
        for a in range(0, n, piece):
            b = min(n, a + piece)
            m = b - a
            src = np.zeros((m, mixing.shape[1]), np.float32)
            shift = int(self.rng.integers(0, piece))
            src[:, :14] = np.roll(background, shift, axis=0)[:m]
            tt = (first + a + np.arange(m)) / plan.rate_hz
            src[:, 14] = np.sin(2 * np.pi * 10.0 * tt + 0.3) * (
                1 + 0.5 * np.sin(2 * np.pi * tt / 7)
            )
            if plan.eeg_scale():
                self._eeg_emotions(src, self._sample_times(clock, first + a, m))
            for s0 in self.rng.integers(0, max(1, m - 400), size=max(1, m // 4000)):
                src[s0 : s0 + 400, 15] += blink[: min(400, m - s0)]
            chunk = src @ mixing.T
            chunk += self.rng.standard_normal(chunk.shape, np.float32) * 2.0
            for i in bad:
                chunk[:, i] += self.rng.standard_normal(m).astype(np.float32) * 60.0
            t = self._sample_times(clock, first + a, m)
            trig = _trigger_code(t, self.on, self.codes, latency).astype(np.uint16)
            self._signal_blocks(writer, "eeg", chunk, {"trigger": trig}, first + a, clock)
            self._drain(writer, 400)
            progress(0.5 + 0.45 * b / n)
        self._drain(writer, 0)

    @staticmethod
    def _drain(writer: SessionWriter, max_items: int) -> None:
        """Keep the signal writer's backlog bounded (this producer is faster than real time)."""
        assert writer.signals is not None
        if not writer.signals.wait_sent(max_items, timeout_s=120.0):
            raise LabError(f"{writer.folder}: the signal writer does not keep up or has stopped")

    def _write_camera(
        self, folder: Path, geometry: FrameGeometry, readout_us: float,
        progress: Callable[[float], None],
    ) -> Callable[[float], int]:  # fmt: skip
        plan, clock = self.plan, self.clocks["camera"]
        fw = FrameWriter(folder, geometry)
        face = simulation.synthetic_face(
            plan.camera_width, plan.camera_height, self.timeline.expressions,
            (MASTER_START_S, self.timeline.end_s), self.seed,
        )  # fmt: skip
        self.face_truth = face.script.truth()
        by_onset = {e["onset"]: e for e in face.script.expressions}
        for e in self.timeline.expressions:
            e["aus"] = by_onset[e["onset"]]["aus"]
        n = int((self.timeline.end_s - MASTER_START_S) * plan.fps)
        dev_t = clock.device(MASTER_START_S) + np.arange(n) / plan.fps  # exposure starts
        exposure_master = clock.master(dev_t)
        drop = np.zeros(n, bool)
        self.drops = []
        for pos in self.rng.integers(n // 10, n - n // 10, plan.dropped_frames):
            drop[pos : pos + 2] = True
            self.drops.append(int(pos))
        latency = self.box_latency + self.lab.camera.trigger_latency_ms / 1000.0
        gpi = (_trigger_code(exposure_master, self.on, self.codes, latency) > 0).astype(np.uint32)
        stride = geometry.stride
        batch = max(1, min(900, (64 << 20) // stride))
        buf = aligned_buffer(batch * stride).reshape(batch, stride)
        size = plan.camera_width * plan.camera_height
        keep = np.flatnonzero(~drop)
        try:
            for a in range(0, len(keep), batch):
                sel = keep[a : a + batch]
                m = len(sel)
                rows = np.zeros(m, JOURNAL_DTYPE)
                rows["acq_nframe"] = sel
                rows["nframe"] = sel
                rows["gpi_level"] = gpi[sel]
                rows["ts_us"] = np.round((dev_t[sel] + readout_us / 1e6) * 1e6).astype(np.uint64)
                rows["exposure_us"] = 5000
                rows["host_time"] = exposure_master[sel] + 0.004
                rows["gain_db"] = 0.0
                buf[:m, size:] = 0
                for j, i in enumerate(sel):
                    img = buf[j, :size].reshape(plan.camera_height, plan.camera_width)
                    face.render(float(exposure_master[i]), img)
                fw.append_run(buf[:m], rows)
                progress(a / len(keep))
        finally:
            fw.close()

        def frame_of(master_t: float) -> int:
            return int(np.searchsorted(exposure_master, master_t))

        return frame_of


def short_trials(clip_s: float, neutral_s: float) -> Any:
    """The shipped MMME protocol with every clip ``clip_s`` and the neutral clip
    ``neutral_s`` long: short trials, so that a short simulated session holds several
    (the benchmarks and tests use it)."""
    from mmmelab.config import shipped
    from mmmelab.protocol import load_protocol

    proto = load_protocol(shipped("protocols", "mmme"))
    clips = tuple(dataclasses.replace(c, duration_s=clip_s) for c in proto.clips)
    neutral = dataclasses.replace(proto.neutral, duration_s=neutral_s)
    return dataclasses.replace(proto, clips=clips, neutral=neutral)


def repeated_clip_protocol(
    path: Path,
    n_clips: int,
    clip_s: float,
    neutral_s: float,
    seed: int,
    rating_limit_s: float = 25.0,
) -> Path:
    """Write a protocol file of ``n_clips`` happiness clips of ``clip_s`` in fixed order,
    each followed by the neutral clip of ``neutral_s`` (the demo clips; the benchmarks'
    sessions of a planned length). Returns ``path``."""
    clips = "".join(
        f'\n[[clips]]\nid = "clip{i}"\nemotion = "happiness"\nfile = "bench.mp4"\n'
        f"duration_s = {clip_s!r}\n"
        for i in range(n_clips)
    )
    path.write_text(
        f'[protocol]\nname = "{path.stem}"\nseed = {seed}\nstimuli_dir = "@demo"\n'
        f'order = "fixed"\n\n[timing]\nrating_limit_s = {rating_limit_s!r}\n\n'
        f'[neutral]\nid = "neutral"\nfile = "neutral.mp4"\nduration_s = {neutral_s!r}\n' + clips
    )
    return path


def simulate_study(
    out: Path,
    plan: StudyPlan,
    progress: Callable[[int, float], None] | None = None,
    lab: LabConfig | None = None,
    protocol: Protocol | None = None,
) -> list[Path]:
    """Write ``plan.participants`` complete sessions under ``out``; returns their folders.

    ``progress(participant, fraction)`` is called as each session is written.
    The caller aligns them (``mmme align``) and writes their annotations.
    """
    lab = lab or load_lab(shipped("labs", "simulated"))
    protocol = protocol or load_protocol(shipped("protocols", "mmme"))
    protocol = dataclasses.replace(protocol, practice=())
    folders = []
    report = progress or (lambda _k, _f: None)
    for k in range(plan.participants):
        sim = _SessionSimulator(plan, lab, protocol, k, out)
        folders.append(sim.write(lambda f, k=k: report(k, f)))  # type: ignore[misc]
    return folders
