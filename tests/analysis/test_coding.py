"""The coding tool's model without a window: frames by camera number with gaps,
tracks in windows, marks written at once and restored, blind coding."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmmelab.analysis.annotations import Emotion, Kind, annotation_path, read_table
from mmmelab.analysis.annotations.coding import CodingSession, check_coder, state_path
from mmmelab.errors import LabError
from tests.helpers import simulate_short_session


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("coding")
    folder = simulate_short_session(root)
    yield folder
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh(session, tmp_path):
    """A copy of the session whose annotations a test may write."""
    dst = tmp_path / session.name
    shutil.copytree(session, dst)
    return dst


def test_frames_keep_the_camera_numbers_and_show_gaps(session):
    with CodingSession(session, "ann") as cs:
        missing = cs.missing()
        assert len(missing) == 2  # the simulated camera drops two frames in a row
        gap = cs.frame(int(missing[0]))
        assert gap.gap and gap.image is None and gap.index is None
        before = cs.frame(int(missing[0]) - 1)
        assert before.image is not None and before.image.dtype == np.uint8
        assert before.image.shape == (cs.store.height // 2, cs.store.width // 2, 3)
        after = cs.frame(int(missing[-1]) + 1)
        assert after.index == before.index + 1  # stored indices run on, numbers jump
        assert before.t < gap.t < after.t  # the gap sits in time where it was
        assert cs.frame(10**9).number == cs.last and cs.frame(-5).number == cs.first
        cs.position = cs.first
        assert cs.step(10) == cs.first + 10 and cs.step(-1) == cs.first


def test_tracks_are_read_in_windows_on_the_master_clock(session):
    with CodingSession(session, "ann", eeg_channels=("Cz", "Pz", "Nope")) as cs:
        names = cs.track_names
        assert names[:2] == ["ECG", "HR"] and {"PPG", "EDA", "RSP", "SKT"} <= set(names)
        assert "EEG Cz" in names and "EEG Nope" not in names
        t0 = cs.time_of(cs.first) + 2.0
        ecg = cs.track("ECG", t0, t0 + 4.0)
        assert 3900 <= len(ecg.t) <= 4001 and np.all(np.diff(ecg.t) > 0)
        wide = cs.track("ECG", t0, t0 + 20.0, max_points=1000)
        assert len(wide.t) == 1000  # min-max pairs per bin
        raw = cs.track("ECG", t0, t0 + 20.0, max_points=10**6)
        assert wide.y.max() == raw.y.max() and wide.y.min() == raw.y.min()  # spikes stay
        cs.start_background()
        cs.wait_background()
        hr = cs.track("HR", t0, t0 + 10.0)
        assert len(hr.t) > 100 and 40 < np.median(hr.y) < 120, cs.heart_rate_note
        labels = [text for _, text in cs.markers]
        assert any(text.startswith("clip_onset") for text in labels)
        assert cs.next_marker() is not None


def test_marks_are_written_at_once_and_restored(fresh):
    cs = CodingSession(fresh, "ann")
    a = cs.first + 100
    cs.position = a
    cs.mark("onset")
    cs.mark("apex", a + 12)
    # the tool dies here: the draft is on disk already
    state = json.loads(state_path(fresh, "ann").read_text())
    assert state["draft"]["onset"] == a and state["draft"]["apex"] == a + 12
    cs.close()
    cs = CodingSession(fresh, "ann")
    assert cs.draft.onset == a and cs.draft.apex == a + 12 and cs.position == a
    assert cs.draft_problem() == "mark the onset and the offset"
    cs.mark("offset", a + 40)
    cs.set_labels(aus="L12+6", emotion="happiness", notes="smile, left")
    with pytest.raises(ValueError, match="not an AU"):
        cs.set_labels(aus="12+X")
    assert cs.rule_kind() is Kind.ME  # 41 frames at 150 fps
    ev = cs.commit()
    assert ev.kind is Kind.ME and ev.emotion is Emotion.HAPPINESS and ev.id == "ann-001"
    table = read_table(annotation_path(fresh, "ann"))
    assert [(x.onset, x.apex, x.offset) for x in table.annotations] == [(a, a + 12, a + 40)]
    assert cs.draft.onset is None
    # a macro-expression the coder calls an ME: allowed with a reason
    cs.mark("onset", a + 300)
    cs.mark("offset", a + 420)
    with pytest.raises(ValueError, match="reason"):
        cs.override_kind("ME")
    cs.override_kind("ME", "onset blurred by a blink")
    ev2 = cs.commit()
    assert ev2.kind is Kind.ME and ev2.kind_override == "onset blurred by a blink"
    cs.edit("ann-001")
    cs.set_labels(emotion="surprise")
    cs.commit()
    cs.close()
    table = read_table(annotation_path(fresh, "ann"))
    assert [x.emotion for x in table.annotations] == [Emotion.SURPRISE, Emotion.OTHERS]
    assert not list((fresh / "annotations").glob("*.tmp"))


def test_a_coder_works_blind_until_submitting(fresh):
    with CodingSession(fresh, "ann") as a:
        a.mark("onset", a.first + 10)
        a.mark("offset", a.first + 30)
        a.commit()
        a.submit()
    with CodingSession(fresh, "bob") as b:
        assert b.others() == {}  # bob has not submitted: ann's marks stay hidden
        b.mark("onset", b.first + 12)
        with pytest.raises(LabError, match="being marked"):
            b.submit()
        b.mark("offset", b.first + 31)
        b.commit()
        b.submit()
        assert set(b.others()) == {"ann"}
        assert [c for c, _ in b.events_on_screen()] == ["bob", "ann"]


def test_bad_coder_names_and_sessions(tmp_path):
    for bad in ("", "a/b", "auto:x", "consensus", ".hidden", "Zoë"):
        with pytest.raises(LabError):
            check_coder(bad)
    assert check_coder("coder_1") == "coder_1"
    with pytest.raises(LabError):
        CodingSession(tmp_path, "ann")


def _code(folder, coder, events):
    """A coder's pass by the model, as the keys would make it, then submitted."""
    with CodingSession(folder, coder) as cs:
        for on, ap, off, aus, emo in events:
            cs.mark("onset", cs.first + on)
            cs.mark("apex", cs.first + ap)
            cs.mark("offset", cs.first + off)
            cs.set_labels(aus=aus, emotion=emo)
            cs.commit()
        cs.submit()
        return cs.first


def test_adjudication_decides_the_disputes_and_writes_the_consensus(fresh):
    from mmmelab.analysis.annotations.adjudication import Adjudication

    first = _code(fresh, "ann", [(100, 110, 150, "6+12", "happiness"),
                                 (400, 405, 430, "1+2", "surprise"),
                                 (900, 990, 1300, "4+7", "anger")])  # fmt: skip
    with pytest.raises(LabError, match="two or more submitted"):
        Adjudication(fresh, "judge")
    _code(fresh, "bob", [(101, 111, 151, "6+12", "happiness"),
                         (402, 405, 431, "1+2+5", "surprise"),
                         (905, 1000, 1290, "4", "fear")])  # fmt: skip
    adj = Adjudication(fresh, "judge")
    groups = {d.group: d.what for d in adj.disputes}
    assert groups == {1: ["aus"], 2: ["onset", "apex", "offset", "emotion", "aus"]}
    with pytest.raises(LabError, match="not decided"):
        adj.write()
    adj.decide(1)  # as proposed: AUs both gave
    adj = Adjudication(fresh, "judge")  # the adjudicator came back: decision kept
    assert list(adj.decisions) == [1] and [d.group for d in adj.undecided()] == [2]
    adj.decide(2, take="bob", emotion="anger", aus="4+7")
    path = adj.write()
    table = read_table(path)
    assert [(a.onset - first, a.offset - first) for a in table.annotations] == [
        (101, 151), (401, 431), (905, 1290)]  # medians; a half rounds up  # fmt: skip
    assert [a.emotion for a in table.annotations] == [Emotion.HAPPINESS, Emotion.SURPRISE,
                                                      Emotion.ANGER]  # fmt: skip
    assert ["+".join(str(u) for u in a.aus) for a in table.annotations] == ["6+12", "1+2", "4+7"]
    assert [a.kind for a in table.annotations] == [Kind.ME, Kind.ME, Kind.MAE]
    doc = json.loads((fresh / "annotations" / "adjudication.json").read_text())
    assert doc["decisions"]["2"]["take"] == "bob" and doc["written"]
    assert doc["agreement"]["pairs"][0]["matched"] == 3
    # a coder edits their file afterwards: the decisions no longer fit, said and kept aside
    with CodingSession(fresh, "bob") as cs:
        cs.delete(cs.table.annotations[0].id)
    again = Adjudication(fresh, "judge")
    assert again.decisions == {} and "started over" in again.note
    assert len(list((fresh / "annotations").glob("adjudication.*.json"))) == 1


def test_the_screen_shows_the_cells_the_analysis_measures():
    from mmmelab.analysis.annotations.codingdata import display_rgb, white_balance_luts
    from mmmelab.analysis.face.frames import debayer_region

    raw = np.random.default_rng(3).integers(0, 256, (48, 64), np.uint8)
    for pattern in ("RGGB", "BGGR", "GRBG", "GBRG"):
        for gains in ((1.0, 1.0, 1.0), (1.4, 1.0, 1.8)):
            shown = display_rgb(raw, pattern, white_balance_luts(gains)).astype(float)
            cells = debayer_region(raw, None, pattern, True, gains)
            assert shown.shape == cells.shape == (24, 32, 3)
            assert np.abs(shown - cells).max() <= 0.5 + 1e-3  # rounding of the G mean only
