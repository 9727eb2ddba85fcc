"""The telemetry values: frozen, picklable across the console's process boundary,
and stored in the manifest with the keys the session format has always had."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from mmmelab.acquisition.telemetry import (
    CameraTelemetry,
    EngineTelemetry,
    StreamTelemetry,
    VolumeTelemetry,
)
from mmmelab.streams import StreamHealth, SyncState

# the manifest's "telemetry" keys as sessions written before these types hold them
CAMERA_KEYS = {
    "state", "faults", "fps", "writer_mb_s", "ring_fill", "ring_high_water", "frames",
    "written", "dropped", "ring_overflow", "api_skipped", "transport_skipped",
    "free_disk_bytes", "time_to_full_s", "warning", "volumes", "disk_probe_mb_s",
}  # fmt: skip
SIGNAL_KEYS = {"state", "faults", "samples", "rate_hz", "latency_ms"}
VOLUME_KEYS = {"volume", "folder", "bytes", "writer_mb_s", "free_bytes", "time_to_full_s",
               "in_stripe", "error"}  # fmt: skip
HEALTH_KEYS = {"state", "edges", "offset_ms", "drift_ppm", "residual_ms", "last_edge_age_s",
               "message"}  # fmt: skip


def recording() -> EngineTelemetry:
    volume = VolumeTelemetry(0, "/data/camera", 10, 330.0, 10**12, 3000.0, True, None)
    camera = CameraTelemetry(fps=150.0, frames=300, written=298, volumes=(volume,))
    return EngineTelemetry(
        {
            "camera": StreamTelemetry("running", 0, camera=camera, disk_probe_mb_s=900.0),
            "eeg": StreamTelemetry("running", 1, samples=2000, rate_hz=1000.0, latency_ms=12.0),
        },
        state="recording",
        phase="clip",
        sync={"eeg": StreamHealth(SyncState.OK, edges=4, residual_ms=0.3)},
        t=12.5,
        paused=True,
    )


def test_the_manifest_keeps_its_keys():
    stored = recording().as_dict()
    assert set(stored) == {"state", "phase", "camera", "eeg", "sync"}
    assert set(stored["camera"]) == CAMERA_KEYS
    assert set(stored["camera"]["volumes"][0]) == VOLUME_KEYS
    assert set(stored["eeg"]) == SIGNAL_KEYS
    assert set(stored["sync"]["eeg"]) == HEALTH_KEYS
    assert stored["camera"]["fps"] == 150.0 and stored["eeg"]["faults"] == 1
    assert stored["sync"]["eeg"]["state"] == "ok"
    # recording without a trigger stream still writes its (empty) sync table
    assert EngineTelemetry({}, state="recording", phase="clip").as_dict()["sync"] == {}
    assert "sync" not in EngineTelemetry({}, state="stopped", phase="done").as_dict()


def test_values_are_frozen_and_cross_processes():
    tel = recording()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tel.paused = False  # type: ignore[misc]
    camera = tel.camera
    assert camera is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        camera.dropped = 3  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(tel))
    assert back.streams == tel.streams and back.camera == camera  # (sync has NaNs)
    assert back.sync["eeg"].residual_ms == 0.3 and back.t == 12.5 and back.paused


def test_lost_and_the_preview():
    tel = recording()
    assert tel.stream("camera") is not None and tel.stream("physio") is None
    lost = dataclasses.replace(tel.streams["camera"], camera=CameraTelemetry(dropped=7))
    assert lost.lost == 7
    assert tel.streams["eeg"].lost == 0
    preview = EngineTelemetry({"camera": StreamTelemetry("live", fps=149.9, frames=10,
                                                         dropped=0)})  # fmt: skip
    assert preview.camera is None  # no pipeline figures before Start
    assert preview.as_dict() == {"camera": {"state": "live", "fps": 149.9, "frames": 10,
                                            "dropped": 0}}  # fmt: skip
    assert EngineTelemetry().as_dict() == {} and not EngineTelemetry().paused
