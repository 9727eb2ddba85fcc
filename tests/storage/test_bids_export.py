"""``mmme export bids`` on a simulated, annotated study of two participants (one at
each consent level): the BIDS validator finds no error; reading the export back
(mne-bids, pandas, PyAV) gives the samples, events and frame times of
``open_session``; a level-2 face never enters the public tree."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from mmmelab.acquisition.study import StudyPlan, short_trials, simulate_study
    from mmmelab.analysis.alignment import align_session
    from mmmelab.study import write_truth_annotations

    root = tmp_path_factory.mktemp("bids")
    plan = StudyPlan(participants=2, minutes=0.6, camera_width=320, camera_height=176,
                     me_per_clip=2.0, mae_per_clip=1.0, min_gap_s=3.0, seed=7)  # fmt: skip
    folders = simulate_study(root / "sessions", plan, protocol=short_trials(10.0, 2.0))
    for f in folders:
        align_session(f)
        write_truth_annotations(f)
    yield root, folders
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def exported(study):
    from mmmelab.export import export_bids

    root, folders = study
    out, restricted = root / "bids", root / "restricted"
    summary = export_bids(folders, out, restricted, authors=["A. Tester"], license_="CC0")
    return out, restricted, summary


def mmme(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mmmelab", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_the_validator_finds_no_error(exported):
    from mmmelab.errors import LabError
    from mmmelab.export import validate

    out, _, _ = exported
    try:
        report = validate(out)
    except LabError:
        if os.environ.get("CI"):
            raise
        pytest.skip("bids-validator-deno is not installed")
    assert report["n_errors"] == 0, report["errors"]
    # every warning that stays is listed, with its reason, in the README
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [code for code in report["warnings"] if f"`{code}`" not in readme]
    assert not missing, {k: v for k, v in report["warnings"].items() if k in missing}


def test_consent_levels_one_of_each(study):
    from mmmelab.storage import open_session

    _, folders = study
    levels = []
    for f in folders:
        with open_session(f) as s:
            levels.append(s.consent_level)
    assert sorted(levels) == [1, 2]


def test_eeg_and_physio_read_back_as_recorded(study, exported):
    import pandas as pd
    from mne_bids import BIDSPath, read_raw_bids

    from mmmelab.storage import open_session
    from mmmelab.storage.bids import Timebase

    _, folders = study
    out, _, _ = exported
    for folder in folders:
        with open_session(folder) as s:
            sub = s.manifest["participant"]["id"]
            eeg, physio = s.streams["eeg"], s.streams["physio"]
            path = BIDSPath(subject=sub, session="01", task="mmme", datatype="eeg", root=out)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = read_raw_bids(path, verbose=False)
            assert raw.ch_names == list(eeg.channels) and raw.info["sfreq"] == eeg.rate_hz
            assert raw.info["line_freq"] == 50.0
            got = raw.get_data(start=0, stop=5000) * 1e6
            want = np.asarray(eeg.data[:5000], dtype=np.float64).T
            assert np.allclose(got, want, atol=0.05)  # BrainVision stores 0.1 uV steps
            assert raw.get_channel_types(picks=["HEO", "VEO"]) == ["eog", "eog"]
            pre = f"sub-{sub}_ses-01_task-mmme_recording-biopac_physio"
            meta = json.loads((path.directory / f"{pre}.json").read_text())
            with gzip.open(path.directory / f"{pre}.tsv.gz", "rt") as fh:
                table = pd.read_csv(fh, sep="\t", header=None, na_values="n/a")
            assert list(meta["Columns"]) == ["cardiac", "ppg", "respiratory", "skin_temperature",
                                             "eda", "trigger"]  # fmt: skip
            assert table.shape == (physio.count, 6)
            assert np.allclose(table.iloc[:, :5].to_numpy(), np.asarray(physio.data),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
            # every physiology sample at the time the sync certificate gives it
            tb = Timebase.of(eeg)
            t = meta["StartTime"] + np.arange(physio.count) / meta["SamplingFrequency"]
            assert np.max(np.abs(t - tb.to_file(physio.master_time))) < 1e-5
            assert meta["TimingResidualMax_ms"] < 0.01


def test_events_carry_markers_ratings_and_annotations(study, exported):
    import pandas as pd

    from mmmelab.analysis.annotations import annotation_path, read_table
    from mmmelab.storage import open_session
    from mmmelab.storage.bids import Timebase

    _, folders = study
    out, _, _ = exported
    for folder in folders:
        with open_session(folder) as s:
            sub = s.manifest["participant"]["id"]
            ev = pd.read_csv(out / f"sub-{sub}" / "ses-01" / "eeg"
                             / f"sub-{sub}_ses-01_task-mmme_events.tsv", sep="\t",
                             na_values="n/a", keep_default_na=False)  # fmt: skip
            markers = ev[ev["value"].notna()]
            assert len(markers) == len(s.markers)
            assert np.allclose(np.sort(markers["master_time"]), np.sort(s.markers["t_on"]),
                               atol=1e-6)  # fmt: skip
            tb = Timebase.of(s.streams["eeg"])
            assert np.allclose(markers["onset"], tb.to_file(markers["master_time"]), atol=2e-6)
            assert (ev["onset"].diff().dropna() >= 0).all()  # sorted
            ratings = ev[ev["trial_type"] == "rating"]
            assert len(ratings) == int((~s.trials["practice"].astype(bool)).sum())
            table = read_table(annotation_path(folder))
            ann = ev[ev["trial_type"].isin(["ME", "MaE"])]
            assert len(ann) == len(table.annotations) > 0
            assert set(ann["onset_frame"].astype(int)) == {a.onset for a in table.annotations}
            assert (ann["duration"] > 0).all() and ann["emotion"].notna().all()
            folder_ = out / f"sub-{sub}" / "ses-01" / "eeg"
            meta = json.loads((folder_ / f"sub-{sub}_ses-01_task-mmme_events.json").read_text())
            assert set(ev.columns) <= set(meta) and "rating" in meta["trial_type"]["Levels"]


def test_video_reads_back_frame_for_frame(study, exported):
    import av
    import pandas as pd

    from mmmelab.storage import open_session
    from mmmelab.storage.bidsvideo import from_tiles

    _, folders = study
    out, restricted, _ = exported
    for folder in folders:
        with open_session(folder) as s:
            sub, level = s.manifest["participant"]["id"], s.consent_level
            tree = out if level == 1 else restricted
            beh = tree / f"sub-{sub}" / "ses-01" / "beh"
            pre = f"sub-{sub}_ses-01_task-mmme"
            cam = s.streams["camera"]
            (video,) = beh.glob(f"{pre}_video.*[!n]")  # the video, not its .json
            with av.open(str(video)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i in (0, 1, len(cam.frames) - 1) or i % 997 == 0:
                        img = from_tiles(frame.to_ndarray(format="gray"))
                        assert np.array_equal(img, cam.frames[i])
                n = i + 1
            assert n == len(cam.frames)
            times = pd.read_csv(beh / f"{pre}_frametimes.tsv", sep="\t")
            assert np.array_equal(times["frame_number"], cam.journal["acq_nframe"])
            assert np.allclose(times["master_time"], cam.master_time, atol=1e-6)
            meta = json.loads((beh / f"{pre}_video.json").read_text())
            assert (meta["Width"], meta["Height"], meta["FrameRate"]) == (320, 176, 150.0)
            assert meta["MosaicLayout"] == "tiles" and "red, green, green, blue" in meta[
                "PixelFormat"]  # fmt: skip


def test_no_level_2_face_in_public_whatever_the_options(study, tmp_path):
    from mmmelab.export import export_bids
    from mmmelab.storage.consent import ConsentError

    _, folders = study
    with pytest.raises(ConsentError, match=r"sub-S01: consent level 2"):
        export_bids(folders, tmp_path / "a")  # the video, no restricted tree: refused
    assert not (tmp_path / "a").exists()  # refused before anything was written
    for kw in (
        {"video": False},
        {"restricted": tmp_path / "r2", "codec": "ffv1"},
        {"restricted": tmp_path / "r3", "codec": "x264", "layout": "mosaic"},
    ):
        out = tmp_path / f"pub-{len(kw)}-{kw.get('codec', 'x')}"
        export_bids(folders, out, **kw)
        public = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
        assert not [p for p in public if p.startswith("sub-S01/") and "/beh/" in p]
        assert any(p.startswith("sub-S02/") and p.rsplit(".", 1)[-1] in ("avi", "mkv")
                   for p in public) == (
            kw.get("video", True))  # fmt: skip
    assert "RESTRICTED" in (tmp_path / "r2" / "RESTRICTED.txt").read_text()
    assert list((tmp_path / "r2").rglob("sub-S01_*_video.mkv"))  # FFV1 in Matroska
    assert not list((tmp_path / "r2").rglob("sub-S02_*"))  # only what must be restricted
    import av

    from mmmelab.storage import open_session

    (mosaic,) = (tmp_path / "r3").rglob("sub-S01_*_video.mkv")  # x264, sensor order
    assert json.loads(mosaic.with_suffix(".json").read_text())["MosaicLayout"] == "mosaic"
    with av.open(str(mosaic)) as c, open_session(folders[0]) as s:
        assert s.manifest["participant"]["id"] == "S01"
        first = next(c.decode(video=0)).to_ndarray(format="gray")
        assert np.array_equal(first, s.streams["camera"].frames[0])


def test_nothing_names_the_participant(study, exported):
    from mmmelab.storage import open_session

    _, folders = study
    out, _, _ = exported
    with open_session(folders[0]) as s:
        notes = s.manifest["participant"]["notes"]
    assert notes
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".tsv", ".json", ".md", ".vhdr", ".vmrk"):
            assert notes not in p.read_text(errors="replace"), p
    parts = (out / "participants.tsv").read_text().splitlines()
    assert parts[0] == "participant_id\tconsent_level" and len(parts) == 3


def test_cli_refuses_in_one_line(study, tmp_path):
    _, folders = study
    res = mmme("export", "bids", *folders, "--out", tmp_path / "x", timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "sub-S01: consent level 2" in res.stderr and "--restricted" in res.stderr
    res = mmme("export", "bids", tmp_path, "--out", tmp_path / "y", timeout=60)
    assert res.returncode == 2 and "not a session folder" in res.stderr


def test_me_dataset_layout(study, tmp_path):
    import cv2
    import pandas as pd

    from mmmelab.analysis.annotations import annotation_path, read_table
    from mmmelab.storage.consent import ConsentError

    _, folders = study
    mmme_export = __import__("mmmelab.medataset", fromlist=["x"]).export_me_dataset
    with pytest.raises(ConsentError, match="sub-S01: consent level 2"):
        mmme_export(folders, tmp_path / "refused")
    out, restricted = tmp_path / "me", tmp_path / "me-restricted"
    res = mmme("export", "me-dataset", *folders, "--out", out, "--restricted", restricted,
               "--format", "jpg", "--quality", "90", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    sheet = pd.read_csv(out / "coding.csv")
    xlsx = pd.read_excel(out / "coding.xlsx")
    assert list(sheet.columns) == list(xlsx.columns) and len(sheet) == len(xlsx)
    n_events = sum(len(read_table(annotation_path(f)).annotations) for f in folders)
    assert len(sheet) == n_events > 0
    assert set(sheet["label3"]) <= {"negative", "positive", "surprise"}
    for _, r in sheet.iterrows():
        tree = out if r["consent_level"] == 1 else restricted
        folder = tree / r["subject"] / r["sample"]
        imgs = sorted(folder.glob("img*.jpg"))
        assert len(imgs) == r["n_frames"] > 0 and r["frames"] == (
            "public" if r["consent_level"] == 1 else "restricted")  # fmt: skip
        nums = sorted(int(p.stem[3:]) for p in imgs)
        assert nums[0] == r["onset_frame"] and nums[-1] == r["offset_frame"]
        assert cv2.imread(str(imgs[0])).ndim == 3  # colour
        sig = np.load(out / r["subject"] / r["sample"] / "signals.npz")
        assert abs(sig["eeg_t"][0] + 5.0) < 0.01 and abs(sig["eeg_t"][-1] - 5.0) < 0.01
        assert sig["physio"].shape[1] == 5 and sig["eeg"].shape[1] == 64
    # no level-2 face in the public folder; its labels and signals are there
    assert not list((out / "S01").rglob("img*")) and list((out / "S01").rglob("signals.npz"))
    assert list((restricted / "S01").rglob("img*.jpg"))
    assert "RESTRICTED" in (restricted / "RESTRICTED.txt").read_text()
    for s in sheet["subject"].unique():
        test = (out / "splits" / "loso" / f"{s}-test.txt").read_text().split()
        train = (out / "splits" / "loso" / f"{s}-train.txt").read_text().split()
        assert set(test) == set(sheet[sheet["subject"] == s]["sample"])
        assert not set(test) & set(train) and len(test) + len(train) == len(sheet)
