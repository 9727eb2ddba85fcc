"""Several coders: matching by IoU, the paper's AU agreement, kappas, key frames, and
the consensus proposal, on hand-built cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.analysis.annotations import Annotation, AnnotationTable, Emotion, parse_aus
from mmmelab.analysis.annotations.agreement import (
    agreement,
    au_agreement,
    group_events,
    iou,
    match_pair,
    propose_consensus,
)

FPS = 150.0


def ev(on, ap, off, aus="", emo="happiness", coder="a", i=0):
    return Annotation(f"{coder}-{i}", on, ap, off, aus=parse_aus(aus), emotion=Emotion(emo),
                      coder=coder)  # fmt: skip


def table(coder, *events):
    return AnnotationTable(list(events), FPS, coder)


def test_iou_counts_frames_inclusively_and_matching_is_one_to_one():
    assert iou(ev(0, 5, 9), ev(0, 5, 9)) == 1.0
    assert iou(ev(0, 5, 9), ev(10, 12, 19)) == 0.0  # touching: no shared frame
    assert iou(ev(0, 5, 9), ev(9, 12, 18)) == pytest.approx(1 / 19)
    assert iou(ev(0, 5, 19), ev(5, 8, 14)) == pytest.approx(10 / 20)  # nested
    a = [ev(100, 110, 130), ev(131, 140, 160)]
    b = [ev(100, 112, 160)]  # one long event over two: only one of them may have it
    m = match_pair(a, b, 0.0)
    assert len(m) == 1 and m[0][:2] == (0, 0)  # the larger overlap (31 of 61 frames) wins
    assert m[0][2] == pytest.approx(31 / 61)
    assert match_pair(a, []) == [] and match_pair([], b) == []


def test_au_agreement_is_the_papers_dice_pooled_and_per_event():
    pairs = [(ev(0, 1, 2, "1+2+5"), ev(0, 1, 2, "1+2")),  # 2*2/5
             (ev(0, 1, 2, "L12"), ev(0, 1, 2, "R12+6")),  # codes: 2*1/3
             (ev(0, 1, 2, ""), ev(0, 1, 2, ""))]  # fmt: skip
    r = au_agreement(pairs)
    assert r["pooled"] == pytest.approx(2 * 3 / 8) and r["skipped_no_aus"] == 1
    assert r["per_event_mean"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    sided = au_agreement(pairs, sided=True)
    assert sided["pooled"] == pytest.approx(2 * 2 / 8)  # L12 and R12 differ
    assert au_agreement([])["pooled"] is None


def test_two_coders_agreement_figures():
    a = table(
        "ann",
        ev(100, 105, 160, "6+12", "happiness", "ann", 1),
        ev(400, 410, 450, "1+2", "surprise", "ann", 2),
        ev(900, 990, 1400, "4+7", "anger", "ann", 3),
        ev(2000, 2010, 2040, "9", "disgust", "ann", 4),
    )  # bob misses this one
    b = table("bob", ev(102, 106, 158, "6+12", "happiness", "bob", 1),
              ev(401, 410, 455, "1+2+5", "surprise", "bob", 2),
              ev(905, 1000, 1390, "4", "fear", "bob", 3))  # fmt: skip
    rep = agreement({"ann": a, "bob": b})
    (pair,) = rep["pairs"]
    assert pair["matched"] == 3 and pair["unmatched"] == [1, 0]
    assert pair["au"]["pooled"] == pytest.approx(2 * (2 + 2 + 1) / (4 + 5 + 3))
    on = pair["keyframes"]["onset"]
    assert on["mean_frames"] == pytest.approx((2 + 1 + 5) / 3) and on["max_frames"] == 5
    assert on["mean_ms"] == pytest.approx(on["mean_frames"] / FPS * 1000)
    assert pair["emotion_agreement"] == pytest.approx(2 / 3)
    from sklearn.metrics import cohen_kappa_score

    ref = cohen_kappa_score(["happiness", "surprise", "anger"], ["happiness", "surprise", "fear"])
    assert pair["emotion_cohen_kappa"]["value"] == pytest.approx(ref)
    assert rep["marked_by_all"] == 3 and rep["groups"] == 4
    assert rep["icc_duration"]["n"] == 3 and rep["icc_duration"]["ICC2"]["value"] > 0.9


def test_one_coder_marks_nothing():
    rep = agreement({"ann": table("ann", ev(1, 2, 3)), "bob": table("bob")})
    (pair,) = rep["pairs"]
    assert pair["matched"] == 0 and pair["au"]["pooled"] is None
    assert pair["emotion_cohen_kappa"]["value"] is None and rep["marked_by_all"] == 0
    assert "needs" in rep["emotion_fleiss_kappa"]["note"]


def test_three_coders_group_and_fleiss_equals_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa

    emos = [("happiness", "happiness", "happiness"), ("fear", "fear", "surprise"),
            ("sadness", "anger", "disgust"), ("anger", "anger", "anger")]  # fmt: skip
    tabs = {c: table(c, *[ev(1000 * i, 1000 * i + 5, 1000 * i + 40 + j, "", emos[i][j], c, i)
                          for i in range(4)]) for j, c in enumerate(("a", "b", "c"))}  # fmt: skip
    tabs["c"].annotations.append(ev(9000, 9001, 9010, "", "fear", "c", 9))  # c alone
    groups = group_events(tabs)
    assert [len(g.events) for g in groups] == [3, 3, 3, 3, 1]
    rep = agreement(tabs)
    counts = np.zeros((4, 8), int)
    cats = [e.value for e in Emotion]
    for i, row in enumerate(emos):
        for e in row:
            counts[i, cats.index(e)] += 1
    assert rep["emotion_fleiss_kappa"]["value"] == pytest.approx(fleiss_kappa(counts))
    assert rep["emotion_fleiss_kappa"]["band"] in ("fair", "moderate", "substantial")


def test_consensus_takes_medians_and_majorities_and_lists_disputes():
    tabs = {
        "a": table(
            "a",
            ev(100, 110, 150, "L12+6B", "happiness", "a"),
            ev(500, 505, 540, "", "fear", "a"),
            ev(800, 810, 840, "4", "anger", "a"),
        ),
        "b": table(
            "b",
            ev(102, 111, 151, "L12C+6", "happiness", "b"),
            ev(501, 506, 541, "", "sadness", "b"),
            ev(801, 812, 860, "4", "anger", "b"),
        ),
        "c": table(
            "c", ev(101, 112, 152, "L12B+7", "happiness", "c"), ev(500, 504, 540, "", "fear", "c")
        ),
    }
    prop = propose_consensus(tabs)
    first, second, third = prop.events
    assert (first.onset, first.apex, first.offset) == (101, 111, 151)
    assert [str(a) for a in first.aus] == ["6B", "L12B"]  # 7 only by c: a dispute
    assert first.emotion is Emotion.HAPPINESS and second.emotion is Emotion.FEAR  # 2 of 3
    by_group = {d.group: d for d in prop.disputes}
    assert by_group[0].what == ["aus"] and by_group[0].detail["aus_split"] == ["7"]
    assert 1 not in by_group
    assert any("not by c" in w for w in by_group[2].what) and "offset" in by_group[2].what
    two = propose_consensus({"a": tabs["a"], "b": tabs["b"]})
    assert two.events[1].emotion is Emotion.OTHERS  # two coders disagree: no majority
    assert "emotion" in {d.group: d for d in two.disputes}[1].what
