"""Importers on the real vendor files in ../shared/testdata (skipped when it is absent
outside CI; under CI=true a missing folder fails), and on damaged copies of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmmelab.analysis.importers import import_file, read_acq, read_cnt, read_curry
from mmmelab.errors import SessionFormatError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
if not DATA.is_dir() and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI runs without the shared vendor test data at {DATA}")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no vendor test data at {DATA}")


def labels(rec) -> Counter:
    return Counter(label for _, label in rec.events)


def test_curry8_cdt_with_dpa():
    rec = read_curry(DATA / "neuroscan/curry8_mne/test_bdf_stim_channel Curry 8.cdt")
    assert [c.name for c in rec.channels] == ["C3", "C4", "Cz"]
    assert {c.rate_hz for c in rec.channels} == {500.0}
    assert {len(c.data) for c in rec.channels} == {5000}
    assert labels(rec) == Counter({"50000": 9, "1": 7, "2": 1, "4": 1})


def test_curry8_matches_the_same_recording_in_bdf():
    import mne

    rec = read_curry(DATA / "neuroscan/curry8_mne/test_bdf_stim_channel Curry 8.cdt")
    bdf = mne.io.read_raw_bdf(
        DATA / "edf_bdf/test_bdf_stim_channel.bdf", preload=True, verbose="error"
    )
    for name in ("C3", "C4", "Cz"):
        ours = rec.channel(name).data  # microvolts
        ref = bdf.get_data(picks=[name])[0] * 1e6
        assert np.abs(ours - ref).max() < 0.01  # within 10 nV


def test_curry9_float_with_dpo_and_ceo():
    rec = read_curry(DATA / "neuroscan/curry_compumedics_float/Float.cdt")
    assert len(rec.channels) == 32 and rec.channels[0].rate_hz == 250.0
    assert len(rec.channels[0].data) == 3750
    assert labels(rec) == Counter({"2": 11, "1": 2, "Impedance Check": 1})
    assert rec.start is not None and rec.start.startswith("2020-08-18")


def test_curry7_dat():
    rec = read_curry(DATA / "neuroscan/curry7_mne/Ref_channel_omitted Curry7.dat")
    assert [c.name for c in rec.channels][:3] == ["FP1", "FPZ", "FP2"]
    assert len(rec.channels) == 6 and len(rec.channels[0].data) == 5000 and not rec.events


def test_cnt_whose_header_has_no_sample_count():
    rec = read_cnt(DATA / "neuroscan/scan41_short.cnt")  # "auto" falls back by itself
    assert rec.format == "cnt (int16)"
    assert len(rec.channels) == 128 and rec.channels[0].rate_hz == 400.0
    assert len(rec.channels[0].data) == 3070
    assert labels(rec) == Counter({"7": 3, "109": 2, "0": 1})
    wrong = read_cnt(DATA / "neuroscan/scan41_short.cnt", data_format="int32")
    assert len(wrong.channels[0].data) != 3070  # MNE reads it, wrongly: auto chose well


@pytest.mark.parametrize("name", ["physio-5.0.1.acq", "physio-4.4.0-c.acq"])
def test_acq_uncompressed_and_compressed(name):
    rec = read_acq(DATA / "acq" / name)
    assert len(rec.channels) == 4
    ekg = rec.channel("EKG - ERS100C")
    assert ekg.rate_hz == 1000.0 and len(ekg.data) == 61893 and ekg.unit == "mV"
    resp = rec.channel("RESP - RSP100C")
    assert resp.rate_hz == 3.90625 and len(resp.data) == 241  # divider 512 kept
    assert len(rec.events) == 10
    onsets = {label: t for t, label in rec.events}
    assert onsets["Breathe In"] == pytest.approx(8618 / 2000.0)


def test_acq_old_revisions_and_latin1_names():
    r42 = read_acq(DATA / "acq/r42_test.acq")
    assert len(r42.channels) == 4 and len(r42.channels[0].data) == 7901
    assert len(r42.events) == 2
    assert len(read_acq(DATA / "acq/nojournal-3.8.1-c.acq").channels) == 3
    iso = read_acq(DATA / "acq/iso_8859_1.acq")
    assert iso.channels[0].name == "Débit" and iso.channels[0].rate_hz == 125.0


def test_unknown_and_broken_files_get_clear_errors(tmp_path):
    with pytest.raises(SessionFormatError, match="unknown file type '.edf'"):
        import_file(DATA / "edf_bdf/chtypes_edf.edf")
    bad = tmp_path / "broken.acq"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(SessionFormatError, match="broken.acq: not a readable AcqKnowledge"):
        read_acq(bad)


def test_cli_import_summary():
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "import", str(DATA / "acq/physio-5.0.1.acq"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["format"] == "acq" and summary["events"] == 10


# ---------------------------------------------------------------- damaged and wrong files

CURRY9 = DATA / "neuroscan/curry_compumedics_float"


def curry_copy(tmp_path: Path) -> Path:
    for f in CURRY9.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "Float.cdt"


def edit_header(cdt: Path, old: str, new: str) -> None:
    dpo = cdt.with_name(cdt.name + ".dpo")
    text = dpo.read_text(encoding="latin-1")
    assert old in text
    dpo.write_text(text.replace(old, new, 1), encoding="latin-1")


def cli_import(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmmelab", "import", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr


def test_a_curry_header_beside_random_bytes_is_refused(tmp_path):
    cdt = curry_copy(tmp_path)
    cdt.write_bytes(np.random.default_rng(0).bytes(5_000_000))
    assert_one_line(cli_import(cdt), "does not belong to this header")


def test_a_cut_curry_file_is_refused(tmp_path):
    cdt = curry_copy(tmp_path)
    os.truncate(cdt, cdt.stat().st_size // 2)
    assert_one_line(cli_import(cdt), "cut short")


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("NumSamples           =  3750", "", "has no NumSamples"),
        ("NumTrials            =  1", "NumTrials            =  5", "epoched Curry file"),
        (  # the GUID Curry writes for its compressed format
            "{0B86B22B-1A49-411A-9657-4A4BDA3D3ED8}",
            "{2912E8D8-F5C8-4E25-A8E7-A1385967DA09}",
            "compressed Curry file",
        ),
    ],
)
def test_curry_headers_it_cannot_honour_are_refused(tmp_path, old, new, words):
    cdt = curry_copy(tmp_path)
    edit_header(cdt, old, new)
    assert_one_line(cli_import(cdt), words)


def test_curry_samples_that_decode_to_nan_are_reported(tmp_path):
    cdt = curry_copy(tmp_path)
    data = np.fromfile(cdt, np.float32)
    data[:640] = np.nan
    data.tofile(cdt)
    rec = read_curry(cdt)
    assert len(rec.warnings) == 1
    assert "640 of 120,000 samples decode to NaN" in rec.warnings[0]


def test_cut_and_random_vendor_files_are_one_line(tmp_path):
    acq = tmp_path / "cut-c.acq"
    raw = (DATA / "acq/physio-4.4.0-c.acq").read_bytes()
    acq.write_bytes(raw[: len(raw) // 2])
    done = cli_import(acq)
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr
    if done.returncode == 2:
        assert_one_line(done, "not a readable AcqKnowledge file")
    cnt = tmp_path / "noise.cnt"
    cnt.write_bytes(np.random.default_rng(1).bytes(200_000))
    assert_one_line(cli_import(cnt), "not a readable Neuroscan .cnt file")


@pytest.mark.parametrize(
    "name",
    [
        "acq/physio-4.4.0-c.acq",
        "acq/nojournal-3.8.1-c.acq",
        "neuroscan/scan41_short.cnt",
        "neuroscan/curry7_mne/Ref_channel_omitted Curry7.dat",
    ],
)
def test_import_json_is_pure_json_with_every_marker(name):
    done = cli_import(DATA / name)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["markers"]) == summary["events"]
    for m in summary["markers"]:
        assert set(m) == {"t_s", "label"} and m["label"] != "None"


def test_marker_indices_wrapped_around_2_to_32_are_corrected_or_dropped():
    from mmmelab.analysis.importers import ImportedRecording, _marker_index

    rec = ImportedRecording("x.acq", "acq", [])
    n = 123_787
    assert _marker_index(8618, n, "Breathe In", rec) == 8618
    assert _marker_index(8618 + (1 << 32), n, "Breathe In", rec) == 8618
    assert _marker_index(5_000_000, n, "far", rec) is None
    assert len(rec.warnings) == 2 and "wrapped around 2^32" in rec.warnings[0]


def test_duplicate_channel_names_are_made_unique_and_reported():
    from mmmelab.analysis.importers import ImportedChannel, ImportedRecording, _unique_names

    chans = [ImportedChannel(n, "uV", 1.0, np.zeros(2)) for n in ("EDA", "EDA", "ECG", "EDA")]
    rec = ImportedRecording("x", "acq", chans)
    _unique_names(rec)
    assert [c.name for c in rec.channels] == ["EDA", "EDA (2)", "ECG", "EDA (3)"]
    assert len(rec.warnings) == 2
