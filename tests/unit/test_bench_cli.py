"""The benchmark commands print their JSON contract (figures are read by people, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_bench_ringbuffer_prints_its_figures():
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "bench", "ringbuffer", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"copy_gb_s", "numpy_copy_gb_s", "ratio_to_numpy"} <= set(result)
    assert result["copy_gb_s"] > 0 and result["numpy_copy_gb_s"] > 0
    # the printed rates are rounded, so the ratio is recomputed only to that precision
    ratio = result["copy_gb_s"] / result["numpy_copy_gb_s"]
    assert result["ratio_to_numpy"] == pytest.approx(ratio, abs=0.002)


def test_bench_camera_refuses_a_missing_folder(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmmelab",
            "bench",
            "camera",
            "--dir",
            str(tmp_path / "nope"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "is not a folder" in out.stderr
    assert "Traceback" not in out.stderr
