"""The camera pipeline: driver -> shared-memory ring -> writer process -> disk, for real."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from mmmelab.acquisition.camera_pipeline import CameraPipeline
from mmmelab.config import CameraConfig
from mmmelab.drivers.lsl import local_clock
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.hardware_mocks.wire import VirtualWire
from mmmelab.hardware_mocks.ximea import SimulatedCamera, install
from mmmelab.storage.frames import FrameGeometry
from mmmelab.storage.framestore import FrameStore

W, H = 256, 128


@pytest.fixture
def camera():
    library = install()
    sim = SimulatedCamera(VirtualWire(), local_clock, serial="SIMPIPE")
    library.cameras.append(sim)
    driver = XimeaCamera(CameraConfig(width=W, height=H, serial="SIMPIPE"), local_clock)
    driver.open()
    yield driver
    driver.close()
    sim.unplug()
    library.cameras.remove(sim)


def wait_for(cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_frames_preview_and_telemetry(camera, tmp_path):
    faults, rows = [], []
    pipe = CameraPipeline(
        camera,
        tmp_path / "camera",
        FrameGeometry(W, H),
        local_clock,
        lambda *f: faults.append(f),
        telemetry_sink=rows.append,
    )
    pipe.start()
    assert wait_for(lambda: len(rows) >= 2)
    preview = pipe.latest_preview()
    assert preview is not None
    _, nframe, image = preview
    assert image.shape == (H // 4, W // 4, 3) and nframe > 0
    corner = image[:3, :3].reshape(-1, 3).mean(axis=0)
    assert corner[1] > 120 and corner[0] < 80 and corner[2] < 100  # green backdrop
    tel = pipe.telemetry()
    assert 140 < tel.fps < 160 and tel.writer_mb_s > 1.0 and tel.dropped == 0
    assert tel.free_disk_bytes > 0 and tel.time_to_full_s > 0
    assert pipe.stop()
    store = FrameStore(tmp_path / "camera")
    assert len(store) == camera.frames and store.meta["direct_io"] in (True, False)
    nf = store.journal["acq_nframe"]
    assert np.all(np.diff(nf) == 1) and not faults
    assert rows[-1]["fps"][0] > 140
    store.close()


def test_a_stalled_writer_warns_before_the_first_drop_and_every_drop_is_counted(camera, tmp_path):
    faults = []
    pipe = CameraPipeline(
        camera,
        tmp_path / "camera",
        FrameGeometry(W, H),
        local_clock,
        lambda *f: faults.append(f),
        ring_seconds=1.0,
    )
    assert pipe.writer is not None
    pid = pipe.writer.process.pid
    pipe.start()
    assert wait_for(lambda: camera.frames > 30)
    os.kill(pid, signal.SIGSTOP)  # the disk writer stalls
    try:
        assert wait_for(lambda: pipe.ring.overflow > 30, 15.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_for(lambda: pipe.ring.pending(0) == 0, 15.0)
    assert pipe.stop()
    warnings = [f for f in faults if f[2] == "warning" and "ring" in f[4]]
    assert warnings, faults
    first_drop_seq = None
    store = FrameStore(tmp_path / "camera")
    nf = store.journal["acq_nframe"].astype(np.int64)
    gaps = np.flatnonzero(np.diff(nf) > 1)
    assert len(gaps)
    first_drop_seq = int(nf[gaps[0]])
    host = store.journal["host_time"]
    t_first_drop = host[gaps[0]]
    assert warnings[0][0] <= t_first_drop + 1.0 / 150  # warned before frames were lost
    lost = int((np.diff(nf) - 1).sum())
    assert lost == pipe.tel.ring_overflow == pipe.tel.dropped
    assert first_drop_seq > 0
    store.close()
