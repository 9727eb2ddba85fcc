"""The coding window end to end (offscreen): two coders code a simulated session by
keys, the tool is killed and reopened without losing a mark, the adjudication
writes the consensus and ``mmme agreement`` reports the expected figures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pyqtgraph as pg
import pytest
from PyQt6.QtCore import Qt

from mmmelab.analysis.annotations import Emotion, Kind, annotation_path, read_table
from mmmelab.analysis.annotations.coding import CodingSession
from mmmelab.gui.adjudicate import AdjudicationWindow, open_adjudication
from mmmelab.gui.annotate import CodingWindow
from tests.helpers import simulate_short_session, wait_until

pytestmark = pytest.mark.timeout(180)
K = Qt.Key


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotate")
    folder = simulate_short_session(root, seed=8)
    yield folder
    shutil.rmtree(root, ignore_errors=True)


def open_window(qtbot, folder, coder):
    model = CodingSession(folder, coder)
    win = CodingWindow(model)
    qtbot.addWidget(win)
    win.show()
    win.view.setFocus()
    return model, win


def key(qtbot, win, k, times=1, shift=False):
    mod = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    for _ in range(times):
        qtbot.keyClick(win, k, mod)


EMOTION_ORDER = [e.value for e in Emotion]


def code_event(qtbot, win, start, apex_after, offset_after, aus, emotion, by_keys=True):
    """Go to ``start`` (by typing its number) and mark an event by keys: key frames,
    AUs typed, emotion by Ctrl+digit - or the labels clicked in the side panel."""
    key(qtbot, win, K.Key_G)
    qtbot.keyClicks(win.goto, str(start))
    qtbot.keyClick(win.goto, K.Key_Return)
    assert win.model.position == start
    key(qtbot, win, K.Key_O)
    key(qtbot, win, K.Key_Right, apex_after // 10, shift=True)
    key(qtbot, win, K.Key_Right, apex_after % 10)
    key(qtbot, win, K.Key_A)
    rest = offset_after - apex_after
    key(qtbot, win, K.Key_Right, rest // 10, shift=True)
    key(qtbot, win, K.Key_Right, rest % 10)
    key(qtbot, win, K.Key_F)
    if by_keys:
        key(qtbot, win, K.Key_U)
        qtbot.keyClicks(win.aus, "+".join(aus))
        qtbot.keyClick(win.aus, K.Key_Return)  # back to the video's keys
        digit = Qt.Key(Qt.Key.Key_1.value + EMOTION_ORDER.index(emotion))
        qtbot.keyClick(win, digit, Qt.KeyboardModifier.ControlModifier)
    else:
        for au in aus:  # the picker, clicked
            win.au_buttons[au].click()
        win.emotion.setCurrentText(emotion)
        win.emotion.activated.emit(win.emotion.currentIndex())
        win.view.setFocus()
    assert win.model.draft.emotion == emotion and win.model.draft.aus == "+".join(aus)
    key(qtbot, win, K.Key_Return)


def test_two_coders_a_kill_the_adjudication_and_the_agreement(qtbot, session, tmp_path):
    folder = tmp_path / session.name
    shutil.copytree(session, folder)
    model, win = open_window(qtbot, folder, "ann")
    f0 = model.first
    assert win.caption.text().startswith(f"frame {f0}")
    key(qtbot, win, K.Key_Right, 3)
    key(qtbot, win, K.Key_Right, 1, shift=True)
    assert model.position == f0 + 13
    key(qtbot, win, K.Key_Left)
    assert model.position == f0 + 12
    code_event(qtbot, win, f0 + 300, 12, 45, ["6", "12"], "happiness")  # an ME
    code_event(qtbot, win, f0 + 900, 8, 30, ["1", "2"], "surprise")  # an ME
    code_event(qtbot, win, f0 + 1500, 60, 240, ["4", "7"], "anger")  # a MaE (1.6 s)
    # a fourth, half marked when the tool dies
    win._jump(f0 + 2400)
    key(qtbot, win, K.Key_O)
    assert win.events.count() == 3
    saved = read_table(annotation_path(folder, "ann"))  # on disk already, before any close
    assert [a.kind for a in saved.annotations] == [Kind.ME, Kind.ME, Kind.MAE]
    assert [a.emotion for a in saved.annotations] == [Emotion.HAPPINESS, Emotion.SURPRISE,
                                                      Emotion.ANGER]  # fmt: skip
    assert ["+".join(str(u) for u in a.aus) for a in saved.annotations] == ["6+12", "1+2", "4+7"]
    assert [(a.onset - f0, a.apex - f0, a.offset - f0) for a in saved.annotations] == [
        (300, 312, 345), (900, 908, 930), (1500, 1560, 1740)]  # fmt: skip
    # killed: the window and its model are dropped without closing anything
    win.hide()
    model2, win2 = open_window(qtbot, folder, "ann")
    assert len(model2.table.annotations) == 3 and model2.draft.onset == f0 + 2400
    assert model2.position == f0 + 2400 and "onset " + str(f0 + 2400) in win2.keyframes.text()
    key(qtbot, win2, K.Key_Escape)  # the half-marked one is abandoned
    win2.submit()
    assert model2.submitted and not win2.submit_button.isEnabled()
    model.close()
    model2.close()
    # the second coder, blind to the first
    model3, win3 = open_window(qtbot, folder, "bob")
    assert model3.others() == {} and win3.events.count() == 0
    code_event(qtbot, win3, f0 + 301, 11, 44, ["6", "12"], "happiness")
    code_event(qtbot, win3, f0 + 902, 6, 30, ["1", "2", "5"], "surprise")
    code_event(qtbot, win3, f0 + 1505, 60, 230, ["4"], "fear", by_keys=False)
    win3.submit()
    assert win3.events.count() == 6  # now ann's submitted pass shows too
    model3.close()
    # adjudication: walk the disputes in the window
    adj, frames = open_adjudication(folder, "judge")
    awin = AdjudicationWindow(adj, frames)
    qtbot.addWidget(awin)
    awin.show()
    assert [d.group for d in adj.disputes] == [1, 2]
    awin.keep()  # dispute 1 (AUs): the proposal, 1+2
    awin.go(1)
    awin.table.selectRow(awin.rows.index("ann"))
    awin.take()  # dispute 2: ann's version (anger, 4+7)
    assert not adj.undecided()
    awin.write()
    assert "written" in awin.status.text()
    frames.close()
    cons = read_table(annotation_path(folder, "consensus"))
    assert [a.emotion for a in cons.annotations] == [Emotion.HAPPINESS, Emotion.SURPRISE,
                                                     Emotion.ANGER]  # fmt: skip
    assert ["+".join(str(u) for u in a.aus) for a in cons.annotations] == ["6+12", "1+2", "4+7"]
    # the agreement, from the command line
    res = subprocess.run([sys.executable, "-m", "mmmelab", "agreement", str(folder), "--json"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)["sessions"][folder.name]
    (pair,) = rep["pairs"]
    assert pair["matched"] == 3 and pair["unmatched"] == [0, 0]
    assert pair["au"]["pooled"] == pytest.approx(2 * (2 + 2 + 1) / (4 + 5 + 3))
    assert pair["emotion_agreement"] == pytest.approx(2 / 3)
    assert pair["keyframes"]["onset"]["mean_frames"] == pytest.approx((1 + 2 + 5) / 3)
    assert pair["keyframes"]["apex"]["mean_frames"] == pytest.approx((0 + 0 + 5) / 3)


def test_playback_loop_and_jumps(qtbot, session):
    model, win = open_window(qtbot, session, "viewer")
    try:
        f0 = model.first
        win._jump(f0 + 100)
        key(qtbot, win, K.Key_2)  # 1/5 speed: 30 frames a second
        key(qtbot, win, K.Key_Space)
        wait_until(lambda: (qtbot.wait(20) or True) and model.position >= f0 + 106, 5.0,
                   "playback")  # fmt: skip
        key(qtbot, win, K.Key_Space)
        assert win.direction == 0 and win.skipped_frames == 0
        at = model.position
        key(qtbot, win, K.Key_R)
        wait_until(lambda: (qtbot.wait(20) or True) and model.position <= at - 3, 5.0,
                   "reverse playback")  # fmt: skip
        key(qtbot, win, K.Key_R)
        # a loop over the mark in progress
        win._jump(f0 + 200)
        model.mark("onset")
        model.mark("offset", f0 + 206)
        key(qtbot, win, K.Key_L)
        key(qtbot, win, K.Key_4)
        key(qtbot, win, K.Key_1)  # full speed: 150 frames a second, the loop wraps
        key(qtbot, win, K.Key_Space)
        seen: set[int] = set()
        wait_until(lambda: (qtbot.wait(10) or True) and (seen.add(model.position) or
                   len(seen) >= 5), 5.0, "looping")  # fmt: skip
        key(qtbot, win, K.Key_Space)
        assert seen <= set(range(f0 + 200, f0 + 207))
        # the next marker, and the dropped frame shown as a gap
        win._jump(f0)
        key(qtbot, win, K.Key_M)
        assert model.position > f0
        gap = int(model.missing()[0])
        win._jump(gap)
        assert "DROPPED" in win.caption.text() and "dropped" in win.gap_text.textItem.toPlainText()
    finally:
        model.cancel_draft()
        model.close()


CHILD = textwrap.dedent("""
    import sys
    from mmmelab.analysis.annotations.coding import CodingSession
    cs = CodingSession(sys.argv[1], "kim")
    for k in range(10**6):
        cs.mark("onset", cs.first + 10 * k)
        cs.mark("offset", cs.first + 10 * k + 5)
        ev = cs.commit()
        print(ev.id, flush=True)
""")


def test_a_real_kill_loses_no_saved_mark(session, tmp_path):
    folder = tmp_path / session.name
    shutil.copytree(session, folder)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        done = []
        assert proc.stdout is not None
        while len(done) < 15:
            done.append(proc.stdout.readline().strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    table = read_table(annotation_path(folder, "kim"))  # readable whatever the moment
    ids = {a.id for a in table.annotations}
    assert set(done) <= ids  # every event the tool reported saved is there


def test_spotter_candidates_are_a_track_and_a_key_away(qtbot, session, tmp_path):
    """A spot folder as ``mmme spot`` writes it: candidates in the event row (N and a
    click go to their apex) and the regional curves as a track."""
    import numpy as np

    from mmmelab.analysis.annotations import Annotation, AnnotationTable, write_table

    with CodingSession(session, "viewer") as probe:
        f0, numbers, times = probe.first, probe.numbers, probe.times
    spots = tmp_path / "spots"
    cands = [Annotation(f"auto-{k}", f0 + on, f0 + on + 9, f0 + on + 30, coder="auto:mdmd-flow")
             for k, on in enumerate((400, 1200), start=1)]  # fmt: skip
    table = AnnotationTable(cands, 150.0, "auto:mdmd-flow")
    write_table(table, spots / f"{session.name}_spots.tsv", (numbers, times), session.name)
    t = times[:2000]
    np.savez(spots / f"{session.name}_curves.npz", seg0_frame=numbers[:2000], seg0_time=t,
             **{"seg0_me:mouth": np.sin(t), "seg0_mae:mouth": np.cos(t)})  # fmt: skip
    model = CodingSession(session, "viewer", spots)
    win = CodingWindow(model)
    qtbot.addWidget(win)
    win.show()
    try:
        assert "motion" in win.plots and len(model.spots.candidates) == 2
        win._jump(f0)
        key(qtbot, win, K.Key_N)
        assert model.position == f0 + 409  # the first candidate's apex
        key(qtbot, win, K.Key_N)
        assert model.position == f0 + 1209
        key(qtbot, win, K.Key_N, shift=True)
        assert model.position == f0 + 409
        win._jump(f0 + 1200)  # the second bar is on screen: click its middle
        qtbot.waitUntil(lambda: not win.tracks.timer.isActive(), timeout=5000)
        plot = win.plots["events"]
        x = model.time_of(f0 + 1215) - model.t0
        scene = plot.vb.mapViewToScene(pg.Point(x, 0.5))

        class Click:
            def button(self):
                return Qt.MouseButton.LeftButton

            def scenePos(self):
                return scene

            def accept(self):
                pass

        win._jump(f0 + 1180)
        win._events_clicked(Click())
        assert model.position == f0 + 1209
    finally:
        win.close()
        model.close()


def test_annotate_refuses_bad_input_in_one_line(session, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for args, words in (
        ([str(session), "--coder", "a/b"], "coder 'a/b'"),
        ([str(tmp_path / "nowhere"), "--coder", "ann"], "not a session folder"),
        ([str(session), "--coder", "ann", "--spots", str(tmp_path)], "_spots.tsv"),
    ):
        res = subprocess.run([sys.executable, "-m", "mmmelab", "annotate", *args],
                             capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert words in res.stderr
