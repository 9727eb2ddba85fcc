"""The spotter end to end: the simulated face, crops, head-motion removal, candidates
against the simulation's truth, ``mmme spot`` on a session and on a real video."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mmmelab.analysis.spotting.spotter import SpotParams, _cell_layout, _remove_global
from mmmelab.hardware_mocks.ximea.face import EMOTION_AUS, FaceRenderer, FaceScript, au_field
from tests.analysis.test_face_detect import VIDEO

W, H = 512, 272


def script() -> FaceScript:
    me = {"kind": "ME", "onset": 1.0, "apex": 1.1, "offset": 1.3, "emotion": "happiness"}
    return FaceScript.random(0.0, 10.0, [me], min(W, H), seed=4)


def test_the_simulated_face_moves_where_its_script_says():
    sc = script()
    r = FaceRenderer(W, H, sc)
    assert sc.expressions[0]["aus"] == EMOTION_AUS["happiness"] == "6+12"
    neutral = r.render(0.5).astype(float)
    again = r.render(0.5).astype(float)
    # noise differs frame to frame, the face does not
    assert 0.5 < np.abs(neutral - again).mean() < 4.0
    t_apex = 1.1
    move = sc.pose(t_apex)
    sc.drift, sc.head_moves, sc.blinks = [], [], []  # the expression alone
    r2 = FaceRenderer(W, H, dataclasses.replace(sc, noise_sigma=0.0))
    still, apex = r2.render(0.5).astype(float), r2.render(t_apex).astype(float)
    diff = np.abs(apex - still)
    s = min(W, H)
    ys, xs = np.nonzero(diff > 6)
    assert len(ys) > 20  # the lip corners and cheeks moved ...
    assert ys.min() > H / 2 - 0.1 * s  # ... only below the eyes
    assert isinstance(move, tuple) and len(move) == 3
    f = au_field(H, W, "R14", (0, 0, W, H))
    mag = np.hypot(f[0], f[1])
    assert mag[:, : W // 2].max() == pytest.approx(1.0)  # the participant's right only
    assert mag[:, W // 2 :].max() < 0.02  # (the Gaussian's tail at the midline)
    # a blink shuts the eyes: the eye region darkens into skin and lashes
    b0, dur = 3.0, 0.2
    r3 = FaceRenderer(W, H, dataclasses.replace(sc, blinks=[(b0, dur)], noise_sigma=0.0))
    ey, ex = int(H / 2 - 0.08 * s), int(W / 2 - 0.11 * s)
    open_eye = r3.render(2.0)[ey - 3 : ey + 3, ex - 12 : ex + 12].astype(float)
    shut = r3.render(b0 + 0.4 * dur)[ey - 3 : ey + 3, ex - 12 : ex + 12].astype(float)
    assert np.abs(open_eye - shut).mean() > 20
    truth = sc.truth()
    assert {"expressions", "blinks", "head_moves", "drift", "light", "noise_sigma"} <= set(truth)


def test_head_motion_is_removed_and_an_expression_stays():
    p = SpotParams()
    cells, face, centres = _cell_layout(p.size, p.grid)
    th, sc, t = np.deg2rad(0.8), 1.01, np.array([1.5, -0.7])
    c = p.size / 2
    rot = sc * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    g = (centres - c) @ rot.T + c + t - centres  # a head move: rotation, scale, shift
    local = np.zeros_like(g)
    local[cells["mouth"][:3]] = (0.0, -0.6)  # a lip corner on its own
    out = _remove_global(g + local, face, centres, "similarity", cells["nose"])
    assert np.abs(out[cells["brow_left"]]).max() < 0.02
    assert np.hypot(*out[cells["mouth"][:3]].T).min() > 0.5
    left = _remove_global(g, face, centres, "translation", cells["nose"])
    assert np.abs(left[cells["brow_left"]]).max() > 0.3  # a shift model leaves the rotation


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.spotbench import BENCH_HR_RESPONSE
    from mmmelab.study import write_truth_annotations

    CLIP_S, NEUTRAL_S = 15.0, 3.0
    proto = short_trials(CLIP_S, NEUTRAL_S)
    # half the sensor's size (the face's motions scale with it), one 15 s trial
    plan = StudyPlan(
        participants=1,
        minutes=0.6,
        camera_width=1024,
        camera_height=544,
        responders=1,
        hr_response_to=("ME", "MaE"),
        hr_response=BENCH_HR_RESPONSE["apex"],
        hr_response_at="apex",
        me_per_clip=3.0,
        mae_per_clip=1.0,
        min_gap_s=4.5,
        seed=4,
    )
    root = tmp_path_factory.mktemp("spot")
    folder = simulate_study(root, plan, protocol=proto)[0]
    align_session(folder)
    write_truth_annotations(folder)
    yield folder
    shutil.rmtree(root, ignore_errors=True)  # 2 GB of frames


def test_spot_finds_the_simulated_expressions(session, tmp_path):
    from mmmelab.analysis.annotations import annotation_path
    from mmmelab.analysis.spotting.evaluate import evaluate, read_intervals

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmmelab", "spot", str(session), "--ccf", "--out", str(out),
           "--json"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["segments"] == 1 and summary["frames"] > 2000
    table = out / f"{session.name}_spots.tsv"
    prov = json.loads((out / f"{session.name}_spot.json").read_text())
    assert prov["params"]["interval"] == "extent" and len(prov["source_sha256"]) == 64
    assert prov["ccf"]["k"] == 1.0 and len(prov["ccf_decisions"]) == summary["candidates"]
    assert all(d["reason"] for d in prov["ccf_decisions"])
    curves = np.load(out / f"{session.name}_curves.npz")
    assert {"seg0_frame", "seg0_time", "seg0_me:mouth", "seg0_mae:brow_left"} <= set(curves)
    gt = read_intervals(annotation_path(session))
    assert len(gt) == 2  # two MEs in the trial, among blinks and a head move
    found = evaluate(gt, read_intervals(out / f"{session.name}_spots_unfiltered.tsv"))
    assert found["ME"]["tp"] == 2 and found["overall"]["fp"] <= 1, found["overall"]
    assert found["apex"]["apex_hit_rate"] == 1.0
    kept = evaluate(gt, read_intervals(table))  # the heart rate answers each expression
    assert kept["overall"]["precision"] >= found["overall"]["precision"]
    assert kept["overall"]["tp"] == found["overall"]["tp"]  # the rate climbs at every apex
    assert prov["ccf"]["removed"] == found["overall"]["fp"] - kept["overall"]["fp"]
    assert "auto:" in table.read_text()


def test_spot_refuses_bad_input_in_one_line(tmp_path):
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"not a video")
    for src in (tmp_path / "missing", junk):
        cmd = [sys.executable, "-m", "mmmelab", "spot", str(src), "--out", str(tmp_path / "o")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
        assert str(src) in res.stderr


@pytest.mark.skipif(not VIDEO.exists(), reason=f"no test video at {VIDEO}")
def test_spot_runs_on_a_plain_video(tmp_path):
    from mmmelab.analysis.spotting.run import spot_video, write_outputs

    params = SpotParams()
    result = spot_video(VIDEO, params, segment_s=10.0)
    assert result.fps == pytest.approx(24.0, abs=0.1) and result.info["frames"] == 472
    assert len(result.segments) == 2  # 19.7 s in windows of 10 s
    assert all(seg.info["box"]["frames_with_face"] == params.detect_frames
               for seg in result.segments)  # fmt: skip
    paths = write_outputs(result, tmp_path, params, VIDEO)
    assert all(p.exists() for p in paths)
    assert all(a.coder == "auto:mdmd-flow" for a in result.table.annotations)


def test_stabilisation_undoes_a_head_move_but_not_an_expression():
    from mmmelab.analysis.face.stabilise import Stabiliser
    from tests.analysis.test_face_motion import texture, warp

    ref = texture(128, 128, seed=2)
    th = np.deg2rad(1.5)
    m = [[np.cos(th), -np.sin(th), 2.0], [np.sin(th), np.cos(th), -1.5]]
    moved = warp(ref, m)
    st = Stabiliser(ref)
    assert len(st.points) >= 20
    back, fit = st.align(moved)
    assert fit is not None
    inner = (slice(20, 108), slice(20, 108))
    before = np.abs(moved.astype(float) - ref)[inner].mean()
    after = np.abs(back.astype(float) - ref)[inner].mean()
    assert after < 0.25 * before
    flat = np.full((128, 128), 128, np.uint8)  # nothing to follow: left as it is, counted
    empty = Stabiliser(flat)
    out, fit = empty.align(moved)
    assert fit is None and empty.unstable == 1 and np.array_equal(out, moved)
    assert empty.provenance()["unstable_frames"] == 1


def test_rows_are_read_without_mapping(session):
    from mmmelab.storage import CameraStream, open_session

    with open_session(session) as s:
        cam = s.streams["camera"]
        assert isinstance(cam, CameraStream)
        store = cam.frames
        rows = store.read_rows(5, 10, 30)
        assert np.array_equal(rows, store[5][10:30])
        with pytest.raises(ValueError, match="outside the frame"):
            store.read_rows(5, 30, 10)


def test_the_heart_rate_filter_runs_on_the_spotting_result(session):
    from mmmelab.analysis.spotting.run import apply_ccf, spot_session

    result = spot_session(session, SpotParams())
    n = len(result.unfiltered.annotations)
    assert n >= 1 and result.table is result.unfiltered
    result = apply_ccf(session, result, k=1.0)
    ccf = result.info["ccf"]
    assert ccf["kept"] + ccf["removed"] == n == len(result.decisions)
    assert len(result.table.annotations) == ccf["kept"]
    assert all(np.isfinite(d.slope) for d in result.decisions)


def test_stabilised_spotting_still_finds_the_expressions(session):
    from mmmelab.analysis.annotations import annotation_path
    from mmmelab.analysis.spotting.evaluate import evaluate, read_intervals
    from mmmelab.analysis.spotting.run import spot_session, write_outputs

    params = SpotParams(stabilise=True)
    result = spot_session(session, params)
    st = result.segments[0].info["stabilisation"]
    assert st["points"] >= 8 and st["unstable_frames"] == 0
    out = write_outputs(result, session.parent / "stab", params, session)[0]
    ev = evaluate(read_intervals(annotation_path(session)), read_intervals(out))
    assert ev["ME"]["tp"] >= 1


@pytest.mark.timeout(300)
def test_a_participant_whose_rate_climbs_at_the_apex_passes_ccf(tmp_path):
    """The bench's responder: every true apex passes the heart-rate filter; a rate tied
    to the onset lets some long macro-expressions' apexes through flat (the paper: 73 %)."""
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.analysis.physio.preprocess import PhysioParams, from_stream
    from mmmelab.analysis.spotting import ccf
    from mmmelab.analysis.stats.concordance import clip_periods
    from mmmelab.errors import LabError
    from mmmelab.spotbench import BENCH_HR_RESPONSE, CLIP_S, NEUTRAL_S
    from mmmelab.storage import SignalStream, open_session

    with pytest.raises(LabError, match="hr_response_at"):
        StudyPlan(hr_response_at="offset")
    proto = short_trials(CLIP_S, NEUTRAL_S)
    plan = StudyPlan(participants=1, minutes=2.0, responders=1, hr_response_to=("ME", "MaE"),
                     hr_response=BENCH_HR_RESPONSE["apex"], hr_response_at="apex",
                     me_per_clip=2.0, mae_per_clip=1.5, min_gap_s=4.5, seed=22)  # fmt: skip
    folder = simulate_study(tmp_path, plan, protocol=proto)[0]
    align_session(folder)
    with open_session(folder) as s:
        truth = s.manifest["simulation_truth"]
        phys = s.streams["physio"]
        assert isinstance(phys, SignalStream)
        data = from_stream(phys, PhysioParams())
        periods = clip_periods(s.markers)
    assert truth["heart_rate"]["response_from"] == "apex"
    decisions = []
    for _k, t0, t1 in periods:
        apexes = [e["apex"] for e in truth["expressions"] if t0 <= e["apex"] <= t1]
        cands = [ccf.Candidate(str(i), a) for i, a in enumerate(apexes)]
        decisions += ccf.ccf_filter(cands, data.t, data.heart_rate, (t0, t1))[0]
    assert len(decisions) >= 8 and all(d.kept for d in decisions), [
        d.reason for d in decisions if not d.kept
    ]
