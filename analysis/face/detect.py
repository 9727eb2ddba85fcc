"""Finding the face: a local detector whose model ships inside the OpenCV wheel
(Viola-Jones frontal-face Haar cascade, ``cv2.data.haarcascades``): nothing is
downloaded, no image leaves the machine (the paper used a cloud API, which
consent level 2 rules out).

As in the paper, one fixed box per trial: the face is detected on the trial's
first frames, the boxes' median is widened by a margin and made square, and every
frame of the trial is cropped there and resized (128 x 128 by default). An
optional green-screen mask (HSV range, the MMME rig's backdrop) blanks the
background.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mmmelab.analysis.face.cv import opencv
from mmmelab.errors import LabError

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_WIDTH = 480  # frames are searched at about this width (speed; faces fill the frame)


class NoFaceError(LabError):
    """No face was found where one was needed (which frames are said)."""


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@lru_cache(maxsize=1)
def _cascade() -> Any:
    cv2 = opencv()
    c = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if c.empty():
        raise LabError(f"OpenCV's {CASCADE} could not be loaded")
    return c


def _grey(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3:
        a = a.mean(axis=2)
    return np.ascontiguousarray(np.clip(a, 0, 255).astype(np.uint8))


def detect_face(img: np.ndarray) -> Box | None:
    """The largest frontal face in a grey or RGB image, in its pixels; None if none."""
    cv2 = opencv()
    g = _grey(img)
    scale = min(1.0, DETECT_WIDTH / g.shape[1])
    small = (
        cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else g
    )
    side = max(24, min(small.shape) // 6)
    found = _cascade().detectMultiScale(small, 1.1, 5, minSize=(side, side))
    if len(found) == 0:
        return None
    x, y, w, h = max(found, key=lambda r: r[2] * r[3])
    return Box(*(int(round(v / scale)) for v in (x, y, w, h)))


def trial_box(
    frames: Iterable[np.ndarray], first: int = 10, margin: float = 0.15
) -> tuple[Box, dict[str, Any]]:
    """One box for a trial from its first ``first`` frames: the median detection,
    widened by ``margin`` of its size on every side, square, inside the image.
    Returns the box and what to record (detections found, of how many frames)."""
    boxes, shape, seen = [], None, 0
    for img in frames:
        if seen >= first:
            break
        seen += 1
        shape = np.asarray(img).shape[:2]
        b = detect_face(img)
        if b is not None:
            boxes.append((b.x, b.y, b.w, b.h))
    if not boxes or shape is None:
        raise NoFaceError(f"no face in the first {seen} frame(s) of the trial")
    x, y, w, h = np.median(np.array(boxes, np.float64), axis=0)
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    side = min(side, shape[0], shape[1])
    x0 = int(round(min(max(0.0, cx - side / 2), shape[1] - side)))
    y0 = int(round(min(max(0.0, cy - side / 2), shape[0] - side)))
    box = Box(x0, y0, int(side), int(side))
    info = {"detector": f"opencv {CASCADE}", "frames_searched": seen,
            "frames_with_face": len(boxes), "margin": margin, "box": box.to_dict()}  # fmt: skip
    return box, info


def crop(img: np.ndarray, box: Box, size: int = 128) -> np.ndarray:
    """The box cut out and resized to ``size`` x ``size`` (area interpolation)."""
    cv2 = opencv()
    a = np.asarray(img)[box.y : box.y + box.h, box.x : box.x + box.w]
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)


def green_mask(
    rgb: np.ndarray, hue: tuple[int, int] = (35, 85), s_min: int = 80, v_min: int = 50
) -> np.ndarray:
    """True where an RGB image is the green backdrop (OpenCV HSV: hue 0-179)."""
    cv2 = opencv()
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return (h >= hue[0]) & (h <= hue[1]) & (s >= s_min) & (v >= v_min)
