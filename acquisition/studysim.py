"""How ``mmme simulate`` writes one session (see :mod:`mmmelab.acquisition.study`):
the paradigm's timeline with its micro- and macro-expressions, every device's clock
(offset and drift), the trigger on every stream, and the session written block by
block through the real writers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmmelab import __version__
from mmmelab.acquisition import simulation
from mmmelab.config import LabConfig
from mmmelab.errors import LabError
from mmmelab.protocol import Protocol
from mmmelab.storage.directio import aligned_buffer
from mmmelab.storage.frames import JOURNAL_DTYPE, FrameGeometry, FrameWriter
from mmmelab.storage.manifest import SessionStatus
from mmmelab.storage.session import TRIAL_DTYPE
from mmmelab.storage.sessionwriter import SessionWriter
from mmmelab.storage.signals import SignalSpec
from mmmelab.streams import AuxSpec, StreamKind

if TYPE_CHECKING:
    from mmmelab.acquisition.study import StudyPlan

from mmmelab.acquisition.studytimeline import (
    BLOCK_S,
    MASTER_START_S,
    PULSE_S,
    Clock,
    plan_timeline,
    trigger_code,
)

logger = logging.getLogger(__name__)


class SessionSimulator:
    """Writes participant ``k`` of a simulated study: a complete session folder with every
    stream on its own skewed clock, and the truth."""

    def __init__(self, plan: StudyPlan, lab: LabConfig, protocol: Protocol, k: int, out: Path):
        self.plan, self.lab, self.protocol, self.k, self.out = plan, lab, protocol, k, out
        self.seed = plan.seed * 1000 + k
        self.rng = np.random.default_rng(self.seed)
        self.responder = plan.responder(k)
        r = self.rng
        self.clocks = {
            "eeg": Clock(MASTER_START_S, float(r.uniform(-3, 3)), float(r.uniform(-80, 80))),
            "physio": Clock(MASTER_START_S, float(r.uniform(-3, 3)), float(r.uniform(-80, 80))),
            "camera": Clock(MASTER_START_S, float(r.uniform(0, 5)), float(r.uniform(-80, 80))),
        }
        self.timeline = plan_timeline(plan, protocol, self.rng)
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
        clock: Clock,
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

    def _sample_times(self, clock: Clock, first_index: int, n: int) -> np.ndarray:
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
        code = trigger_code(t, self.on, self.codes, latency)
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

    def _write_eeg(
        self, writer: SessionWriter, labels: list[str], progress: Callable[[float], None]
    ) -> None:
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
            trig = trigger_code(t, self.on, self.codes, latency).astype(np.uint16)
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
        gpi = (trigger_code(exposure_master, self.on, self.codes, latency) > 0).astype(np.uint32)
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
