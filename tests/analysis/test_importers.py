"""Importers on the real vendor files in ../shared/testdata (skipped when it is absent)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmmelab.analysis.importers import import_file, read_acq, read_cnt, read_curry
from mmmelab.errors import SessionFormatError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
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
