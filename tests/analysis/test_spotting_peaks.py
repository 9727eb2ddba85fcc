"""The peak step of the spotter on curves with known bumps."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.analysis.spotting.peaks import PeakParams, find_candidates, moilanen_threshold

FPS = 150.0


def bumps(n=3000, at=(400, 1200, 1230, 2500), heights=(1.0, 0.8, 0.6, 0.2), width=8.0):
    x = np.arange(n, dtype=np.float64)
    curve = np.zeros(n)
    for c, h in zip(at, heights, strict=True):
        curve += h * np.exp(-0.5 * ((x - c) / width) ** 2)
    return curve


def test_the_threshold_is_mean_plus_p_of_the_range():
    x = np.array([0.0, 1.0, 2.0, 5.0])
    assert moilanen_threshold(x, 0.5) == pytest.approx(2.0 + 0.5 * 3.0)
    assert moilanen_threshold(x, 0.0) == pytest.approx(2.0)
    assert moilanen_threshold(np.array([np.nan]), 0.5) == float("inf")


def test_peaks_become_intervals_and_overlaps_are_suppressed():
    peaks, info = find_candidates(bumps(), FPS, PeakParams(p=0.3, k=18, smooth=1))
    # the 0.2 bump is below the threshold; 1200 and 1230 overlap: the higher one stays
    assert [(q.onset, q.apex, q.offset) for q in peaks] == [(382, 400, 418), (1182, 1200, 1218)]
    assert info["peaks"] == 3 and info["suppressed"] == 1
    assert all(q.kind == "ME" for q in peaks)  # 37 frames at 150 fps
    allowed, _ = find_candidates(bumps(), FPS, PeakParams(p=0.3, k=18, smooth=1, max_overlap=0.5))
    assert [q.apex for q in allowed] == [400, 1200, 1230]  # IoU 7/67: kept
    wide, _ = find_candidates(bumps(), FPS, PeakParams(p=0.3, k=60, smooth=1))
    assert {q.kind for q in wide} == {"MaE"} and wide[0].onset == 340


def test_edges_flat_curves_and_bad_parameters():
    edge, _ = find_candidates(bumps(at=(3, 500), heights=(1.0, 0.1)), FPS, PeakParams(k=10))
    assert edge[0].onset == 0  # clipped to the video
    assert find_candidates(np.zeros(100), FPS)[0] == []
    assert find_candidates(np.zeros(0), FPS)[0] == []
    with pytest.raises(ValueError, match="peak parameters out of range"):
        find_candidates(bumps(), FPS, PeakParams(p=1.5))


def test_regions_are_pooled_and_frame_numbers_keep_their_gaps():
    from mmmelab.analysis.spotting.peaks import spot_regions

    n = 1000
    mouth = bumps(n, at=(200, 700), heights=(1.0, 0.9))
    brow = bumps(n, at=(205, 500), heights=(0.2, 0.45))  # 205: weaker, overlaps the mouth
    numbers = np.arange(1, n + 1)
    numbers[600:] += 3  # three frames were dropped before position 600
    table, info = spot_regions({"mouth": mouth, "brow": brow}, numbers, FPS,
                               PeakParams(p=0.3, k=18, smooth=1))  # fmt: skip
    got = [(a.onset, a.apex, a.offset, a.notes.split(",")[0]) for a in table.annotations]
    assert got == [(183, 201, 219, "region mouth"), (483, 501, 519, "region brow"),
                   (686, 704, 722, "region mouth")]  # fmt: skip
    assert table.coder == "auto:flow" and info["pooled_peaks"] == 4 and info["candidates"] == 3
