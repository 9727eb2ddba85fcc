"""Trigger box over a real pseudo-terminal, Curry over TCP, AcqKnowledge NDT over XML-RPC + TCP."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from mmmelab.config import EegConfig, PhysioConfig, TriggerBoxConfig, TriggerBoxKind
from mmmelab.drivers.biopac import BiopacNdt
from mmmelab.drivers.lsl import local_clock
from mmmelab.drivers.neuroscan_curry import CurryClient
from mmmelab.drivers.triggerbox import TriggerBox
from mmmelab.errors import DeviceError, DeviceLostError, DeviceTimeoutError
from mmmelab.hardware_mocks.acqknowledge import AcqKnowledgeServer
from mmmelab.hardware_mocks.curry import CurryServer
from mmmelab.hardware_mocks.triggerbox import TriggerBoxSimulator
from mmmelab.hardware_mocks.wire import VirtualWire


def wait_for(cond, timeout_s=3.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize(
    "box", [TriggerBoxKind.BRAINPRODUCTS, TriggerBoxKind.BBTK, TriggerBoxKind.MMBTS]
)
def test_trigger_box_codes_reach_the_wire(box):
    wire = VirtualWire()
    with TriggerBoxSimulator(wire, local_clock, box=box.value) as sim:
        cfg = TriggerBoxConfig(box=box, port=sim.port)
        with TriggerBox(cfg, local_clock) as driver:
            t = driver.set_level(0x2B)
            assert wait_for(lambda: wire.level_at(local_clock()) == 0x2B)
            driver.set_level(0)
            assert wait_for(lambda: wire.level_at(local_clock()) == 0)
        history = wire.history()
        assert 0x2B in [lvl for _, lvl in history]
        t_wire = next(tt for tt, lvl in history if lvl == 0x2B)
        assert 0 <= t_wire - t < 0.05
        if box is TriggerBoxKind.BBTK:
            assert bytes(sim.received).startswith(b"RR00") and b"2B" in sim.received
        else:
            assert bytes([0x2B]) in sim.received


def test_trigger_box_that_vanishes_raises_device_lost():
    wire = VirtualWire()
    sim = TriggerBoxSimulator(wire, local_clock)
    driver = TriggerBox(TriggerBoxConfig(port=sim.port), local_clock)
    driver.open()
    sim.vanish()

    def toggle_until_lost() -> None:
        for _ in range(50):
            driver.set_level(1)
            driver.set_level(0)

    with pytest.raises(DeviceLostError):
        toggle_until_lost()
    driver.close()


def test_trigger_box_port_that_does_not_exist():
    with pytest.raises(DeviceError, match="cannot open '/dev/does-not-exist'"):
        TriggerBox(TriggerBoxConfig(port="/dev/does-not-exist"), local_clock).open()


def test_curry_client_reads_64_channels_trigger_word_and_reports_gaps():
    wire = VirtualWire()
    with CurryServer(wire, local_clock, idle_word=0xFF00) as server:
        server.drop_blocks = {3}
        client = CurryClient(EegConfig(port=server.port), local_clock)
        layout = client.connect()
        assert len(layout.channels) == 64 and layout.channels[0] == "FP1"
        assert layout.rate_hz == 1000.0 and client.info()["trigger_channel"] == "Trigger"
        client.start()
        wire.set(0x11, local_clock() + 0.05)
        wire.set(0, local_clock() + 0.08)
        blocks = []
        assert wait_for(lambda: blocks.extend(client.read(0.2)) or len(blocks) >= 8)
        client.close()
    starts = [b.first_sample for b in blocks]
    assert all(b.data.shape == (40, 64) and b.data.dtype == np.float32 for b in blocks)
    assert starts[3] - starts[2] == 80  # block 3 never came
    gaps = [f for f in client.faults if f.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].count == 40
    words = np.concatenate([b.aux["trigger"] for b in blocks])
    assert set(np.unique(words)) == {0xFF00, 0xFF11}  # whole word kept, stim byte low
    assert (0x11,) == tuple({c for _, c in client.events})


def test_curry_unreachable_is_a_clear_error():
    with pytest.raises(DeviceError, match="cannot reach Curry at 127.0.0.1:1"):
        CurryClient(EegConfig(port=1, timeout_s=0.5), local_clock).connect()


@pytest.fixture(scope="module")
def acq_signals():
    # NeuroKit2's simulators take a moment: build the server's signals once.
    from mmmelab.hardware_mocks.synth import physio_signals

    return physio_signals(1000.0, 60.0, seed=2)


def test_biopac_ndt_listens_first_then_receives_frames(acq_signals, monkeypatch):
    monkeypatch.setattr(
        "mmmelab.hardware_mocks.acqknowledge.physio_signals", lambda *a, **k: acq_signals
    )
    wire = VirtualWire()
    with AcqKnowledgeServer(wire, local_clock) as server:
        cfg = PhysioConfig(control_port=server.port, data_port=0, timeout_s=2.0)
        driver = BiopacNdt(cfg, local_clock)
        layout = driver.connect()
        assert layout.channels == ("ECG", "PPG", "RSP", "SKT", "EDA")
        assert server.method == "single" and server.single_port != 15020
        driver.start()
        assert server.in_progress
        wire.set(0b101, local_clock() + 0.02)
        blocks = []
        assert wait_for(
            lambda: blocks.extend(driver.read(0.2)) or sum(len(b.data) for b in blocks) >= 300
        )
        driver.close()
        assert not server.in_progress  # the driver stopped acquisition
    data = np.concatenate([b.data for b in blocks])
    digital = np.concatenate([b.aux["digital"] for b in blocks])
    assert data.shape[1] == 5 and digital.shape[1] == 8
    assert [b.first_sample for b in blocks][:2] == [0, len(blocks[0].data)]
    assert {tuple(row) for row in digital[-50:]} == {(1, 0, 1, 0, 0, 0, 0, 0)}
    assert 30 < data[:, 3].mean() < 36  # skin temperature, degC


def test_biopac_blocking_toggle_times_out_instead_of_hanging(acq_signals, monkeypatch):
    monkeypatch.setattr(
        "mmmelab.hardware_mocks.acqknowledge.physio_signals", lambda *a, **k: acq_signals
    )
    with AcqKnowledgeServer(VirtualWire(), local_clock) as server:
        server.toggle_delay_s = 2.0
        driver = BiopacNdt(
            PhysioConfig(control_port=server.port, data_port=0, timeout_s=0.5), local_clock
        )
        driver.connect()
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="did not return within 0.5 s"):
            driver.start()
        assert time.monotonic() - t0 < 1.5
        driver.close()
        server.toggle_delay_s = 0.0


def test_biopac_channel_missing_names_what_exists(acq_signals, monkeypatch):
    monkeypatch.setattr(
        "mmmelab.hardware_mocks.acqknowledge.physio_signals", lambda *a, **k: acq_signals
    )
    with AcqKnowledgeServer(VirtualWire(), local_clock) as server:
        cfg = dataclasses.replace(
            PhysioConfig(control_port=server.port, data_port=0), channels=("ECG", "EMG")
        )
        with pytest.raises(DeviceError, match="no enabled analog channel labelled 'EMG'"):
            BiopacNdt(cfg, local_clock).connect()


def test_arduino_box_waits_for_the_board_to_boot():
    wire = VirtualWire()
    with TriggerBoxSimulator(wire, local_clock, box="arduino", boot_s=1.0) as sim:
        cfg = TriggerBoxConfig(box=TriggerBoxKind.ARDUINO, port=sim.port)
        t0 = time.monotonic()
        with TriggerBox(cfg, local_clock) as driver:
            assert time.monotonic() - t0 >= 1.0  # the driver waited out the boot
            driver.set_level(9)
            assert wait_for(lambda: wire.level_at(local_clock()) == 9)
        assert sim.swallowed == 0
