"""Stabilisation against slow head drift: every crop warped onto a reference crop.

DFME aligns each frame to a reference face by a transform fitted on landmarks that
lie outside the regions an expression moves. The same here without a landmark model
(none ships in a registry package we may use offline): corner features are picked
on the reference crop outside the expression regions (brows, eyes, mouth, cheeks),
followed into each crop by pyramidal Lucas-Kanade flow, and a similarity transform
(shift, rotation, uniform scale) is fitted to them with RANSAC
(``cv2.estimateAffinePartial2D``); the crop is warped back by its inverse. Frames
where too few features are followed keep their crop unwarped and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmmelab.analysis.face.cv import opencv
from mmmelab.analysis.face.regions import REGIONS, _slices

#: regions whose skin an expression moves: no features are taken there
ACTIVE = ("brow_left", "brow_right", "eye_left", "eye_right", "mouth", "cheek_left", "cheek_right")


@dataclass
class Stabiliser:
    reference: np.ndarray  # grey uint8 crop
    max_points: int = 60
    min_points: int = 8
    unstable: int = 0  # crops left unwarped (too few features followed)
    points: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        cv2 = opencv()
        ref = np.ascontiguousarray(self.reference, dtype=np.uint8)
        mask = np.full(ref.shape, 255, np.uint8)
        for name in ACTIVE:
            ys, xs = _slices(ref.shape, REGIONS[name])
            mask[ys, xs] = 0
        pts = cv2.goodFeaturesToTrack(ref, self.max_points, 0.01, 4, mask=mask)
        self.points = np.zeros((0, 1, 2), np.float32) if pts is None else pts.astype(np.float32)
        self.reference = ref

    def align(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(the crop warped onto the reference, the fitted 2x3 transform or None)."""
        cv2 = opencv()
        img = np.ascontiguousarray(crop, dtype=np.uint8)
        if len(self.points) < self.min_points:
            self.unstable += 1
            return img, None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(self.reference, img, self.points, None,
                                                    winSize=(15, 15), maxLevel=2)  # fmt: skip
        ok = status.ravel() == 1
        if ok.sum() < self.min_points:
            self.unstable += 1
            return img, None
        m, _ = cv2.estimateAffinePartial2D(moved[ok], self.points[ok], method=cv2.RANSAC,
                                           ransacReprojThreshold=1.0)  # fmt: skip
        if m is None:
            self.unstable += 1
            return img, None
        h, w = img.shape
        out = cv2.warpAffine(
            img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return out, m

    def provenance(self) -> dict[str, Any]:
        return {"method": "LK-tracked corners outside the expression regions, RANSAC similarity",
                "points": int(len(self.points)), "unstable_frames": self.unstable}  # fmt: skip
