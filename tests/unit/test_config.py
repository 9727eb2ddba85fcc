"""Configuration: the shipped files load, and every bad input gets its clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmmelab.config import load_lab, shipped
from mmmelab.errors import ConfigError
from mmmelab.participant import check_participant_id
from mmmelab.protocol import Emotion, load_protocol


def test_shipped_lab_and_protocols_load():
    lab = load_lab(shipped("labs", "simulated"))
    assert lab.camera.width == 2040 and lab.camera.height == 1080 and lab.camera.fps == 150.0
    assert lab.eeg.channels == 64 and lab.physio.channels == ("ECG", "PPG", "RSP", "SKT", "EDA")
    assert set(lab.simulated_devices()) == {"camera", "eeg", "physio", "triggerbox"}
    assert load_lab(shipped("labs", "rig")).simulated_devices() == []
    mmme = load_protocol(shipped("protocols", "mmme"))
    assert len(mmme.trial_order) == 42 and len(mmme.practice) == 1
    per_emotion = {e: sum(c.emotion is e for c in mmme.clips) for e in Emotion}
    assert set(per_emotion.values()) == {6}
    assert mmme.timing.rating_limit_s == 25.0 and mmme.neutral.duration_s == 30.0
    assert all(c.duration_s == 60.0 for c in mmme.clips)
    quick = load_protocol(shipped("protocols", "quick"))
    assert len(quick.trial_order) == 2


def test_trial_order_is_seeded_and_reproducible(tmp_path):
    a = load_protocol(shipped("protocols", "mmme"))
    b = load_protocol(shipped("protocols", "mmme"))
    assert a.trial_order == b.trial_order
    assert list(a.trial_order) != [c.id for c in a.clips]  # shuffled
    text = shipped("protocols", "mmme").read_text().replace("seed = 20240601", "seed = 1")
    (tmp_path / "p.toml").write_text(text)
    assert load_protocol(tmp_path / "p.toml").trial_order != a.trial_order


LAB = shipped("labs", "simulated").read_text()


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (("fps = 150.0", 'fps = "fast"'), "devices.camera.fps", "must be a number"),
        (("fps = 150.0", "fps = 0.5"), "devices.camera.fps", "allowed: 1 to 10000"),
        (("fps = 150.0", "fsp = 150.0"), "devices.camera.fsp", "unknown key"),
        (('key = "F1"', 'key = "Ctrl+Q"'), "reminder.key", "use F1-F12, one capital letter"),
        (("hide_after_s = 3.0", "hide_after_s = -1"), "reminder.hide_after_s", "allowed: 0 to 600"),
        (
            ("photodiode_size_px = 60", "photodiode_size_px = 60\nconsole_lost_stop_s = 1"),
            "screens.console_lost_stop_s",
            "allowed: 5 to 86400",
        ),
        (
            ('photodiode_corner = "bottom-left"', 'photodiode_corner = "middle"'),
            "screens.photodiode_corner",
            "allowed: top-left, top-right, bottom-left, bottom-right",
        ),
        (
            ('protocol = "curry"', 'protocol = "brainvision"'),
            "devices.eeg.protocol",
            "allowed: curry, acquire",
        ),
        (
            ('box = "brainproducts"', 'box = "parallel"'),
            "devices.triggerbox.box",
            "allowed: brainproducts, mmbts, bbtk, arduino",
        ),
        (
            ("exposure_us = 5000.0", "exposure_us = 9000.0"),
            "devices.camera.exposure_us",
            "shorter than the frame period",
        ),
        (
            ("pulse_ms = 20.0", "pulse_ms = 5.0"),
            "devices.triggerbox.pulse_ms",
            "at least two frame periods",
        ),
        (
            ("simulate = true\nwidth", 'simulate = "yes"\nwidth'),
            "devices.camera.simulate",
            "must be true or false",
        ),
        (("channels = 64", "channels = 0"), "devices.eeg.channels", "allowed: 1 to 299"),
        (
            ("[devices.physio]", "[devices.physiology]"),
            "devices.physio",
            "is required but missing (found 'physiology' instead - a typo?)",
        ),
    ],
)
def test_bad_lab_values_name_file_key_and_allowed(tmp_path, edit, key, words):
    old, new = edit
    assert old in LAB
    path = tmp_path / "lab.toml"
    path.write_text(LAB.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_lab(path)
    err = info.value
    assert err.key == key and err.path == str(path)
    assert words in str(err)
    assert str(path) in str(err) and key in str(err)


def test_missing_section_and_broken_files(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text("[lab]\nname = 'x'\n")
    with pytest.raises(ConfigError, match="devices: is required but missing"):
        load_lab(path)
    path.write_text("[lab\nname = 'x'")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_lab(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_lab(tmp_path / "nope.toml")
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8|not valid TOML"):
        load_lab(path)


PROTO = shipped("protocols", "quick").read_text()


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (
            ('emotion = "disgust"', 'emotion = "boredom"'),
            "clips[1].emotion",
            "allowed: happiness, surprise, sadness, fear, anger, disgust, contempt",
        ),
        (("trials = 2", "trials = 3"), "protocol.trials", "list exactly 3 clips"),
        (('id = "disgust_1"', 'id = "happiness_1"'), "clips", "repeated: ['happiness_1']"),
        (("duration_s = 4.0", "duration_s = 0"), "clips[0].duration_s", "greater than 0"),
        (
            ("rating_limit_s = 25.0", "rating_limit_s = -1"),
            "timing.rating_limit_s",
            "allowed: 1 to 600",
        ),
        (('order = "random"', 'order = "shuffled"'), "protocol.order", "allowed: random, fixed"),
        (('id = "happiness_1"', 'id = "happy one!"'), "clips[0].id", "letters, digits"),
    ],
)
def test_bad_protocol_values(tmp_path, edit, key, words):
    old, new = edit
    assert old in PROTO
    path = tmp_path / "p.toml"
    path.write_text(PROTO.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    assert info.value.key == key
    assert words in str(info.value)


def test_participant_id_must_be_pseudonymous():
    assert check_participant_id("P07") == "P07"
    for bad in ("Jane Doe", "../x", "", "a" * 17, "josé"):
        with pytest.raises(ConfigError, match="pseudonymous"):
            check_participant_id(bad)


def test_cli_reports_a_bad_file_in_one_line_without_traceback(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(LAB.replace("fps = 150.0", "fps = -3"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmmelab",
            "record",
            "--lab",
            str(path),
            "--protocol",
            str(shipped("protocols", "quick")),
            "--participant",
            "P01",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"mmme record: error: {path}: devices.camera.fps: is -3; allowed: 1 to 10000"]


def test_cli_rejects_a_name_as_participant_id(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmmelab",
            "record",
            "--lab",
            str(shipped("labs", "simulated")),
            "--protocol",
            str(shipped("protocols", "quick")),
            "--participant",
            "Jane Doe",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "pseudonymous" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path("Jane Doe").exists()


def test_a_shipped_lab_can_be_named_instead_of_a_path(tmp_path, monkeypatch):
    from mmmelab.config import shipped
    from mmmelab.recordcli import lab_file

    monkeypatch.chdir(tmp_path)
    assert lab_file(Path("simulated")) == shipped("labs", "simulated")
    (tmp_path / "simulated").write_text("")  # a file of that name wins
    assert lab_file(Path("simulated")) == Path("simulated")
    assert lab_file(Path("nolab")) == Path("nolab")  # and a missing one stays missing


def test_the_console_lost_limit_is_the_labs_unless_the_session_sets_one(tmp_path):
    """How long the session service records on with no console: the lab's
    ``[screens] console_lost_stop_s`` (two minutes), or the session's own."""
    from mmmelab.acquisition.messages import Setup
    from mmmelab.acquisition.service import EngineService

    lab, protocol = load_lab(shipped("labs", "rig")), load_protocol(shipped("protocols", "quick"))
    assert lab.screens.console_lost_stop_s == 120.0
    service = EngineService(tmp_path)
    try:
        service.setup = Setup(lab, protocol)
        assert service.orphan_limit_s() == 120.0
        service.setup = Setup(lab, protocol, orphan_timeout_s=3.0)
        assert service.orphan_limit_s() == 3.0
    finally:
        service.listener.close()


def test_settings_are_declared_once_and_read_by_their_fields():
    from dataclasses import dataclass

    from mmmelab import config as cfg
    from mmmelab.errors import ConfigError
    from mmmelab.protocol import Timing
    from mmmelab.tomlcheck import Table, read_settings, setting

    kinds = (cfg.CameraConfig, cfg.EegConfig, cfg.PhysioConfig, cfg.TriggerBoxConfig,
             cfg.ScreensConfig, cfg.ReminderConfig, Timing)  # fmt: skip
    for kind in kinds:  # an empty table gives the declared defaults
        assert read_settings(kind, Table("lab.toml", {}, "x")) == kind()
    eeg = read_settings(cfg.EegConfig, Table("lab.toml", {"protocol": "acquire", "port": 4000}))
    assert eeg.protocol is cfg.EegProtocol.ACQUIRE and eeg.port == 4000
    with pytest.raises(ConfigError, match=r"devices.physio.data_type: is 'int16'; allowed: "
                                          r"double, float"):  # fmt: skip
        read_settings(cfg.PhysioConfig, Table("lab.toml", {"data_type": "int16"}, "devices.physio"))
    with pytest.raises(ConfigError, match=r"lab.toml: s.fps: is 0; allowed: 1 to 10000"):
        read_settings(cfg.CameraConfig, Table("lab.toml", {"fps": 0}, "s"))
    with pytest.raises(ConfigError, match=r"s.fsp: unknown key; allowed here: .*fps"):
        read_settings(cfg.CameraConfig, Table("lab.toml", {"fsp": 150}, "s"))

    @dataclass(frozen=True)
    class Odd:
        where: Path = setting(Path("."))

    with pytest.raises(TypeError, match=r"Odd.where: no TOML reading"):
        read_settings(Odd, Table("lab.toml", {}))
