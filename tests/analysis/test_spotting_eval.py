"""The spotting evaluator on hand-built cases with known answers, both rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sklearn.metrics import precision_recall_fscore_support

from mmmelab.analysis.annotations.table import MeRule, table_from_rows
from mmmelab.analysis.annotations.writing import write_table
from mmmelab.analysis.spotting import Interval, SpottingInputError, evaluate, iou, read_intervals

FPS = 150.0


def me(onset, offset, video="v1", subject="s1", apex=None, kind="ME"):
    return Interval(subject, video, onset, offset, kind, apex, FPS)


def test_iou_counts_frames_inclusively():
    assert iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    assert iou((0, 9), (0, 9)) == 1.0
    assert iou((0, 9), (10, 19)) == 0.0  # touching: no frame in common
    assert iou((0, 9), (9, 19)) == pytest.approx(1 / 20)  # one shared frame
    assert iou((5, 4), (0, 9)) == 0.0  # an empty interval scores 0
    assert iou((3, 3), (3, 3)) == 1.0  # a one-frame event is one frame long


def test_the_documented_worked_example():
    gt = [me(10, 29), me(100, 119)]
    pred = [me(12, 31), me(8, 27), me(300, 320)]
    for rule in ("one-to-one", "gt-found"):
        c = evaluate(gt, pred, rule=rule)["ME"]
        assert (c["tp"], c["fp"], c["fn"]) == (1, 2, 1), rule
        assert c["precision"] == pytest.approx(1 / 3) and c["recall"] == 0.5
        assert c["f1"] == pytest.approx(0.4)


def test_duplicates_on_one_event_are_one_hit_and_a_false_positive():
    gt = [me(0, 99)]
    pred = [me(0, 99), me(2, 101)]
    one = evaluate(gt, pred)["ME"]
    found = evaluate(gt, pred, rule="gt-found")["ME"]
    assert (one["tp"], one["fp"], one["fn"]) == (1, 1, 0)
    assert (found["tp"], found["fp"], found["fn"]) == (1, 1, 0)


def test_nested_events_are_where_the_rules_differ():
    """One prediction over an event and the event nested in it: one-to-one uses it
    once; MEGC 2020's rule finds both events (precision = found / predictions = 2)."""
    gt = [me(0, 99), me(10, 89)]
    pred = [me(5, 94)]
    assert iou(gt[0], pred[0]) == pytest.approx(0.9) and iou(gt[1], pred[0]) > 0.88
    one = evaluate(gt, pred)["ME"]
    assert (one["tp"], one["fp"], one["fn"]) == (1, 0, 1)
    found = evaluate(gt, pred, rule="gt-found")["ME"]
    assert (found["tp"], found["fp"], found["fn"]) == (2, 0, 0)
    assert found["precision"] == 2.0  # the baseline's formula, kept to reproduce its numbers


def test_greedy_matching_takes_the_best_pair_first():
    # p0 overlaps both events; it goes to the one it fits best, p1 takes the other
    gt = [me(0, 19), me(10, 29)]
    pred = [me(9, 28), me(0, 17)]
    pairs = evaluate(gt, pred)["ME"]
    assert pairs["tp"] == 2 and pairs["fp"] == 0


def test_touching_intervals_and_empty_predictions():
    c = evaluate([me(0, 9)], [me(10, 19)])["ME"]
    assert (c["tp"], c["fp"], c["fn"]) == (0, 1, 1) and c["f1"] == 0.0
    empty = evaluate([me(0, 9), me(50, 60)], [])
    assert empty["ME"]["fn"] == 2 and empty["ME"]["precision"] == 0.0
    assert empty["overall"]["f1"] == 0.0
    assert evaluate([], [])["overall"] == {"tp": 0, "fp": 0, "fn": 0, "n_gt": 0, "n_pred": 0,
                                           "precision": 0.0, "recall": 0.0, "f1": 0.0}  # fmt: skip


def test_classes_absent_from_one_side_and_pooled_overall():
    gt = [me(0, 49), me(200, 249), me(400, 999, kind="MaE")]
    pred = [me(0, 49), me(2000, 2500, kind="MaE"), me(400, 990, kind="MaE"), me(600, 700)]
    r = evaluate(gt, pred)
    assert (r["ME"]["tp"], r["ME"]["fp"], r["ME"]["fn"]) == (1, 1, 1)
    assert (r["MaE"]["tp"], r["MaE"]["fp"], r["MaE"]["fn"]) == (1, 1, 0)
    o = r["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (2, 2, 1)  # summed counts ...
    mean_f1 = (r["ME"]["f1"] + r["MaE"]["f1"]) / 2
    assert o["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # ... not a mean of F1s
    assert o["f1"] != pytest.approx(mean_f1)
    # an ME prediction never finds a MaE event, even on the same frames
    cross = evaluate([me(0, 99, kind="MaE")], [me(0, 99)])
    assert cross["MaE"]["fn"] == 1 and cross["ME"]["fp"] == 1


@pytest.mark.parametrize(("tp", "fp", "fn"), [(3, 2, 4), (0, 5, 2), (4, 0, 0), (0, 0, 3)])
def test_precision_recall_f1_equal_scikit_learn(tp, fp, fn):
    gt = [me(1000 * i, 1000 * i + 49) for i in range(tp + fn)]
    pred = [me(1000 * i, 1000 * i + 49) for i in range(tp)]
    pred += [me(500 + 1000 * i, 540 + 1000 * i) for i in range(fp)]
    c = evaluate(gt, pred)["ME"]
    y_true = [1] * tp + [0] * fp + [1] * fn
    y_pred = [1] * tp + [1] * fp + [0] * fn
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((p, r, f))


def test_videos_subjects_and_apex_figures():
    gt = [me(0, 74, "v1", "s1", apex=30), me(0, 74, "v2", "s2", apex=30)]
    pred = [me(2, 76, "v1", "s1", apex=45), me(0, 74, "v1", "s2", apex=100)]  # wrong video
    r = evaluate(gt, pred)
    assert r["videos"] == 3
    assert r["per_subject"]["s1"]["ME"]["tp"] == 1 and r["per_subject"]["s2"]["ME"]["tp"] == 0
    assert r["per_subject"]["s2"]["ME"]["fp"] == 1 and r["per_subject"]["s2"]["ME"]["fn"] == 1
    assert r["apex"] == {
        "pairs": 1,
        "apex_hit_rate": 1.0,
        "apex_error_ms_mean": 100.0,
        "apex_error_ms_median": 100.0,
    }  # fmt: skip  (15 frames at 150 fps)


def test_megc_csv_with_and_without_a_type_column(tmp_path):
    typed = tmp_path / "gt.csv"
    typed.write_text("subject,video,onset,apex,offset,type\n"
                     "s01,s01_0101,100,130,160,ME\n"
                     "s01,s01_0101,900,-1,1400,MaE\n")  # fmt: skip
    got = read_intervals(typed)
    assert [(i.onset, i.apex, i.offset, i.kind) for i in got] == [
        (100, 130.0, 160, "ME"), (900, None, 1400, "MaE")]  # fmt: skip
    plain = tmp_path / "pred.csv"
    plain.write_text("subject,video,onset,offset\ns01,s01_0101,101,161\ns01,s01_0101,0,300\n")
    with pytest.raises(SpottingInputError, match="give --fps"):
        read_intervals(plain)
    pred = read_intervals(plain, fps=FPS)  # 61 frames: ME; 301 frames at 150 fps: MaE
    assert [i.kind for i in pred] == ["ME", "MaE"]
    assert evaluate(got, pred)["ME"]["tp"] == 1


def test_bad_csv_rows_name_file_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,video,onset,offset,type\ns1,v,10,x,ME\n")
    with pytest.raises(SpottingInputError, match=r"bad.csv: row 2, column offset: 'x'"):
        read_intervals(bad)
    bad.write_text("subject,video,onset,offset,type\ns1,v,10,5,ME\n")
    with pytest.raises(SpottingInputError, match="row 2: offset 5 before onset 10"):
        read_intervals(bad)
    bad.write_text("subject,clip,onset,offset\n")
    with pytest.raises(SpottingInputError, match="no column video"):
        read_intervals(bad)


def test_our_annotation_tables_and_the_cli(tmp_path):
    session = tmp_path / "sub-P01_ses-01_20261203T080000"
    rule = MeRule()
    gt = table_from_rows([{"id": "me-1", "onset": 100, "apex": 120, "offset": 150},
                          {"id": "mae-1", "onset": 1000, "apex": 1100, "offset": 1500}],
                         FPS, "consensus", rule)  # fmt: skip
    write_table(gt, session / "annotations" / "consensus.tsv")
    pred = table_from_rows([{"id": "a-1", "onset": 98, "apex": 119, "offset": 149}],
                           FPS, "auto:flow", rule)  # fmt: skip
    pred_path = write_table(
        pred, tmp_path / "pred" / session.name / "annotations" / "auto-flow.tsv"
    )
    ivs = read_intervals(session / "annotations" / "consensus.tsv")
    assert {(i.subject, i.video, i.kind) for i in ivs} == {
        ("P01", session.name, "ME"), ("P01", session.name, "MaE")}  # fmt: skip
    cmd = [sys.executable, "-m", "mmmelab", "eval-spotting", "--gt", str(session),
           "--pred", str(pred_path), "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert (res["ME"]["tp"], res["MaE"]["fn"], res["overall"]["precision"]) == (1, 1, 1.0)
    bad = subprocess.run(
        [*cmd[:5], str(tmp_path / "nothing.csv"), *cmd[6:]], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "file not found" in bad.stderr
