"""OpenCV, loaded when first needed and untyped: its bundled stubs lack DIS,
contrib's ``optflow`` and ``cv2.data``."""

from __future__ import annotations

from typing import Any


def opencv() -> Any:
    import cv2

    return cv2
