"""The set-up phase: the checks as functions (against their references), the
simulated rig's lamps and lens, Curry's impedance packets, the preview state and
``mmme check-rig``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmmelab.acquisition import rigchecks as rc
from mmmelab.acquisition import signalchecks as sc
from mmmelab.acquisition.engine import SessionEngine
from mmmelab.acquisition.rigcheck import run_rig_check
from mmmelab.hardware_mocks.ximea.scene import Rig, Scene
from mmmelab.participant import ParticipantInfo
from mmmelab.storage import open_session
from tests.conftest import write_small_lab_toml

FPS = 150.0


def lamp_brightness(rig: Rig, seconds: float = 3.0, exposure_s: float = 0.002) -> np.ndarray:
    """The face box's mean brightness as the camera sees it, frame by frame."""
    t = np.arange(int(seconds * FPS)) / FPS
    return 120.0 * np.array([rig.light(ti, exposure_s) for ti in t])


@pytest.mark.parametrize(("lamp_hz", "alias"), [(100.0, 50.0), (120.0, 30.0)])
def test_mains_flicker_is_found_at_its_alias(lamp_hz, alias):
    check = rc.flicker(lamp_brightness(Rig(flicker_hz=lamp_hz, flicker_depth=0.2)), FPS)
    assert check.verdict is rc.Verdict.RED
    assert abs(check.figures["peak_hz"] - alias) < 0.5
    assert f"alias of {lamp_hz:g} Hz" in check.reason


def test_dc_light_passes_and_the_ui_text_states_the_aliasing():
    rng = np.random.default_rng(1)
    steady = lamp_brightness(Rig()) + rng.normal(0, 0.2, int(3 * FPS))  # sensor noise
    check = rc.flicker(steady, FPS)
    assert check.verdict is rc.Verdict.GREEN
    assert "100 Hz shows at 50 Hz" in check.reason and "120 Hz shows at 30 Hz" in check.reason


def test_an_exposure_of_whole_flicker_periods_cancels_it():
    rig = Rig(flicker_hz=100.0, flicker_depth=0.2)
    check = rc.flicker(lamp_brightness(rig, exposure_s=0.010), FPS)
    assert check.verdict is rc.Verdict.GREEN


def test_flicker_depth_matches_the_periodogram():
    x = lamp_brightness(Rig(flicker_hz=100.0, flicker_depth=0.05))
    check = rc.flicker(x, FPS)
    from scipy import signal

    f, p = signal.periodogram(x, fs=FPS, window=np.hanning(len(x)), scaling="spectrum")
    k = int(np.argmax(p * (f >= 2)))
    assert abs(f[k] - check.figures["peak_hz"]) < 1e-9
    depth = np.sqrt(2 * p[k]) / x.mean()  # the amplitude of the bin over the mean
    assert check.figures["peak_depth"] == pytest.approx(depth, rel=1e-3)


def test_focus_figure_peaks_at_the_in_focus_position():
    scene = Scene(256, 128)
    figures = []
    for offset in (-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3):
        scene.rig.focus_offset = offset
        figures.append(rc.sharpness(scene.frame(0.0)[20:108, 70:186]))
    assert int(np.argmax(figures)) == 4
    assert figures[4] > 2 * max(figures[0], figures[-1])
    tracker = rc.FocusTracker()
    for offset in (2, 1, 0, 1):
        scene.rig.focus_offset = offset
        tracker.update(scene.frame(0.0)[20:108, 70:186])
    assert tracker.check().verdict is not rc.Verdict.GREEN  # turned past the peak
    assert tracker.best == pytest.approx(figures[4])


def test_brightness_follows_exposure_and_gain():
    scene = Scene(64, 48)
    base = scene.frame(0.0).astype(float).mean()
    assert scene.frame(0.0, 2500.0).astype(float).mean() == pytest.approx(base / 2, rel=0.02)
    half_with_6db = scene.frame(0.0, 2500.0, 6.0).astype(float).mean()  # no clipping
    assert half_with_6db == pytest.approx(base / 2 * 10 ** (6 / 20), rel=0.02)


def test_exposure_check_flags_saturation_and_darkness():
    rng = np.random.default_rng(2)
    good = rng.integers(60, 190, (100, 100))
    assert rc.exposure(good).verdict is rc.Verdict.GREEN
    burnt = good.copy()
    burnt[:10] = 255
    check = rc.exposure(burnt)
    assert check.verdict is rc.Verdict.RED and "saturated" in check.reason
    assert check.figures["saturated_share"] == pytest.approx(0.10)
    assert rc.exposure(good // 8).verdict is rc.Verdict.RED


def test_impedance_check_names_the_bad_electrodes():
    labels = ["Fp1", "Fp2", "Cz", "O1"]
    check = sc.impedances([3.0, 25.0, 8.0, 4.0], labels, threshold_kohm=10.0)
    assert check.verdict is rc.Verdict.RED and "Fp2" in check.reason
    assert check.figures["near"] == ["Cz"]
    assert sc.impedances([3.0, 2.0, 4.0, 5.0], labels).verdict is rc.Verdict.GREEN


def test_eeg_signal_flags_flat_noisy_and_line_noise():
    rate, n = 500.0, 2000
    rng = np.random.default_rng(3)
    t = np.arange(n) / rate
    eeg = rng.normal(0, 10, (n, 4))
    eeg[:, 1] = 0.01 * rng.normal(size=n)  # flat
    eeg[:, 2] = rng.normal(0, 400, n)  # noisy
    eeg[:, 3] = 2 * rng.normal(size=n) + 60 * np.sin(2 * np.pi * 50 * t)  # mains
    check = sc.eeg_signal_flags(eeg, rate, ["a", "b", "c", "d"])
    assert check.figures["flat"] == ["b"] and check.figures["noisy"] == ["c"]
    assert check.figures["line_noise"] == ["d"]
    assert check.verdict is rc.Verdict.RED


def test_heart_rate_from_ecg_and_ppg():
    import neurokit2 as nk

    rate = 500
    ecg = nk.ecg_simulate(duration=10, sampling_rate=rate, heart_rate=72, random_state=1)
    # without NeuroKit2's rate modulation the pulse beats at the ECG's rate
    ppg = nk.ppg_simulate(duration=10, sampling_rate=rate, heart_rate=72, random_state=1,
                          frequency_modulation=0.0, ibi_randomness=0.0)  # fmt: skip
    check = sc.heart_rate(ecg, ppg, rate)
    assert check.verdict is rc.Verdict.GREEN, check.reason
    assert check.figures["ecg_bpm"] == pytest.approx(72, abs=3)
    assert check.figures["diff_bpm"] <= 2
    flat = sc.heart_rate(ecg, np.zeros_like(ppg), rate)
    assert flat.verdict is rc.Verdict.RED and "PPG" in flat.reason
    other = nk.ppg_simulate(duration=10, sampling_rate=rate, heart_rate=95, random_state=1,
                            frequency_modulation=0.0, ibi_randomness=0.0)  # fmt: skip
    apart = sc.heart_rate(ecg, other, rate)  # a PPG clip on someone else's finger
    assert apart.verdict is rc.Verdict.AMBER and "disagree" in apart.reason


@pytest.mark.parametrize("per_min", [10, 12, 20])
def test_breathing_rate_from_12_s_agrees_with_neurokit_peaks(per_min):
    import neurokit2 as nk

    x = nk.rsp_simulate(duration=60, sampling_rate=1000, respiratory_rate=per_min, random_state=1)
    _, info = nk.rsp_peaks(nk.rsp_clean(x, sampling_rate=1000), sampling_rate=1000)
    reference = 60 / np.median(np.diff(info["RSP_Peaks"]) / 1000)
    assert sc.breathing_rate(x[:12000], 1000) == pytest.approx(reference, rel=0.1)
    assert np.isnan(sc.breathing_rate(np.zeros(12000), 1000))


def test_physiology_ranges():
    assert sc.eda(np.full(1000, 0.001)).verdict is rc.Verdict.RED
    assert sc.eda(4 + 0.1 * np.sin(np.arange(1000) / 50)).verdict is rc.Verdict.GREEN
    assert sc.skin_temperature(np.full(100, 33.0)).verdict is rc.Verdict.GREEN
    assert sc.skin_temperature(np.full(100, 22.0)).verdict is rc.Verdict.AMBER


@pytest.mark.slow
def test_preview_checks_fail_then_pass_and_the_manifest_keeps_the_record(
    small_lab, tiny_protocol, tmp_path
):
    """Three faults at once (a badly gelled electrode, a flickering lamp, the MP160's
    trigger cable out) are each red with their reason; fixed, the session starts and
    the manifest holds the set-up record."""
    out = tmp_path / "out"
    with SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), out) as engine:
        engine.connect()
        sim = engine.devices.simlab
        sim.eeg_server.set_impedances({"CZ": 48.0})
        sim.camera.rig.flicker_hz, sim.camera.rig.flicker_depth = 100.0, 0.2
        sim.acq.trigger_connected = False
        preview = engine.preview()
        assert preview.wait_for_data(1.0, 10)
        assert not list(out.iterdir()), "the preview wrote something"
        bad = run_rig_check(engine, seconds=2.0)
        red = {c["name"]: c["reason"] for c in bad["checks"] if c["verdict"] == "red"}
        assert "CZ" in red["impedance"]
        assert "mains flicker" in red["flicker"] and "50.0 Hz" in red["flicker"]
        assert "MP160" in red["trigger physio"]
        assert {"trigger eeg", "trigger camera"}.isdisjoint(red)
        sim.eeg_server.set_impedances()
        sim.camera.rig.flicker_depth = 0.0
        sim.acq.trigger_connected = True
        good = run_rig_check(engine, seconds=2.0)
        assert good["verdict"] != "red", [c for c in good["checks"] if c["verdict"] == "red"]
        lat = good["loopback"]["streams"]
        assert all(s["arrived"] for s in lat.values())
        folder = engine.start(simulate_participant=False)
        engine.stop()
    with open_session(folder) as s:
        setup = s.manifest["setup"]
    assert setup["verdict"] == good["verdict"]
    assert {c["name"] for c in setup["checks"]} >= {"exposure", "focus", "flicker", "impedance"}


@pytest.mark.slow
def test_check_rig_cli_passes_on_the_simulated_lab(tmp_path):
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "sessions")
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "check-rig", "--lab", str(lab), "--json"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["passed"] and record["duration_s"] <= 15
    assert not (tmp_path / "sessions").exists() or not any((tmp_path / "sessions").iterdir())


@pytest.mark.slow
def test_check_rig_cli_fails_with_the_trigger_cable_out(tmp_path, monkeypatch, capsys):
    from mmmelab import cli
    from mmmelab.hardware_mocks import lab as simlab

    real = simlab.SimulatedLab.__init__

    def unplugged(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.acq.trigger_connected = False

    monkeypatch.setattr(simlab.SimulatedLab, "__init__", unplugged)
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "sessions")
    code = cli.main(["check-rig", "--lab", str(lab), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 1 and not record["passed"] and record["verdict"] == "red"
    red = [c for c in record["checks"] if c["verdict"] == "red"]
    assert [c["name"] for c in red] == ["trigger physio"]


def test_head_positions_put_the_electrodes_where_they_sit():
    pos = sc.head_positions(["Fpz", "Oz", "T7", "T8", "Cz", "HEO", "VEO"])
    assert pos["Fpz"][1] > 0.9 and pos["Oz"][1] < -0.8  # nose up
    assert pos["T7"][0] < -0.9 and pos["T8"][0] > 0.9  # left is left, seen from above
    assert np.hypot(*pos["Cz"]) < 0.1
    assert np.hypot(*pos["HEO"]) > 1.1 and pos["HEO"] != pos["VEO"]  # EOG: off the head
    numbered = sc.head_positions([f"E{i}" for i in range(1, 65)])  # Acquire: rings, in order
    assert np.hypot(*numbered["E1"]) == pytest.approx(0.25, abs=1e-3)
    assert len({tuple(p) for p in numbered.values()}) == 64


def test_white_balance_in_the_preview_kernel_matches_the_reader():
    from mmmelab.storage.frames import debayer_half
    from mmmelab.storage.preview import render

    raw = np.random.default_rng(3).integers(0, 256, (32, 48), dtype=np.uint8)
    wb = (1.5, 1.0, 0.5)
    out = np.empty((16, 24, 3), np.uint8)
    render(raw, out, 1, white_balance=wb)
    ref = debayer_half(raw, "RGGB", wb)
    assert np.abs(out.astype(int) - ref).max() <= 1  # integer vs float rounding
    assert ref[..., 0].max() == 255  # 1.5x clips, it does not wrap
    assert (debayer_half(raw) == debayer_half(raw, "RGGB", (1.0, 1.0, 1.0))).all()


@pytest.mark.slow
def test_camera_settings_change_in_preview_within_limits_and_are_kept(
    small_lab, tiny_protocol, tmp_path
):
    """Exposure, gain and white balance set before Start: out-of-range values are
    refused with the camera's range and change nothing; the final settings drive the
    recording and are kept in the manifest and the frame file."""
    from mmmelab.errors import DeviceError

    out = tmp_path / "out"
    with SessionEngine(small_lab, tiny_protocol, ParticipantInfo("P01"), out) as engine:
        engine.connect()
        preview = engine.preview()
        assert preview.wait_for_data(0.5, 10)
        limits = engine.camera_limits()
        assert limits["exposure"][1] < 1e6 / small_lab.camera.fps  # inside the frame period
        dark = float(preview.face_means(0.3).mean())
        with pytest.raises(DeviceError, match="outside the camera's range"):
            engine.adjust_camera(exposure_us=limits["exposure"][1] + 100.0)
        assert engine.lab.camera.exposure_us == small_lab.camera.exposure_us
        settings = engine.adjust_camera(
            exposure_us=small_lab.camera.exposure_us / 2, gain_db=3.0, white_balance=(1.2, 1.0, 0.8)
        )
        assert settings["gain_db"] == 3.0
        preview.clear()
        assert preview.wait_for_data(0.5, 10)
        half = float(preview.face_means(0.3).mean())
        # half the light, +3 dB (x1.41) gain: about 0.71 of the level before
        assert half == pytest.approx(0.71 * dark, rel=0.12)
        folder = engine.start(simulate_participant=False)
        engine.stop()
    with open_session(folder) as s:
        setup = s.manifest["setup"]
        wb = s.streams["camera"].frames.white_balance
    assert setup["camera_final"]["exposure_us"] == small_lab.camera.exposure_us / 2
    assert setup["camera_final"]["white_balance"] == [1.2, 1.0, 0.8]
    assert len(setup["camera_changes"]) == 1 and setup["checks_run"] is False
    assert wb == (1.2, 1.0, 0.8)
