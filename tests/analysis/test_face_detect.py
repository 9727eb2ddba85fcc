"""The face detector on a real video (../shared/testdata, skipped only outside CI),
the trial box, the crop and the green-screen mask."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mmmelab.analysis.face.detect import Box, NoFaceError, crop, detect_face, green_mask, trial_box

VIDEO = (Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "face_video"
         / "WolfgangLanger_Pexels.mp4")  # fmt: skip
if not VIDEO.exists() and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI runs without the shared test video at {VIDEO}")


def frames(every: int = 1):
    import av

    with av.open(str(VIDEO)) as f:
        for i, fr in enumerate(f.decode(video=0)):
            if i % every == 0:
                yield fr.to_ndarray(format="rgb24")


@pytest.mark.skipif(not VIDEO.exists(), reason=f"no test video at {VIDEO}")
def test_the_face_is_found_in_a_real_video():
    """A real person, 640x360 at 24 fps, showing expressions: found in >= 95 % of
    its frames, always in the same place (she does not walk away)."""
    found = [detect_face(img) for img in frames()]
    assert len(found) == 472
    hits = [b for b in found if b is not None]
    assert len(hits) / len(found) >= 0.95
    centres = np.array([(b.x + b.w / 2, b.y + b.h / 2) for b in hits])
    assert np.all(np.abs(centres - np.median(centres, axis=0)) < 60)  # no false faces far off
    box, info = trial_box(frames(), first=10)
    assert info["frames_with_face"] >= 9 and box.w == box.h
    assert box.x <= np.median(centres[:, 0]) <= box.x + box.w
    face = crop(next(frames()), box)
    assert face.shape == (128, 128, 3)


def test_no_face_is_said_and_the_mask_finds_the_backdrop():
    blank = np.full((240, 320), 128, np.uint8)
    assert detect_face(blank) is None
    with pytest.raises(NoFaceError, match="first 3 frame"):
        trial_box([blank] * 3)
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:, :10] = (40, 180, 60)  # the backdrop's green
    rgb[:, 10:] = (220, 170, 140)  # skin
    mask = green_mask(rgb)
    assert mask[:, :10].all() and not mask[:, 10:].any()
    assert crop(rgb, Box(0, 0, 10, 10), 4).shape == (4, 4, 3)
