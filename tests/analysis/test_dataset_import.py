"""``mmme dataset import`` on small folders laid out like CASME II, SAMM and CAS(ME)^3
(made here: a rendered face with an expression, and a coding sheet), then recognized."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmmelab.analysis.face.cv import opencv
from mmmelab.hardware_mocks.ximea.face import FaceRenderer, FaceScript

pytestmark = pytest.mark.timeout(300)
SIZE = 192
EMOS = ("happiness", "surprise", "disgust", "repression")  # the last is not one of ours


def _frames(emotion: str, n: int = 12, seed: int = 1) -> list[np.ndarray]:
    ev = {"kind": "ME", "onset": 0.02, "apex": 0.04, "offset": 0.07,
          "emotion": emotion if emotion != "repression" else "others"}  # fmt: skip
    sc = FaceScript.random(0.0, 1.0, [ev], SIZE, seed=seed)
    sc.blinks, sc.head_moves, sc.drift = [], [], []
    r = FaceRenderer(SIZE, SIZE, sc)
    cv2 = opencv()
    return [cv2.cvtColor(r.render(k / 150.0), cv2.COLOR_BayerBG2GRAY) for k in range(n)]


LAYOUTS = {
    "casme2": (lambda s, c, k: f"sub{s:02d}/{c}/img{k}.jpg", lambda s: f"{s:02d}"),
    "samm": (lambda s, c, k: f"{s:03d}/{c}/{s:03d}_{k:05d}.jpg", lambda s: f"{s:03d}"),
    "casme3": (lambda s, c, k: f"spNO.{s}/{c}/color/{k}.jpg", lambda s: f"spNO.{s}"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_import_a_released_layout_then_recognize(layout, tmp_path):
    path_of, subject_of = LAYOUTS[layout]
    root = tmp_path / "release"
    rows = ["Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion"]
    cv2 = opencv()
    first = 101  # the released numbering does not start at 0
    for s in (1, 2, 3):
        for j, emo in enumerate(EMOS):
            clip = f"EP0{j}_{s}"
            for k, img in enumerate(_frames(emo, seed=10 * s + j)):
                p = root / path_of(s, clip, first + k)
                p.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(p), img)
            rows.append(f"{subject_of(s)},{clip},{first + 1},{first + 5},{first + 10},12,{emo}")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(rows) + "\n")
    ds = tmp_path / "ds"
    res = subprocess.run([sys.executable, "-m", "mmmelab", "dataset", "import", "--layout",
                          layout, "--root", str(root), "--sheet", str(sheet), "--out", str(ds),
                          "--json"], capture_output=True, text=True, timeout=200)  # fmt: skip
    assert res.returncode == 0, res.stderr
    brief = json.loads(res.stdout)
    assert brief["samples"] == 9 and len(brief["subjects"]) == 3
    assert any("repression" in n or "others" in n for n in brief["notes"])
    import h5py

    with h5py.File(ds / "dataset.h5", "r") as h5:
        index = json.loads(h5.attrs["index"])
        g = h5["samples"][index[0]["sample"]]
        assert g["crops"].shape == (10, 128, 128)  # onset..offset inclusive
        assert list(g["frame_numbers"][[0, -1]]) == [first + 1, first + 10]
        assert list(g.attrs["keys_onset_apex_offset"]) == [0, 4, 9]
        assert float(np.abs(g["flow"][0]).max()) > 0.0
    rec = subprocess.run([sys.executable, "-m", "mmmelab", "recognize", str(ds), "--out",
                          str(tmp_path / "rec"), "--modalities", "face", "--json"],
                         capture_output=True, text=True, timeout=200)  # fmt: skip
    assert rec.returncode == 0, rec.stderr
    rows = [r["modality"] for r in json.loads(rec.stdout)["table"]]
    assert rows == ["face", "fusion", "fusion_precision", "prob_average"]


def test_import_names_a_missing_folder(tmp_path):
    sheet = tmp_path / "s.csv"
    sheet.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,"
                     "Estimated Emotion\n01,EP01,1,2,3,12,happiness\n")  # fmt: skip
    (tmp_path / "root").mkdir()
    res = subprocess.run([sys.executable, "-m", "mmmelab", "dataset", "import", "--layout",
                          "casme2", "--root", str(tmp_path / "root"), "--sheet", str(sheet),
                          "--out", str(tmp_path / "ds")], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "sub01/EP01: no such clip folder" in res.stderr
