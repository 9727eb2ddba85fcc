"""Alignment of a whole recorded session on the simulated lab, against its truth."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from mmmelab.acquisition.engine import SessionEngine
from mmmelab.drivers.lsl import local_clock
from mmmelab.participant import ParticipantInfo
from mmmelab.storage import CameraStream, SignalStream, open_session
from tests.helpers import camera_frames, wait_until

pytestmark = pytest.mark.slow

CLOCKS = {
    "eeg": {"offset_s": 2.5, "drift_ppm": 80.0},
    "physio": {"offset_s": -1.7, "drift_ppm": -60.0},
    "camera": {"offset_s": 3.3, "drift_ppm": 100.0},
}


def true_master(clock: dict, device: np.ndarray) -> np.ndarray:
    return (device - clock["offset_s"]) / (1.0 + clock["drift_ppm"] * 1e-6) + clock["epoch"]


def test_session_alignment_with_reset_drops_lost_and_missing_triggers(
    small_lab, tiny_protocol, tmp_path
):
    # frequent sync pulses: each camera clock segment gets a few dozen edges
    lab = dataclasses.replace(small_lab, sync_interval_s=0.25)
    with SessionEngine(
        lab, tiny_protocol, ParticipantInfo("P07"), out_root=tmp_path, sim_clocks=CLOCKS
    ) as engine:
        engine.connect()
        sim = engine.devices.simlab
        sim.acq.trigger_connected = False  # MP160 digital inputs not wired
        folder = engine.start()
        t0 = local_clock()
        sim.camera.force_reset_at = t0 + 5.0  # camera clock reset
        sim.camera.drop_frames = {300, 301, 302, 700}
        # 7 s of frames: the reset at 5 s and 2 s of frames after it
        wait_until(lambda: camera_frames(engine) >= 7 * 150, 30, "7 s of frames")
        sim.eeg_server.trigger_connected = False  # EEG trigger cable pulled
        engine.run()
        engine.stop()
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "align", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    cert = json.loads(out.stdout)
    assert json.loads((folder / "sync.json").read_text()) == cert
    cam, eeg, phys = (cert["streams"][n] for n in ("camera", "eeg", "physio"))
    assert cam["method"] == "triggers" and len(cam["segments"]) == 2  # split at the reset
    assert sum(d["missing"] for d in cam["dropped_frames"]) == 4
    assert eeg["method"] == "triggers"
    lost = [w for w in eeg["warnings"] if "lost its triggers" in w]
    assert lost  # flagged
    last_edge = float(re.search(r"after ([0-9.]+) s \(master clock\)", lost[0])[1])
    assert phys["method"] == "host_time"
    assert any("host receive times" in w for w in phys["warnings"])
    with open_session(folder) as s:
        truth = s.manifest["simulation_truth"]
        clocks = truth["clocks"]
        e = s.streams["eeg"]
        assert isinstance(e, SignalStream) and e.aligned
        err = e.master_time - true_master(clocks["eeg"], e.sample_index / e.rate_hz)
        # where the edges are, the map is within a millisecond; after the last one it is
        # extrapolated (as the warning says), with the drift estimated from edges read
        # at 1 kHz: there the error may grow by a fraction of a millisecond more
        fitted = e.master_time <= last_edge
        assert fitted.sum() > 1000
        assert np.percentile(np.abs(err[fitted]), 95) < 1.0e-3
        assert np.abs(err).max() < 2.5e-3
        c = s.streams["camera"]
        assert isinstance(c, CameraStream) and c.aligned
        truth_cam = truth["camera"]["t0_master"] + (c.journal["acq_nframe"] - 1) / 150.0
        assert np.percentile(np.abs(c.master_time - truth_cam), 95) < 2.0e-3
        p = s.streams["physio"]
        assert isinstance(p, SignalStream)
        err_p = p.master_time - true_master(
            clocks["physio"], truth["physio"]["start_device_s"] + p.sample_index / p.rate_hz
        )
        assert np.percentile(np.abs(err_p), 95) < 20e-3  # host-time fallback: ms, not us
        assert c.dropped_frames and c.dropped_frames[0]["after_acq_nframe"] == 300


def test_align_of_a_broken_session_is_a_clear_error(tmp_path):
    (tmp_path / "session.json").write_text("[]")
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "align", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "not an mmme-lab session manifest" in out.stderr
