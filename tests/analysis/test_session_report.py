"""``mmme report SESSION``: one self-contained HTML page, opened in a real headless
browser (Debian's chromium), which must render it - a screenshot that is not blank."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import simulate_short_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from mmmelab.study import write_truth_annotations

    root = tmp_path_factory.mktemp("report")
    folder = simulate_short_session(root, seed=11, minutes=0.6)
    write_truth_annotations(folder)
    yield folder
    shutil.rmtree(root, ignore_errors=True)


def mmme(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "mmmelab", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_report_is_one_page_with_every_section(session, tmp_path):
    out = tmp_path / "report.html"
    res = mmme("report", session, "--out", out, "--json")
    assert res.returncode == 0, res.stderr
    import json

    summary = json.loads(res.stdout)
    page = out.read_text()
    for title in ("Faults and warnings", "Devices and settings", "Paradigm", "Camera",
                  "Synchronisation", "Physiology quality", "EEG", "Annotations"):  # fmt: skip
        assert f"<h2>{title}</h2>" in page, title
    assert "src='http" not in page and "<script src" not in page  # self-contained, no network
    assert page.count("<script") == 1  # only the provenance, as data
    block = page.split("<script type='application/json' id='provenance'>")[1]
    prov = json.loads(block.split("</script>")[0])
    assert prov == summary["provenance"] and prov["parameters"]["ica"] is False
    from mmmelab.analysis.provenance import sha256

    assert prov["inputs"]["session.json"] == sha256(Path(session) / "session.json")
    assert "annotations/consensus.tsv" in prov["inputs"] and "mne" in prov["versions"]
    assert page.count("data:image/png;base64,") >= 4
    assert summary["stats"]["camera"]["dropped_frames"] == 2  # the session drops two frames
    assert "2 frames dropped" in page and not summary["ok"]
    assert set(summary["stats"]["sync"]) == {"eeg", "physio", "camera"}
    assert summary["stats"]["sync"]["eeg"]["max_ms"] < 1.0  # every EEG edge within 1 ms
    assert summary["stats"]["annotations"]["events"] > 0


def test_report_renders_in_a_real_browser(session, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/setup.sh --dev installs it)")
        pytest.skip("chromium is not installed")
    out = tmp_path / "report.html"
    assert mmme("report", session, "--out", out).returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1800",
                    f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=120,
                   check=False)  # fmt: skip
    assert shot.exists(), "chromium wrote no screenshot"
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1800, 1100)
    dark = (img.mean(axis=2) < 200).mean()  # text, tables and plots on white
    assert dark > 0.03, f"the page looks blank ({dark:.1%} of it drawn)"
    assert np.std(img) > 20


def test_bad_session_is_one_line(tmp_path):
    res = mmme("report", tmp_path, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not a session" in res.stderr
