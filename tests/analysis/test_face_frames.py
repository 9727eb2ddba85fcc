"""Frames for analysis: numbered by the camera's counter (a dropped frame is a gap),
with master times, and only the region asked for debayered."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.analysis.face.frames import SessionFrames, VideoFrames, debayer_region
from mmmelab.errors import LabError
from mmmelab.storage import open_session
from mmmelab.storage.frames import debayer_half
from mmmelab.storage.manifest import SessionStatus
from tests.analysis.test_face_detect import VIDEO
from tests.storage.test_session_format import write_session


def test_frame_numbers_keep_the_gap_and_times_follow_the_journal(tmp_path):
    w = write_session(tmp_path)  # 25 frames, acq_nframe 21 was lost
    w.finalize(SessionStatus.COMPLETE)
    with open_session(w.folder) as s:
        cam = s.streams["camera"]
        frames = SessionFrames(cam)
        got = list(frames.read(18, 23))
        assert [f.number for f in got] == [18, 19, 20, 22, 23]
        assert frames.missing(18, 23) == [21]
        i = int(np.flatnonzero(cam.journal["acq_nframe"] == 22)[0])
        assert got[3].t == cam.master_time[i]
        raw = cam.frames[i]
        ref = debayer_half(raw).astype(np.float32)  # its G is floored to uint8
        rgb = debayer_region(raw, colour=True)
        assert np.array_equal(rgb[..., [0, 2]], ref[..., [0, 2]])
        assert np.all((rgb[..., 1] - ref[..., 1] >= 0) & (rgb[..., 1] - ref[..., 1] <= 0.5))
        luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        assert np.allclose(got[3].image, luma)
        part = debayer_region(raw, (3, 5, 10, 7))  # rounded out to whole 2x2 cells
        assert np.allclose(part, luma[2:6, 1:7])
        assert frames.provenance()["clock"] == "host receive time"  # not aligned yet
        with pytest.raises(LabError, match="outside"):
            debayer_region(raw, (500, 500, 10, 10))


@pytest.mark.skipif(not VIDEO.exists(), reason="no test video")
def test_a_plain_video_file_reads_the_same_way():
    video = VideoFrames(VIDEO)
    assert video.fps == pytest.approx(24000 / 1001)
    got = list(video.read(10, 14, region=(100, 50, 64, 32)))
    assert [f.number for f in got] == [10, 11, 12, 13, 14]
    assert got[0].image.shape == (32, 64)
    assert got[1].t - got[0].t == pytest.approx(1001 / 24000, abs=1e-3)
