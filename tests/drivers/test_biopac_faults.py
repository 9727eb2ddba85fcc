"""The BIOPAC NDT driver against the AcqKnowledge stand-in: features and every fault."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from mmmelab.acquisition.recorders import RecorderState, SignalRecorder
from mmmelab.config import PhysioConfig
from mmmelab.drivers.biopac import BiopacNdt, discover
from mmmelab.drivers.lsl import local_clock
from mmmelab.errors import DeviceError
from mmmelab.hardware_mocks.acqknowledge import AcqKnowledgeServer
from mmmelab.hardware_mocks.tcpserver import FaultPlan
from mmmelab.hardware_mocks.wire import VirtualWire
from mmmelab.storage.signals import SignalFile, SignalSpec, open_signals
from mmmelab.streams import AuxSpec, StreamKind
from tests.helpers import collect, contiguous


def acq(faults: FaultPlan | None = None, **kwargs):
    server = AcqKnowledgeServer(VirtualWire(), local_clock, faults=faults, **kwargs)
    cfg = PhysioConfig(control_port=server.port, data_port=0, timeout_s=1.0)
    return server, cfg


def test_short_reads_never_misframe():
    server, cfg = acq(FaultPlan(split_writes=True, max_piece=11))
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        blocks = collect(driver, 600)
        driver.close()
    data = np.concatenate([b.data for b in blocks])
    assert contiguous(blocks) and not driver.faults
    assert 30 < np.nanmean(data[:, 3]) < 36  # SKT stays SKT: frames are aligned


def test_stall_then_burst_loses_nothing():
    server, cfg = acq(FaultPlan(stall_at_block=5, stall_s=0.6))
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        blocks = collect(driver, 2500)
        driver.close()
    assert contiguous(blocks) and [f.kind for f in driver.faults] == []


def test_dropped_blocks_show_as_an_estimated_gap():
    server, cfg = acq(FaultPlan(drop_blocks={120, 121}))
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        collect(driver, 20 * 400, timeout_s=15.0)  # detection needs a window after it
        driver.close()
    gaps = [f for f in driver.faults if f.kind == "gap"]
    assert len(gaps) == 1 and abs(gaps[0].count - 40) <= 8 and "estimated" in gaps[0].detail


def _recording(driver, tmp_path, reconnect_s=5.0):
    spec = SignalSpec(
        "physio",
        StreamKind.PHYSIO,
        1000.0,
        driver.config.channels,
        "device units",
        (AuxSpec("digital", "u1", 8),),
    )
    signals = SignalFile(tmp_path / "s.h5", [spec])
    return signals, SignalRecorder(driver, signals, local_clock, reconnect_s=reconnect_s)


def test_a_dropped_data_connection_is_re_established(tmp_path):
    server, cfg = acq(FaultPlan(disconnect_at_block=30))
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        signals, rec = _recording(driver, tmp_path)
        rec.start()
        try:
            deadline = time.monotonic() + 10
            while rec.reconnects == 0 or rec.samples < 2000:
                assert time.monotonic() < deadline and rec.state is RecorderState.RUNNING
                time.sleep(0.02)
        finally:
            rec.stop()
            driver.close()
            signals.close()
    with open_signals(tmp_path / "s.h5") as f:
        kinds = [k.decode() for k in f["faults/log"]["kind"]]
        blocks = f["physio/blocks"][()]
    assert kinds[0] == "disconnect" and {"restart", "reconnect", "gap"} <= set(kinds)
    jumps = blocks["first_sample"][1:] - (blocks["first_sample"] + blocks["count"])[:-1]
    assert np.count_nonzero(jumps) == 1 and jumps.max() > 0


def test_acquisition_stopped_in_acqknowledge_ends_the_stream_clearly(tmp_path):
    server, cfg = acq()
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        signals, rec = _recording(driver, tmp_path)
        rec.start()
        try:
            assert rec.first_data.wait(5)
            server.stop_from_ui()
            deadline = time.monotonic() + 5
            while rec.state is RecorderState.RUNNING:
                assert time.monotonic() < deadline, "the recorder hung"
                time.sleep(0.02)
        finally:
            rec.stop()
            driver.close()
            signals.close()
    assert rec.state is RecorderState.FAILED and rec.reconnects == 0
    assert "stopped in AcqKnowledge (not by mmme-lab)" in (rec.error or "")


def test_discovery_finds_the_server_and_the_driver_uses_it():
    server, cfg = acq()
    with server:
        assert discover("127.0.0.1", server.discovery_port, timeout_s=0.5) == [
            ("127.0.0.1", server.port)
        ]
        cfg = dataclasses.replace(
            cfg,
            control_port=1,
            discover=True,
            discovery_address="127.0.0.1",
            discovery_port=server.discovery_port,
        )
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        assert driver.info()["control_port"] == server.port
        driver.close()
        nobody = dataclasses.replace(cfg, discovery_port=server.port, timeout_s=0.3)
        with pytest.raises(DeviceError, match="no AcqKnowledge answered auto-discovery"):
            BiopacNdt(nobody, local_clock).connect()


def test_downsampled_channels_are_framed_right_and_marked_absent():
    server, cfg = acq(dividers={"RSP": 4})
    with server:
        driver = BiopacNdt(dataclasses.replace(cfg, data_type="float"), local_clock)
        driver.connect()
        assert driver.info()["dividers"][:5] == [1, 1, 4, 1, 1]
        driver.start()
        blocks = collect(driver, 800)
        driver.close()
    data = np.concatenate([b.data for b in blocks])
    index = np.concatenate([b.first_sample + np.arange(len(b.data)) for b in blocks])
    assert contiguous(blocks)
    rsp_present = ~np.isnan(data[:, 2])
    np.testing.assert_array_equal(rsp_present, index % 4 == 0)
    assert not np.isnan(data[:, [0, 1, 3, 4]]).any()
    assert 30 < data[:, 3].mean() < 36


def test_event_markers_reach_the_acqknowledge_graph():
    server, cfg = acq()
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        for label in ("11 CLIP_ONSET happiness_1", "12 CLIP_OFFSET happiness_1"):
            driver.mark(label)
        deadline = time.monotonic() + 5
        while len(server.events) < 2 and time.monotonic() < deadline:
            driver.read(0.05)
        driver.close()
    assert [label for label, _ in server.events] == [
        "11 CLIP_ONSET happiness_1",
        "12 CLIP_OFFSET happiness_1",
    ]


def test_control_port_closed_is_a_clear_error():
    cfg = PhysioConfig(control_port=1, timeout_s=0.5)
    with pytest.raises(DeviceError, match="is network data transfer enabled"):
        BiopacNdt(cfg, local_clock).connect()


def test_heart_rate_rises_after_each_micro_expression():
    import neurokit2 as nk

    onsets = (3.0, 10.0, 17.0)
    server, cfg = acq(me_onsets=onsets, loop_s=21.0)
    with server:
        driver = BiopacNdt(cfg, local_clock)
        driver.connect()
        driver.start()
        blocks = collect(driver, 1000)
        driver.close()
    # the server's ECG over one loop, indexed from the lab epoch
    ecg = server._analog[:, 0]
    _, info = nk.ecg_peaks(ecg, sampling_rate=1000)
    peaks = np.asarray(info["ECG_R_Peaks"]) / 1000.0
    hr = 60.0 / np.diff(peaks)
    mid = peaks[1:]
    for onset in onsets:
        after = hr[(mid > onset + 1.2) & (mid < onset + 2.8)].max()
        before = hr[(mid > onset - 2.0) & (mid < onset)].mean()
        assert after - before > 8.0
    assert len(blocks)
