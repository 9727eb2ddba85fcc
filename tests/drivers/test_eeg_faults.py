"""Every injected EEG fault, for both framings: recovered and recorded, or a clear stop.

The servers are real TCP servers on 127.0.0.1 and the clients the real drivers.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mmmelab.acquisition.recorders import RecorderState, SignalRecorder
from mmmelab.config import EegConfig, EegProtocol
from mmmelab.drivers.lsl import local_clock
from mmmelab.drivers.neuroscan import make_eeg_driver
from mmmelab.errors import DeviceError, DeviceTimeoutError
from mmmelab.hardware_mocks.acquire import AcquireServer
from mmmelab.hardware_mocks.curry import CurryServer
from mmmelab.hardware_mocks.tcpserver import FaultPlan
from mmmelab.hardware_mocks.wire import VirtualWire
from mmmelab.storage.signals import SignalFile, SignalSpec, open_signals
from mmmelab.streams import AuxSpec, StreamKind
from tests.helpers import collect, contiguous

FRAMINGS = {
    "curry": (CurryServer, EegProtocol.CURRY),
    "acquire": (AcquireServer, EegProtocol.ACQUIRE),
}


def serve(framing: str, faults: FaultPlan, n_channels: int = 8):
    server_cls, protocol = FRAMINGS[framing]
    wire = VirtualWire()
    server = server_cls(wire, local_clock, n_channels=n_channels, faults=faults)
    cfg = EegConfig(protocol=protocol, port=server.port, channels=n_channels, timeout_s=1.0)
    return server, wire, make_eeg_driver(cfg, local_clock)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_reads_split_at_any_byte_boundary(framing):
    server, wire, driver = serve(framing, FaultPlan(split_writes=True, max_piece=5))
    with server:
        driver.connect()
        driver.start()
        wire.set(0x21, local_clock() + 0.05)
        wire.set(0, local_clock() + 0.08)
        blocks = collect(driver, 400)
        driver.close()
    assert contiguous(blocks) and not driver.faults
    assert all(b.data.shape[1] == 8 for b in blocks)
    words = np.concatenate([b.aux["trigger"] for b in blocks]) & 0xFF
    assert 0x21 in words


@pytest.mark.parametrize("framing", FRAMINGS)
def test_stall_then_burst_loses_nothing(framing):
    server, _, driver = serve(framing, FaultPlan(stall_at_block=3, stall_s=0.6))
    with server:
        driver.connect()
        driver.start()
        blocks = collect(driver, 1400)
        driver.close()
    assert contiguous(blocks)
    assert [f.kind for f in driver.faults] == []
    arrivals = np.array([b.host_time for b in blocks])
    assert np.diff(arrivals).max() > 0.5  # the stall was real ...
    assert len(blocks) >= 35  # ... and everything came after it


@pytest.mark.parametrize("framing", FRAMINGS)
def test_dropped_blocks_are_recorded_as_gaps(framing):
    server, _, driver = serve(framing, FaultPlan(drop_blocks={60, 61}))
    with server:
        driver.connect()
        driver.start()
        collect(driver, 40 * 180, timeout_s=15.0)
        driver.close()
    gaps = [f for f in driver.faults if f.kind == "gap"]
    assert len(gaps) == 1
    if framing == "curry":
        assert gaps[0].count == 80  # exact: from the sample index
    else:
        assert abs(gaps[0].count - 80) <= 12  # estimated from the arrival timing
        assert "estimated" in gaps[0].detail


@pytest.mark.parametrize("framing", FRAMINGS)
def test_garbage_bytes_are_skipped_and_counted(framing):
    server, _, driver = serve(framing, FaultPlan(garbage_every=5))
    with server:
        driver.connect()
        driver.start()
        blocks = collect(driver, 1200)
        driver.close()
    assert contiguous(blocks)
    resync = [f for f in driver.faults if f.kind == "resync"]
    assert resync and sum(f.count for f in resync) == driver.skipped_bytes > 0


@pytest.mark.parametrize("framing", FRAMINGS)
def test_disconnect_reconnects_and_records_the_gap(framing, tmp_path):
    server, _, driver = serve(framing, FaultPlan(disconnect_at_block=10))
    with server:
        driver.connect()
        driver.start()
        spec = SignalSpec(
            "eeg",
            StreamKind.EEG,
            1000.0,
            driver.layout.channels,
            "uV",
            (AuxSpec("trigger", "<u2"),),
        )
        signals = SignalFile(tmp_path / "s.h5", [spec])
        rec = SignalRecorder(driver, signals, local_clock, reconnect_s=5.0)
        rec.start()
        try:
            deadline = time.monotonic() + 10
            while rec.reconnects == 0 or rec.samples < 1200:
                assert time.monotonic() < deadline and rec.state is RecorderState.RUNNING
                time.sleep(0.02)
        finally:
            rec.stop()
            driver.close()
            signals.close()
    assert server.connections == 2
    with open_signals(tmp_path / "s.h5") as f:
        kinds = [k.decode() for k in f["faults/log"]["kind"]]
        blocks = f["eeg/blocks"][()]
    assert kinds[:1] == ["disconnect"] and "reconnect" in kinds and "gap" in kinds
    jumps = blocks["first_sample"][1:] - (blocks["first_sample"] + blocks["count"])[:-1]
    assert np.count_nonzero(jumps) == 1 and jumps.max() > 0  # the hole is in the file


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_silent_server_times_out_instead_of_hanging(framing):
    server, _, driver = serve(framing, FaultPlan(refuse=True))
    with server:
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="no data within the timeout"):
            driver.connect()
        assert time.monotonic() - t0 < 3.0
        driver.close()


def test_a_server_that_never_comes_back_stops_the_stream_with_the_error(tmp_path):
    server, _, driver = serve("curry", FaultPlan())
    driver.connect()
    driver.start()
    spec = SignalSpec(
        "eeg", StreamKind.EEG, 1000.0, driver.layout.channels, "uV", (AuxSpec("trigger", "<u2"),)
    )
    signals = SignalFile(tmp_path / "s.h5", [spec])
    rec = SignalRecorder(driver, signals, local_clock, reconnect_s=1.0)
    rec.start()
    assert rec.first_data.wait(5)
    server.close()  # the acquisition PC is gone
    deadline = time.monotonic() + 10
    while rec.state is RecorderState.RUNNING:
        assert time.monotonic() < deadline, "the recorder hung"
        time.sleep(0.02)
    assert rec.state is RecorderState.FAILED and "closed the connection" in (rec.error or "")
    rec.stop()
    driver.close()
    signals.close()
    with open_signals(tmp_path / "s.h5") as f:
        kinds = [k.decode() for k in f["faults/log"]["kind"]]
    assert kinds[0] == "disconnect" and kinds[-1] == "lost"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_malformed_block_is_dropped_and_recorded(framing):
    server, _, driver = serve(framing, FaultPlan(malformed_blocks={4}))
    with server:
        driver.connect()
        driver.start()
        blocks = collect(driver, 400)
        driver.close()
    malformed = [f for f in driver.faults if f.kind == "malformed"]
    assert len(malformed) == 1 and "dropped" in malformed[0].detail
    if framing == "curry":
        assert [f.kind for f in driver.faults] == ["malformed", "gap"]  # and the hole shows
        assert not contiguous(blocks)


def test_acquire_basic_info_of_the_wrong_size_is_refused():
    server, _, driver = serve("acquire", FaultPlan(bad_basic_info=True))
    with server, pytest.raises(DeviceError, match=r"implausible basic info \(size 27"):
        driver.connect()
    driver.close()


def test_acquire_impedance_mode_pauses_the_data_without_a_gap():
    """StartImpedance (CTRL 2/3): the simulated amplifier sends no EEG until
    StartAcquisition; the pause is not a loss, and the sample index follows the clock."""
    server, _, driver = serve("acquire", FaultPlan())
    with server:
        driver.connect()
        driver.start()
        before = collect(driver, 200)
        driver.start_impedance()
        t_pause = local_clock()
        while local_clock() - t_pause < 0.3:  # blocks in flight, then nothing
            before += driver.read(0.05)
        assert server.impedance_mode
        assert driver.read(0.2) == [], "data flowed in impedance mode"
        driver.end_impedance()
        after = collect(driver, 200)
        driver.close()
    assert not server.impedance_mode
    assert [f.kind for f in driver.faults] == []
    last = before[-1].first_sample + len(before[-1].data)
    skipped = after[0].first_sample - last
    assert skipped >= 0.25 * 1000, skipped  # about the pause, at 1 kHz
