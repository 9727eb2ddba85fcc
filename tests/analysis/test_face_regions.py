"""Regional motion curves: a head move is removed, a local movement shows where it is."""

from __future__ import annotations

import numpy as np

from mmmelab.analysis.face.regions import REGIONS, motion_curves, regional_magnitudes
from tests.analysis.test_face_motion import texture, warp


def test_global_motion_is_removed_and_local_motion_stays():
    flow = np.zeros((128, 128, 2))
    flow[...] = (2.0, -1.0)  # the whole head moved
    ys, xs = slice(int(0.70 * 128), int(0.88 * 128)), slice(int(0.30 * 128), int(0.70 * 128))
    flow[ys, xs, 0] += 1.5  # and the mouth moved on its own
    mags = regional_magnitudes(flow)
    assert mags["nose"] < 1e-9 and mags["brow_left"] < 1e-9
    assert mags["mouth"] > 1.0
    raw = regional_magnitudes(flow, remove_global=False)
    assert raw["nose"] > 2.0  # without removal the head move is everywhere


def test_curves_peak_in_the_region_that_moves():
    base = texture(128, 128, seed=5)
    frames = []
    for i in range(12):
        img = warp(base, [[1, 0, 0.3 * i], [0, 1, 0.0]])  # slow head drift
        if i == 8:  # a brief local movement below the mouth's middle
            y0, y1, x0, x1 = 92, 112, 44, 84
            img = img.copy()
            img[y0:y1, x0:x1] = warp(base, [[1, 0, 0.3 * i + 2.0], [0, 1, 1.0]])[y0:y1, x0:x1]
        frames.append(img)
    curves, info = motion_curves(frames, k=1, method="dis")
    assert set(curves) == set(REGIONS) and len(curves["mouth"]) == 12
    assert curves["mouth"][0] == 0.0 and info["global_motion_removed"]
    assert int(np.argmax(curves["mouth"])) in (8, 9)  # onto it and back
    assert curves["mouth"][8] > 3 * np.median(curves["mouth"][1:])
    assert curves["mouth"][8] > 3 * curves["brow_left"][8]
