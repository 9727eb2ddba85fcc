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


@pytest.mark.slow
def test_bench_sync_aligns_skewed_clocks_to_the_truth():
    """A short recording with every device's clock offset and drifting (the bench's
    protocol is built by the shared helper; its participant id must pass the check)."""
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "bench", "sync", "--minutes", "0.3", "--json"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    for name in ("eeg", "physio", "camera"):
        assert result["streams"][name]["method"] == "triggers"
    assert result["eeg_time_error_ms_p95"] < 1.0 and result["physio_time_error_ms_p95"] < 1.0


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


@pytest.mark.slow
def test_bench_faults_rows_for_a_writer_kill_and_a_listener_bug():
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "bench", "faults", "--json",
         "--only", "frame_writer_sigkill", "bus_listener_exception"],
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    rows = {r["fault"]: r for r in result["rows"]}
    assert set(rows) == {"frame_writer_sigkill", "bus_listener_exception"}
    for row in rows.values():
        assert {"session_readable", "lost_s", "recorded", "shown", "check_truthful",
                "stop_s"} <= set(row)  # fmt: skip
        assert row["meets_targets"], row


@pytest.mark.slow
def test_bench_soak_counts_every_frame_and_cleans_up(monkeypatch):
    import dataclasses

    import mmmelab.soak as soak

    real = soak.load_lab

    def small(path):
        lab = real(path)
        return dataclasses.replace(lab, camera=dataclasses.replace(lab.camera, width=256,
                                                                   height=128))  # fmt: skip

    monkeypatch.setattr(soak, "load_lab", small)
    result = soak.bench_soak(0.12, None, lambda _: None)
    assert result["frames"] > 900 and result["journalled"] == result["frames"]
    assert result["dropped"] == 0 and not result["bad_chunks"]
    assert result["chunks_checked_and_deleted"] >= 2


@pytest.mark.slow
def test_bench_fault_gui_process_sigkilled_leaves_a_readable_session(tmp_path):
    """The whole GUI process (console, engine, simulators) killed mid-recording: the
    writer processes finish their files alone and the session reads back."""
    from mmmelab.faultcases import _gui_case

    row = _gui_case(tmp_path)
    assert row["session_readable"] and row["status"] == "recording", row
    assert row["check_truthful"] and row["meets_targets"], row
    assert min(row["on_disk_s"].values()) >= 1.0, row


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_bench_gui_runs_the_console_on_the_session_service():
    """The GUI benchmark as ``mmme demo`` runs: the console here, the engine in the
    session service, the participant's windows in their own process (keys typed on
    the console reach them, their figures come back); it prints every figure with its
    target, loses no camera frame, shows clips, and leaves no process behind."""
    out = subprocess.run(
        [sys.executable, "-m", "mmmelab", "bench", "gui", "--seconds", "12", "--json"],
        capture_output=True,
        text=True,
        timeout=160,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    wanted = {"event_loop_p99_ms", "event_loop_max_ms", "stimulus_frame_lateness_ms_p99",
              "console_fps", "preview_fps", "reminder_latency_ms_p95", "dropped"}  # fmt: skip
    assert wanted <= set(result) and wanted - {"console_fps"} <= set(result["targets_met"])
    assert result["dropped"] == 0 and result["camera_frames"] > 12 * 100
    assert result["stimulus_presentations"] >= 1 and result["console_fps"] > 0
    assert result["reminder_presses"] >= 3 and result["reminder_latency_ms_p95"] is not None
    assert "session service is gone" not in out.stderr
