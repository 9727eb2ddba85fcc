"""The XIMEA driver through XIMEA's official xiapipy, against the simulated libm3api."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from mmmelab.config import CameraConfig
from mmmelab.drivers.lsl import local_clock
from mmmelab.drivers.ximea import XimeaCamera
from mmmelab.errors import DeviceError, DeviceLostError
from mmmelab.hardware_mocks.wire import VirtualWire
from mmmelab.hardware_mocks.ximea import SimulatedCamera, install

CFG = CameraConfig(
    width=256, height=128, fps=150.0, exposure_us=5000.0, serial="SIMTEST1", queue_frames=300
)


@pytest.fixture
def sim():
    library = install()
    wire = VirtualWire()
    cam = SimulatedCamera(wire, local_clock, serial="SIMTEST1")
    library.cameras.append(cam)
    yield cam, wire
    cam.unplug()
    library.cameras.remove(cam)


def grab(driver: XimeaCamera, n: int) -> list:
    buf = np.empty(driver.config.width * driver.config.height, np.uint8)
    out = []
    while len(out) < n:
        info = driver.read_into(buf)
        if info is not None:
            out.append((info, buf.copy()))
    return out


def test_configuration_reaches_the_camera_through_xiapipy(sim):
    cam, _ = sim
    with XimeaCamera(CFG, local_clock) as driver:
        info = driver.info()
        assert info["model"] == "MQ022CG-CM" and info["serial"] == "SIMTEST1"
        p = {k: v.value for k, v in cam.params.items()}
        assert (p["width"], p["height"], p["imgdataformat"]) == (256, 128, 5)  # RAW8
        assert p["framerate"] == pytest.approx(150.0) and p["acq_timing_mode"] == 1
        assert p["exposure"] == pytest.approx(5000.0)
        assert p["buffer_policy"] == 1 and p["buffers_queue_size"] == 300
        assert p["recent_frame"] == 0 and p["gpi_mode"] == 0 and p["gpo_mode"] == 4
    assert install().calls["xiSetParam"] > 10


def test_frames_arrive_with_their_metadata_at_the_set_rate(sim):
    _, wire = sim
    with XimeaCamera(CFG, local_clock) as driver:
        driver.start()
        t0 = local_clock()
        wire.set(7, t0 + 0.10)
        wire.set(0, t0 + 0.13)
        frames = grab(driver, 45)
        driver.stop()
    infos = [f for f, _ in frames]
    assert [i.acq_nframe for i in infos] == list(range(1, 46))
    dts = np.diff([i.ts_us for i in infos])
    assert np.allclose(dts, 1e6 / 150, atol=2)
    assert all(i.exposure_us == 5000 for i in infos)
    gpi = [i.gpi_level for i in infos]
    assert 4 <= sum(gpi) <= 5  # a 30 ms pulse seen in 4-5 frames at 150 fps
    assert frames[0][1].reshape(128, 256)[0, 0] < 120  # green backdrop, RGGB red pixel
    host = [i.host_time for i in infos]
    assert host[-1] - host[0] == pytest.approx(44 / 150, abs=0.1)  # paced, not bursted


def test_timestamp_wrap_is_unwrapped(sim):
    cam, _ = sim
    cam.ts_offset_us = (1 << 32) - int(cam.device_clock.device_time(local_clock()) * 1e6) - 50_000
    with XimeaCamera(CFG, local_clock) as driver:
        driver.start()
        infos = [f for f, _ in grab(driver, 30)]
    ts = np.array([i.ts_us for i in infos])
    assert ts.max() > (1 << 32)  # the 32-bit counter wrapped in between
    assert np.all(np.diff(ts) > 0)
    assert np.allclose(np.diff(ts), 1e6 / 150, atol=2)


def test_a_slow_consumer_loses_frames_and_every_loss_is_counted(sim):
    cfg = dataclasses.replace(CFG, queue_frames=4)
    with XimeaCamera(cfg, local_clock) as driver:
        driver.start()
        grab(driver, 1)
        time.sleep(0.2)  # ~30 frames while the queue holds 4
        grab(driver, 10)
        api, transport = driver.skipped_counters()
    assert api > 10 and transport == 0
    assert driver.dropped == api  # acq_nframe gaps == the API's own count
    assert sum(f.count for f in driver.faults if f.kind == "dropped") == api


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"width": 250},
            "width = 250 is not a multiple of the camera's increment 8; use 248 or 256",
        ),
        (
            {"height": 1088, "fps": 200.0, "exposure_us": 1000.0},
            "fps = 200 is above this camera's maximum of 169.9 fps at 1088 lines",
        ),
        ({"gain_db": 40.0}, "setting gain = 40 dB: Parameter value cannot be set"),
        ({"serial": "NOPE"}, "opening camera NOPE: No Devices Found"),
    ],
)
def test_invalid_settings_give_clear_errors(sim, change, words):
    with pytest.raises(DeviceError) as info:
        XimeaCamera(dataclasses.replace(CFG, **change), local_clock).open()
    assert words in str(info.value)


def test_unplugged_mid_recording_raises_device_lost(sim):
    cam, _ = sim
    with XimeaCamera(CFG, local_clock) as driver:
        driver.start()
        grab(driver, 3)
        cam.unplug()
        with pytest.raises(DeviceLostError) as info:
            grab(driver, 1)
        assert info.value.code == 49 and "Device not ready" in str(info.value)


def test_timestamp_resets_on_the_first_trigger_edge(sim):
    cam, wire = sim
    cam.ts_offset_us = 5_000_000  # the camera has been running a while
    cfg = dataclasses.replace(CFG, timestamp_reset_on_trigger=True)
    with XimeaCamera(cfg, local_clock) as driver:
        assert cam.params["ts_rst_source"].value == 1 and cam.params["ts_rst_mode"].value == 0
        driver.start()
        t0 = local_clock()
        wire.set(1, t0 + 0.1)
        wire.set(0, t0 + 0.13)
        wire.set(1, t0 + 0.2)  # a later edge does not reset again (armed once)
        wire.set(0, t0 + 0.23)
        infos = [f for f, _ in grab(driver, 60)]
    ts = np.array([i.ts_us for i in infos])
    host = np.array([i.host_time for i in infos])
    after = host > t0 + 0.12
    assert ts[after].min() < 40_000  # counting from the edge, not from boot
    assert np.all(np.diff(ts[after]) > 0)  # and only once
    assert ts[~after].max() > 1_000_000
    resets = [i for i in infos if i.clock_reset]
    assert len(resets) == 1 and resets[0].host_time > t0 + 0.1
    assert [f.kind for f in driver.faults] == ["clock_reset"]
