"""``mmme dataset import``: a public ME dataset's released folders as our samples.

The lab's licensed local copy is read where it lies, laid out as released:

* **CASME II**: ``ROOT/sub01/EP02_01f/img46.jpg`` (or the cropped release's
  ``reg_img46.jpg``), sheet ``CASME2-coding-*.xlsx``; 200 fps;
* **SAMM**: ``ROOT/006/006_1_2/006_05562.jpg``, sheet ``SAMM_Micro_FACS_Codes_*.xlsx``;
  200 fps;
* **CAS(ME)^3** part A: ``ROOT/spNO.1/a/color/1.jpg``, sheet
  ``cas(me)3_part_A_ME_label_*.xlsx``; 30 fps.

A clip's frames are the image files of its folder (``color/`` where there is one),
numbered by the last integer in each file name, so the released naming schemes all
read the same way. Each coded expression becomes a sample as ``dataset build`` makes
them (face crops onset..offset, the onset->apex ``(u, v, strain)`` stack, the face
descriptor), with the sheet's labels; there is no EEG or physiology. The face box is
found on the onset frame (the whole image when no face is found: the cropped
releases are face crops already, and the index says which). An emotion outside our
seven is counted and left out; a missing folder or frame is named in one line.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmmelab import __version__
from mmmelab.analysis.recognition.dataset import (
    CROP,
    FILE,
    _write_index,
    face_descriptor_names,
    face_sample,
)
from mmmelab.analysis.recognition.metrics import EMOTIONS_7, TO_3
from mmmelab.errors import LabError

LAYOUTS = {"casme2": 200.0, "samm": 200.0, "casme3": 30.0}
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


def clip_folder(root: Path, layout: str, subject: str, clip: str) -> Path:
    subject, clip = str(subject).strip(), str(clip).strip()
    if layout == "casme2":
        digits = re.sub(r"\D", "", subject)
        folder = root / f"sub{int(digits):02d}" / clip if digits else root / subject / clip
    elif layout == "samm":
        digits = re.sub(r"\D", "", subject)
        folder = root / (f"{int(digits):03d}" if digits else subject) / clip
    else:
        folder = root / subject / clip
    if (folder / "color").is_dir():
        folder = folder / "color"
    return folder


def clip_frames(folder: Path) -> dict[int, Path]:
    """Frame number -> image file of a clip folder."""
    if not folder.is_dir():
        raise LabError(f"{folder}: no such clip folder (is --root the dataset's top folder?)")
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _LAST_INT.search(p.stem)
        if p.suffix.lower() in IMAGE_EXT and m:
            out[int(m.group(1))] = p
    if not out:
        raise LabError(f"{folder}: no numbered frame images ({', '.join(IMAGE_EXT)})")
    return out


def _grey(path: Path) -> np.ndarray:
    from mmmelab.analysis.face.cv import opencv

    img = opencv().imread(str(path), 0)
    if img is None:
        raise LabError(f"{path}: cannot be read as an image")
    return img


def import_dataset(layout: str, root: Path, sheet: Path, out: Path,
                   progress: Any = None) -> dict[str, Any]:  # fmt: skip
    import h5py

    from mmmelab.analysis.annotations.sheets import read_sheet
    from mmmelab.analysis.face.detect import Box, crop, detect_face

    if layout not in LAYOUTS:
        raise LabError(f"--layout {layout}: one of {', '.join(LAYOUTS)}")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise LabError(f"--root {root}: not a folder")
    table = read_sheet(sheet, LAYOUTS[layout], dataset=layout)
    out.mkdir(parents=True, exist_ok=True)
    index: list[dict[str, Any]] = []
    rows: list[np.ndarray] = []
    left_out: dict[str, int] = {}
    whole_image = 0
    tmp = out / (FILE + ".tmp")
    with h5py.File(tmp, "w") as h5:
        grp = h5.create_group("samples")
        for n, a in enumerate(table.annotations):
            if progress:
                progress(n, len(table.annotations))
            emo = a.emotion.value
            if emo not in EMOTIONS_7:
                left_out[emo] = left_out.get(emo, 0) + 1
                continue
            frames = clip_frames(clip_folder(root, layout, a.subject, a.clip))
            wanted = [k for k in sorted(frames) if a.onset <= k <= a.offset]
            if not wanted:
                raise LabError(
                    f"{sheet}: {a.subject}/{a.clip} frames {a.onset}..{a.offset} are "
                    f"not in its folder (it holds {min(frames)}..{max(frames)})"
                )
            onset_img = _grey(frames[wanted[0]])
            box = detect_face(onset_img)
            if box is None:
                whole_image += 1
                side = min(onset_img.shape)
                box = Box((onset_img.shape[1] - side) // 2, (onset_img.shape[0] - side) // 2,
                          side, side)  # fmt: skip
            got = [(k, crop(_grey(frames[k]), box, CROP)) for k in wanted]
            apex = a.apex if a.apex is not None else (a.onset + a.offset) // 2
            face = face_sample(got, apex)
            sid = f"{layout}:{a.subject}:{a.clip}:{a.id}"
            g = grp.create_group(sid)
            g.create_dataset("crops", data=face["crops"], compression="gzip", compression_opts=1)
            g.create_dataset("frame_numbers", data=face["numbers"])
            g.create_dataset("flow", data=face["flow"])
            g.attrs["keys_onset_apex_offset"] = face["keys"]
            rows.append(face["descriptor"])
            index.append({"sample": sid, "session": f"{layout}:{a.clip}",
                          "subject": f"{layout}:{a.subject}", "trial": a.clip, "event": a.id,
                          "kind": a.kind.value, "emotion": emo, "label3": TO_3[emo],
                          "aus": "+".join(str(u) for u in a.aus), "consent_level": "licensed",
                          "onset_frame": a.onset, "apex_frame": -1 if a.apex is None else a.apex,
                          "offset_frame": a.offset, "apex_s": None, "face": True,
                          "eeg": False, "row": len(index)})  # fmt: skip
        if not index:
            raise LabError(f"{sheet}: no expression with one of the seven emotions to import")
        d = h5.create_group("features").create_dataset("FACE", data=np.vstack(rows))
        d.attrs["names"] = face_descriptor_names()
        h5.attrs["index"] = json.dumps(index)
        h5.attrs["labels_7"] = list(EMOTIONS_7)
    tmp.replace(out / FILE)
    _write_index(out / "index.tsv", index)
    notes = []
    if left_out:
        notes.append("left out (not one of the seven emotions): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(left_out.items())))  # fmt: skip
    if whole_image:
        notes.append(f"{whole_image} sample(s) without a detected face: the whole image was used")
    summary = {"format": "mmme-dataset", "format_version": 1, "source": {
        "layout": layout, "root": str(root), "sheet": str(sheet), "sheet_sha256":
        table.source_sha256, "fps": LAYOUTS[layout]}, "built": time.strftime(
        "%Y-%m-%dT%H:%M:%S%z"), "samples": len(index), "index": index,
        "subjects": sorted({r["subject"] for r in index}), "notes": notes,
        "sheet_warnings": table.warnings,
        "software": {"name": "mmme-lab", "version": __version__}}  # fmt: skip
    (out / "dataset.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
