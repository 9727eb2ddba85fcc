"""The clip validation study: a rater's pass in the window (offscreen, by keys), a
study of simulated raters summarised equal to pingouin, and the protocol it writes
recorded by ``mmme record`` on the simulated lab."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PyQt6.QtCore import Qt

from mmmelab.clipstudy import RaterPass, read_ratings, summarise
from mmmelab.errors import LabError
from mmmelab.gui.clipstudy import ClipStudyWindow
from mmmelab.hardware_mocks.clips import write_synthetic_clip
from mmmelab.protocol import Clip, Emotion, load_protocol
from tests.conftest import write_small_lab_toml

pytestmark = pytest.mark.timeout(180)
EMOTIONS = [e.value for e in Emotion]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two candidates per emotion (0.4 s each), a neutral clip and the intended emotions."""
    folder = tmp_path_factory.mktemp("candidates")
    rows = ["id\temotion"]
    for emo in EMOTIONS:
        for k in (1, 2):
            cid = f"{emo}_{k}"
            write_synthetic_clip(folder / f"{cid}.mp4", Clip(cid, f"{cid}.mp4", 0.4, Emotion(emo)),
                                 64, 48, 15)  # fmt: skip
            rows.append(f"{cid}\t{emo}")
    write_synthetic_clip(folder / "neutral.mp4", Clip("neutral", "neutral.mp4", 0.5), 64, 48, 15)
    (folder / "candidates.tsv").write_text("\n".join(rows) + "\n")
    return folder


def test_a_rater_rates_by_keys_and_resumes(qtbot, clips, tmp_path):
    run = RaterPass(clips, "r01", tmp_path / "ratings", seed=4)
    assert sorted(run.order) == sorted(f"{e}_{k}" for e in EMOTIONS for k in (1, 2))
    assert run.order == RaterPass(clips, "r01", tmp_path / "ratings", seed=4).order
    assert run.order != RaterPass(clips, "r02", tmp_path / "ratings", seed=4).order
    win = ClipStudyWindow(run, rating_limit_s=20.0)
    qtbot.addWidget(win)
    win.show()
    for answer in ((Qt.Key.Key_1, Qt.Key.Key_7, Qt.Key.Key_3), (Qt.Key.Key_5, Qt.Key.Key_2,
                                                                 Qt.Key.Key_8)):  # fmt: skip
        qtbot.keyClick(win, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: win.stack.currentIndex() == 1, timeout=10_000)  # clip over
        assert win.shown >= 3
        for k in answer:
            qtbot.keyClick(win, k)
        qtbot.keyClick(win, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: win.stack.currentIndex() == 0, timeout=5_000)
    win.close()
    rows = read_ratings(run.path)
    first, second = run.order[:2]
    assert rows[first]["emotion"] == EMOTIONS[0] and rows[first]["valence"] == "7"
    assert rows[second]["emotion"] == EMOTIONS[4] and rows[second]["arousal"] == "8"
    again = RaterPass(clips, "r01", tmp_path / "ratings", seed=4)
    assert [c.id for c in again.remaining()] == run.order[2:]  # resumes after two
    # the time runs out: saved as missing, the study goes on
    win2 = ClipStudyWindow(again, rating_limit_s=0.3)
    qtbot.addWidget(win2)
    win2.show()
    qtbot.keyClick(win2, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(read_ratings(run.path)) == 3, timeout=10_000)
    assert read_ratings(run.path)[run.order[2]]["valence"] == "n/a"
    win2.close()


def _simulated_study(clips, ratings, n_raters=20, seed=9):
    """Raters who see each clip's true valence and arousal with noise and name its
    intended emotion 80 % of the time; one clip per emotion is ambiguous."""
    rng = np.random.default_rng(seed)
    ids = sorted(p.stem for p in clips.glob("*_*.mp4"))
    true_v = {c: rng.uniform(2, 8) for c in ids}
    true_a = {c: rng.uniform(3, 8) for c in ids}
    for r in range(n_raters):
        run = RaterPass(clips, f"r{r:02d}", ratings, seed=1)
        bias = rng.normal(0, 0.5)
        for c in run.order:
            emo = c.rsplit("_", 1)[0]
            hit = 0.85 if c.endswith("_1") else 0.45
            said = emo if rng.random() < hit else str(rng.choice(EMOTIONS))
            v = int(np.clip(round(true_v[c] + bias + rng.normal(0, 0.8)), 1, 9))
            a = int(np.clip(round(true_a[c] + rng.normal(0, 0.8)), 1, 9))
            run.record(c, said, v, a, 2.0)
    return ids


def test_summary_equals_pingouin_and_its_protocol_records(clips, tmp_path):
    import pingouin as pg

    ratings = tmp_path / "ratings"
    ids = _simulated_study(clips, ratings)
    proto_path = tmp_path / "validated.toml"
    res = subprocess.run(
        [sys.executable, "-m", "mmmelab", "clip-study", "--clips", str(clips), "--ratings",
         str(ratings), "--summarise", "--best", "1", "--protocol", str(proto_path), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["raters"]) == 20 and out["clips"] == 14
    raters = out["raters"]
    data = {r: read_ratings(ratings / f"rater-{r}.tsv") for r in raters}
    for dim in ("valence", "arousal"):
        m = np.array([[float(data[r][c][dim]) for r in raters] for c in ids])
        with warnings.catch_warnings():  # pingouin's own use of deprecated pandas keywords
            warnings.simplefilter("ignore")
            alpha, _ci = pg.cronbach_alpha(data=pd.DataFrame(m))
            long = pd.DataFrame({"clip": np.repeat(ids, len(raters)),
                                 "rater": np.tile(raters, len(ids)), "y": m.ravel()})  # fmt: skip
            ref = pg.intraclass_corr(long, targets="clip", raters="rater", ratings="y")
        st = out["stats"][dim]
        assert st["cronbach_alpha"]["value"] == pytest.approx(alpha, abs=1e-12)
        ref = ref.set_index("Type")["ICC"]
        assert st["icc"]["ICC2"]["value"] == pytest.approx(ref.get("ICC2", ref.get("ICC(A,1)")))
        assert st["icc"]["ICC3"]["value"] == pytest.approx(ref.get("ICC3", ref.get("ICC(C,1)")))
    # the clear clip of each emotion wins it
    assert out["chosen"] == {e: [f"{e}_1"] for e in EMOTIONS}
    per = {p["clip"]: p for p in out["per_clip"]}
    assert per["happiness_1"]["agreement"] > per["happiness_2"]["agreement"]
    assert json.loads(proto_path.with_suffix(".json").read_text())["best"] == 1
    proto = load_protocol(proto_path)
    assert sorted(c.id for c in proto.clips) == sorted(f"{e}_1" for e in EMOTIONS)
    assert all(0.3 < c.duration_s < 0.6 for c in proto.clips)
    # mmme record runs it as it is, on the simulated lab
    lab = write_small_lab_toml(tmp_path / "lab.toml", tmp_path / "data")
    rec = subprocess.run(
        [sys.executable, "-m", "mmmelab", "record", "--lab", str(lab), "--protocol",
         str(proto_path), "--participant", "P05", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert rec.returncode == 0, rec.stderr[-2000:]
    assert "check:   ok" in rec.stdout


def test_bad_inputs_get_one_line(clips, tmp_path):
    with pytest.raises(LabError, match="two or more rater files"):
        summarise(clips, tmp_path / "none")
    bad = tmp_path / "ratings"
    bad.mkdir()
    (bad / "rater-x.tsv").write_text("clip\tposition\temotion\tvalence\tarousal\tresponse_s\t"
                                     "rated_at\nanger_1\t1\tanger\t12\t3\t1\tnow\n")  # fmt: skip
    (bad / "rater-y.tsv").write_text((bad / "rater-x.tsv").read_text())
    res = subprocess.run([sys.executable, "-m", "mmmelab", "clip-study", "--clips", str(clips),
                          "--ratings", str(bad), "--summarise"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "row 2: valence '12' is not 1-9" in res.stderr
    with pytest.raises(LabError, match="rater"):
        RaterPass(clips, "a/b")
