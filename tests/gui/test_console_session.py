"""The whole GUI on the simulated lab (offscreen): a 2-trial session driven by keys and clicks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from mmmelab.acquisition.messages import ControllerState
from mmmelab.acquisition.paradigm import Phase
from mmmelab.gui.app import LabApp
from mmmelab.protocol import Emotion
from mmmelab.storage import open_session
from mmmelab.streams import StimulusKind
from mmmelab.sync.codes import EventCode

pytestmark = pytest.mark.timeout(180)

WAIT_MS = 30_000


@pytest.fixture
def gui_lab(small_lab):
    reminder = dataclasses.replace(small_lab.reminder, hide_after_s=0.3)
    screens = dataclasses.replace(small_lab.screens, photodiode=True)
    return dataclasses.replace(small_lab, reminder=reminder, screens=screens)


@pytest.fixture
def lab_app(qtbot, gui_lab, tiny_protocol, tmp_path):
    app = LabApp(gui_lab, tiny_protocol, out_root=tmp_path / "sessions", participant_id="P01")
    app.show()
    yield app
    # closing during a recording asks; answer "yes" (a real dialog would wait forever)
    app.console.ask = lambda question: True
    app.console.close()
    qtbot.waitUntil(lambda: not app.console.isVisible(), timeout=WAIT_MS)
    app.shutdown()
    assert not any(w.isVisible() for w in (app.console, app.stimulus, app.reminder))
    assert not app.controller.link.runner.alive()


def _ready(qtbot, app):
    app.connect_devices()
    controller = app.controller
    # Start stays disabled in the preview until the checks ran or are overridden
    qtbot.waitUntil(app.console.setup.run_button.isEnabled, timeout=WAIT_MS)
    assert not app.console.start_button.isEnabled()
    app.console.setup.override.setChecked(True)
    # the button is enabled once the console has seen the READY state (a queued signal)
    qtbot.waitUntil(app.console.start_button.isEnabled, timeout=WAIT_MS)
    assert controller.state is ControllerState.READY
    qtbot.mouseClick(app.console.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.state is ControllerState.RECORDING, timeout=WAIT_MS)
    qtbot.waitUntil(app.console.pause_button.isEnabled, timeout=WAIT_MS)  # the console knows


def _phase(app):
    info = app.stimulus.info
    return info.phase if info is not None else None


def _rate_by_mouse(qtbot, panel, emotion: int, valence: int, arousal: int) -> None:
    for name, value in (("emotion", emotion), ("valence", valence), ("arousal", arousal)):
        qtbot.mouseClick(panel.groups[name].button(value), Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.submit, Qt.MouseButton.LeftButton)


def test_two_trial_session_through_the_gui(qtbot, lab_app):
    app = lab_app
    _ready(qtbot, app)
    stim, console = app.stimulus, app.console
    answers = [(1, 7, 5), (2, 2, 8), (4, 3, 6)]  # practice, trial 1, trial 2
    for k, (emotion, valence, arousal) in enumerate(answers):
        qtbot.waitUntil(lambda: _phase(app) is Phase.WAIT_SPACE, timeout=WAIT_MS)
        # Space typed while the console has the focus still reaches the participant
        qtbot.keyClick(console if k == 1 else stim, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: _phase(app) is Phase.CLIP, timeout=WAIT_MS)
        if k == 1:  # the CMRR reminder during a clip: shown, then hidden by its timer
            qtbot.keyClick(console, Qt.Key.Key_F1)
            assert app.reminder.on
            qtbot.waitUntil(lambda: not app.reminder.on, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: _phase(app) is Phase.RATING, timeout=WAIT_MS)
        if k == 0:
            _rate_by_mouse(qtbot, stim.rating, emotion, valence, arousal)
        else:
            for digit in (emotion, valence, arousal):
                qtbot.keyClick(stim, Qt.Key(Qt.Key.Key_0 + digit))
            qtbot.keyClick(stim, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: _phase(app) is not Phase.RATING, timeout=WAIT_MS)
    controller = app.controller
    qtbot.waitUntil(lambda: controller.state is ControllerState.FINISHED, timeout=60_000)
    result = controller.result
    assert result is not None and result.check.get("ok"), result
    assert result.check["stimulus"]["presentations"] == 6  # 3 clips + 3 neutral clips

    with open_session(controller.folder) as s:
        assert s.status.value == "complete"
        trials = s.trials
        assert len(trials) == 3 and not trials["missed"].any()
        emotions = list(Emotion)
        for row, (emotion, valence, arousal) in zip(trials, answers, strict=True):
            assert row["chosen_emotion"].decode() == emotions[emotion - 1].value
            assert (row["valence"], row["arousal"]) == (valence, arousal)
        codes = list(s.markers["code"])
        assert codes.count(EventCode.REMINDER_ON) == 1
        assert codes.count(EventCode.REMINDER_OFF) == 1
        # the reminder markers carry the displayed times, after the key press
        display = s.logs["display"]
        shown = display[display["code"] == EventCode.REMINDER_ON]
        assert len(shown) == 1 and 0 <= shown["t_display"][0] - shown["t_input"][0] < 0.5
        on = s.markers[s.markers["code"] == EventCode.REMINDER_ON][0]
        assert on["t_request"] == pytest.approx(shown["t_display"][0])
        # clip onsets are the first displayed frames of the clips
        pres = s.logs["presentations"]
        assert sorted(pres["kind"]) == [StimulusKind.CLIP] * 3 + [StimulusKind.NEUTRAL] * 3
        clips = pres[pres["kind"] == StimulusKind.CLIP]
        onsets = s.markers[s.markers["code"] == EventCode.CLIP_ONSET]["t_request"]
        np.testing.assert_allclose(np.sort(clips["t_onset"]), np.sort(onsets))
        assert (clips["t_onset"] >= clips["t_space"]).all()
        frames = s.logs["stimulus_frames"]
        for p in pres:
            mine = frames[(frames["trial"] == p["trial"]) & (frames["practice"] == p["practice"])]
            mine = mine[mine["kind"] == p["kind"]]
            assert len(mine) == p["frames_shown"] > 5
            assert mine["t_display"][0] == pytest.approx(p["t_onset"])
            assert mine["frame"][0] == 0 and (np.diff(mine["frame"]) >= 1).all()
            # a dropped frame is a gap in the shown frame numbers (zero drops is the
            # benchmark's figure; a loaded test machine may drop one)
            assert p["frames_dropped"] == int(np.sum(np.diff(mine["frame"]) - 1))
            assert (mine["t_display"] >= mine["t_due"] - 0.003).all()
        rating_screens = display[display["code"] == EventCode.RATING_ONSET]
        assert len(rating_screens) == 3
    # the quality report, from the console, written by its own process, then opened
    opened = []
    console.reports._open = opened.append
    assert console.report_button.isEnabled()
    qtbot.mouseClick(console.report_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(opened), timeout=120_000)
    assert opened[0].toLocalFile() == str(controller.folder / "report.html")
    page = (controller.folder / "report.html").read_text()
    assert "<h2>Synchronisation</h2>" in page and "reminder" in page


def test_closing_the_console_while_recording_asks_then_saves(qtbot, lab_app):
    app = lab_app
    _ready(qtbot, app)
    questions: list[str] = []
    app.console.ask = lambda question: questions.append(question) or False
    app.console.close()  # "no": the session goes on
    assert questions and app.console.isVisible()
    assert app.controller.state is ControllerState.RECORDING
    app.console.ask = lambda question: True
    app.console.close()  # "yes": aborted, saved, then the window closes
    qtbot.waitUntil(lambda: not app.console.isVisible(), timeout=60_000)
    assert app.controller.state is ControllerState.FINISHED
    with open_session(app.controller.folder) as s:
        assert s.status.value == "aborted"
        assert EventCode.ABORT in s.markers["code"]


def test_an_error_in_a_gui_slot_is_logged_and_recording_goes_on(qtbot, lab_app, caplog):
    from mmmelab.gui.app import _log_uncaught

    app = lab_app
    _ready(qtbot, app)
    try:
        raise ZeroDivisionError("a bug in a slot")
    except ZeroDivisionError as exc:
        _log_uncaught(type(exc), exc, exc.__traceback__)
    assert "recording continues" in caplog.text and "a bug in a slot" in caplog.text
    assert app.console.events.problems >= 1  # shown in the console's event log
    assert app.controller.state is ControllerState.RECORDING


def test_pause_holds_the_participant_at_the_next_trial(qtbot, lab_app):
    app = lab_app
    _ready(qtbot, app)
    stim = app.stimulus
    qtbot.waitUntil(lambda: _phase(app) is Phase.WAIT_SPACE, timeout=WAIT_MS)
    qtbot.mouseClick(app.console.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stim.info is not None and stim.info.paused, timeout=WAIT_MS)
    qtbot.keyClick(stim, Qt.Key.Key_Space)  # ignored while paused
    qtbot.wait(200)
    assert stim.playback is None and _phase(app) is Phase.WAIT_SPACE
    qtbot.mouseClick(app.console.pause_button, Qt.MouseButton.LeftButton)  # resume
    qtbot.waitUntil(lambda: stim.info is not None and not stim.info.paused, timeout=WAIT_MS)
    qtbot.keyClick(stim, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: _phase(app) is Phase.CLIP, timeout=WAIT_MS)


def test_preview_checks_show_red_then_the_session_starts_with_the_record(qtbot, lab_app):
    """Before Start: live preview and plots, the checks run from the console; a
    high-impedance electrode, a flickering lamp and the MP160's trigger cable out
    are red with their reasons; fixed, the checks pass, Start is allowed and the
    manifest holds the set-up record."""
    app = lab_app
    console, controller = app.console, app.controller
    app.connect_devices()
    qtbot.waitUntil(console.setup.run_button.isEnabled, timeout=WAIT_MS)
    assert not console.start_button.isEnabled()
    qtbot.waitUntil(lambda: console.preview.shown > 3, timeout=WAIT_MS)  # live, not recording
    qtbot.waitUntil(lambda: console.plots is not None and console.plots.updates > 3,
                    timeout=WAIT_MS)  # fmt: skip
    assert controller.folder is None
    sim = controller.engine.devices.simlab
    sim.eeg_server.set_impedances({"O1": 60.0})
    sim.camera.rig.flicker_hz, sim.camera.rig.flicker_depth = 100.0, 0.05  # eyes stay unsaturated
    sim.acq.trigger_connected = False
    with qtbot.waitSignal(controller.rig_checked, timeout=60_000) as bad:
        qtbot.mouseClick(console.setup.run_button, Qt.MouseButton.LeftButton)
    red = {c["name"]: c["reason"] for c in bad.args[0]["checks"] if c["verdict"] == "red"}
    assert set(red) == {"impedance", "flicker", "trigger physio"}, red
    table = console.setup.table
    shown = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert shown["impedance"].startswith("RED") and "O1" in shown["impedance"]
    assert "alias" in shown["flicker"]
    assert table.item(0, 0).foreground().color().name() in ("#2e7d32", "#c62828", "#ef6c00")
    heads = console.setup_tabs.impedance
    assert heads.colours["O1"] == "#c62828" and heads.colours["CZ"] == "#2e7d32"  # the head map
    camera = console.setup_tabs.camera  # live figures while the lens is turned
    qtbot.waitUntil(lambda: camera.updates > 2 and camera.focus_bar.value() > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "mains flicker" in camera.flicker.text(), timeout=WAIT_MS)
    assert camera.alias_lines  # the spectrum marks where 100 and 120 Hz would show
    camera.fields["gain_db"].setValue(50.0)  # beyond the camera: clamped to its range
    assert camera.fields["gain_db"].value() == controller.camera_limits["gain"][1]
    camera.fields["exposure_us"].setValue(2500.0)
    with qtbot.waitSignal(controller.camera_adjusted, timeout=WAIT_MS) as adjusted:
        qtbot.mouseClick(camera.apply_button, Qt.MouseButton.LeftButton)
    assert adjusted.args[0]["exposure_us"] == 2500.0 and "in force" in camera.applied.text()
    camera.fields["gain_db"].setValue(0.0)
    with qtbot.waitSignal(controller.camera_adjusted, timeout=WAIT_MS):
        qtbot.mouseClick(camera.apply_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(console.setup.run_button.isEnabled, timeout=WAIT_MS)
    assert not console.start_button.isEnabled()  # red: Start needs the fix or the override
    sim.acq.trigger_connected = True  # the cable back in: the loop-back alone shows it
    with qtbot.waitSignal(controller.rig_checked, timeout=WAIT_MS) as loop:
        qtbot.mouseClick(console.setup.loopback_button, Qt.MouseButton.LeftButton)
    trig = {c["name"]: c["verdict"] for c in loop.args[0]["checks"] if c["name"].startswith("trig")}
    assert trig == dict.fromkeys(("trigger camera", "trigger eeg", "trigger physio"), "green")
    assert loop.args[0]["verdict"] == "red"  # the impedance and the lamp are still to fix
    shown = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert shown["trigger physio"].startswith("GREEN") and shown["impedance"].startswith("RED")
    sim.eeg_server.set_impedances()
    sim.camera.rig.flicker_depth = 0.0
    with qtbot.waitSignal(controller.rig_checked, timeout=60_000) as good:
        qtbot.mouseClick(console.setup.run_button, Qt.MouseButton.LeftButton)
    assert good.args[0]["verdict"] != "red", good.args[0]["checks"]
    qtbot.wait(300)
    assert not console.start_button.isEnabled()  # the clip and display check is not run yet
    with qtbot.waitSignal(app.stimulus.display_checked, timeout=30_000) as display:
        qtbot.mouseClick(console.setup.display_button, Qt.MouseButton.LeftButton)
    shown = {c["name"]: c for c in display.args[0]["checks"]}
    assert set(shown) == {"display", "audio", "photodiode"}
    assert shown["display"]["figures"]["frames_shown"] > 5  # the clip (up to 3 s) played
    assert shown["display"]["figures"]["refresh_hz_reported"] > 0
    rows = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert {"display", "audio", "photodiode", "impedance"} <= set(rows)
    qtbot.waitUntil(console.start_button.isEnabled, timeout=WAIT_MS)
    qtbot.mouseClick(console.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.state is ControllerState.RECORDING, timeout=WAIT_MS)
    folder = controller.folder
    assert not console.setup_tabs.isVisible()  # the set-up views are for before Start
    shown = console.preview.shown  # the recording's preview follows the set-up one
    qtbot.waitUntil(lambda: console.preview.shown > shown + 3, timeout=WAIT_MS)
    console.ask = lambda question: True
    console.close()
    qtbot.waitUntil(lambda: not console.isVisible(), timeout=WAIT_MS)
    app.shutdown()
    with open_session(folder) as s:
        setup = s.manifest["setup"]
    assert setup["verdict"] == good.args[0]["verdict"] and not setup["overridden"]
    assert {c["name"] for c in setup["checks"]} >= {"exposure", "focus", "flicker", "impedance"}
    assert setup["camera_final"]["exposure_us"] == 2500.0 and len(setup["camera_changes"]) == 2
    assert setup["display"]["verdict"] == display.args[0]["verdict"]


@pytest.fixture
def striped_app(qtbot, gui_lab, tiny_protocol, tmp_path):
    lab = dataclasses.replace(
        gui_lab, volumes=(tmp_path / "sessions", tmp_path / "vol1"), frames_per_chunk=30
    )
    app = LabApp(lab, tiny_protocol, out_root=tmp_path / "sessions", participant_id="P01")
    app.show()
    yield app
    app.console.ask = lambda question: True
    app.console.close()
    qtbot.waitUntil(lambda: not app.console.isVisible(), timeout=WAIT_MS)
    app.shutdown()


def test_a_striped_recording_shows_each_volume_in_the_console(qtbot, striped_app, tmp_path):
    app = striped_app
    _ready(qtbot, app)
    panel = app.console.recording
    qtbot.waitUntil(lambda: panel.volumes.isVisible() and "MB/s" in panel.volumes.text(),
                    timeout=WAIT_MS)  # fmt: skip
    lines = panel.volumes.text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"volume 0 ({tmp_path / 'sessions'}): ") and "full in" in lines[0]
    assert lines[1].startswith(f"volume 1 ({tmp_path / 'vol1'}): ") and "full in" in lines[1]
