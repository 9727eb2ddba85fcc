"""Flow and strain against analytic motion fields: a known shift, a known shear."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.analysis.face import flow_stack, optical_flow, optical_strain, strain_provenance


def texture(h=160, w=160, seed=0):
    """Smooth random texture (blurred noise), the kind of detail skin gives flow."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + 20
    return img.astype(np.uint8)


def warp(img, m):
    import cv2

    return cv2.warpAffine(img, np.asarray(m, np.float64), img.shape[::-1],
                          flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)  # fmt: skip


@pytest.mark.parametrize("method", ["farneback", "dis", "tvl1"])
def test_a_known_shift_is_found_and_has_no_strain(method):
    img = texture()
    moved = warp(img, [[1, 0, 1.5], [0, 1, -1.0]])  # every point moves by (+1.5, -1.0)
    flow = optical_flow(img, moved, method)
    core = flow[30:-30, 30:-30]
    assert np.median(core[..., 0]) == pytest.approx(1.5, abs=0.1)
    assert np.median(core[..., 1]) == pytest.approx(-1.0, abs=0.1)
    assert np.median(optical_strain(flow)[30:-30, 30:-30]) < 0.05


def test_strain_of_analytic_fields():
    y, x = np.mgrid[0:50, 0:60].astype(np.float64)
    a = 0.04
    shear = np.dstack([a * y, np.zeros_like(y)])  # u = a*y: pure shear
    assert np.allclose(optical_strain(shear), a / np.sqrt(2), atol=1e-6)
    stretch = np.dstack([a * x, -a * y])  # u_x = a, v_y = -a
    assert np.allclose(optical_strain(stretch), np.sqrt(2) * a, atol=1e-6)
    shift = np.dstack([np.full_like(x, 3.0), np.full_like(x, -2.0)])
    assert np.allclose(optical_strain(shift), 0.0)
    # the printed form on u = a*x: d(u^2)/dx = 2 a^2 x, so sqrt(2 a^2 x) away from the edges
    printed = optical_strain(np.dstack([a * x, np.zeros_like(x)]), "mmme-printed")
    assert np.allclose(printed[:, 5:-5], np.sqrt(2 * a * a * x[:, 5:-5]), rtol=1e-6)
    neg = np.dstack([-a * x + 1.0, np.zeros_like(x)])  # radicand < 0 where u > 0
    prov = strain_provenance(neg, "mmme-printed")
    assert 0 < prov["negative_radicand_share"] < 1
    with pytest.raises(ValueError, match="strain form"):
        optical_strain(shift, "other")


def test_a_known_shear_is_measured_from_images():
    img = texture(200, 200, seed=3)
    a = 0.03
    sheared = warp(img, [[1, a, -a * 100], [0, 1, 0]])  # u = a*(y - 100)
    stack = flow_stack(img, sheared, "dis")
    core = stack[40:-40, 40:-40]
    rows = np.arange(40, 160) - 100
    u_rows = np.median(core[..., 0], axis=1)
    slope = np.polyfit(rows, u_rows, 1)[0]
    assert slope == pytest.approx(a, rel=0.15)
    assert np.median(core[..., 2]) == pytest.approx(a / np.sqrt(2), rel=0.3)
