"""Regional motion curves on a face crop: the signal spotters threshold.

The crop (one fixed box per trial, see ``detect``) is divided into facial regions
given as fractions of its width and height (brows, eyes, nose, cheeks, mouth, as
they fall in a frontal face box). For each frame the flow from the frame ``k``
before is computed (the MDMD family's "frames k apart"); the head's own motion is
removed by subtracting the median flow of the nose region (the rigid anchor those
spotters use), so a head turn or drift does not read as an expression; each
region's value is then the mean flow magnitude inside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mmmelab.analysis.face.motion import optical_flow

#: region -> (x0, y0, x1, y1) as fractions of the face crop
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "brow_left": (0.20, 0.27, 0.48, 0.40),
    "brow_right": (0.52, 0.27, 0.80, 0.40),
    "eye_left": (0.24, 0.40, 0.47, 0.50),
    "eye_right": (0.53, 0.40, 0.76, 0.50),
    "nose": (0.42, 0.48, 0.58, 0.64),
    "cheek_left": (0.14, 0.53, 0.38, 0.70),
    "cheek_right": (0.62, 0.53, 0.86, 0.70),
    "mouth": (0.30, 0.66, 0.70, 0.86),
}
ANCHOR = "nose"


def _slices(shape: tuple[int, ...], box: tuple[float, float, float, float]) -> tuple[slice, slice]:
    h, w = shape[0], shape[1]
    x0, y0, x1, y1 = box
    return slice(int(y0 * h), max(int(y0 * h) + 1, int(y1 * h))), slice(
        int(x0 * w), max(int(x0 * w) + 1, int(x1 * w))
    )


def regional_magnitudes(
    flow: np.ndarray,
    regions: dict[str, tuple[float, float, float, float]] = REGIONS,
    remove_global: bool = True,
) -> dict[str, float]:
    """Mean flow magnitude per region, after the anchor region's median flow (the
    head's motion) is subtracted when ``remove_global``."""
    f = flow.astype(np.float64)
    if remove_global:
        ys, xs = _slices(f.shape, regions[ANCHOR])
        f = f - np.median(f[ys, xs].reshape(-1, 2), axis=0)
    mag = np.hypot(f[..., 0], f[..., 1])
    out = {}
    for name, box in regions.items():
        ys, xs = _slices(mag.shape, box)
        out[name] = float(mag[ys, xs].mean())
    return out


def motion_curves(
    crops: Iterable[np.ndarray], k: int = 1, method: str = "farneback",
    regions: dict[str, tuple[float, float, float, float]] = REGIONS, remove_global: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # fmt: skip
    """Per-region curves over a sequence of crops: value ``i`` is the motion from crop
    ``i - k`` to crop ``i`` (0 for the first ``k``). Returns the curves and what to
    record with them."""
    if k < 1:
        raise ValueError(f"k = {k}: the frames compared must be at least 1 apart")
    history: list[np.ndarray] = []
    rows: list[dict[str, float]] = []
    for img in crops:
        history.append(np.asarray(img))
        if len(history) > k + 1:
            history.pop(0)
        if len(history) <= k:
            rows.append(dict.fromkeys(regions, 0.0))
            continue
        flow = optical_flow(history[0], history[-1], method)
        rows.append(regional_magnitudes(flow, regions, remove_global))
    curves = {name: np.array([r[name] for r in rows]) for name in regions}
    info = {"k": k, "flow": method, "global_motion_removed": remove_global,
            "anchor": ANCHOR, "regions": {n: list(b) for n, b in regions.items()}}  # fmt: skip
    return curves, info
