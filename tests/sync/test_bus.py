"""The trigger bus: one emit -> one TTL pulse and one marker, in order, never overlapping."""

from __future__ import annotations

import threading
import time

import pylsl

from mmmelab.drivers.lsl import MarkerOutlet, local_clock
from mmmelab.errors import DeviceLostError
from mmmelab.sync.bus import TriggerBus
from mmmelab.sync.codes import EventCode


class FakeOutput:
    def __init__(self, fail_on: int | None = None) -> None:
        self.levels: list[tuple[float, int]] = []
        self.fail_on = fail_on

    def set_level(self, code: int) -> float:
        if code == self.fail_on:
            raise DeviceLostError("triggerbox", "unplugged")
        t = local_clock()
        self.levels.append((t, code))
        return t


class FakeMarkers:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, float]] = []

    def push(self, text: str, timestamp: float) -> None:
        self.pushed.append((text, timestamp))


def test_pulses_are_serialised_with_width_and_gap():
    out, markers = FakeOutput(), FakeMarkers()
    bus = TriggerBus(out, markers, local_clock, pulse_s=0.02, gap_s=0.01, sync_interval_s=60)
    bus.start()
    for code in (EventCode.TRIAL_START, EventCode.CLIP_ONSET, EventCode.CLIP_OFFSET):
        bus.emit(code, "x")
    bus.close()
    codes = [c for _, c in out.levels]
    assert codes == [10, 0, 11, 0, 12, 0, 0]  # each code, line low, ...; low at close
    ons = [r.t_on for r in bus.records]
    offs = [r.t_off for r in bus.records]
    for r in bus.records:
        assert r.t_off - r.t_on >= 0.019
    for prev_off, next_on in zip(offs, ons[1:], strict=False):
        assert next_on - prev_off >= 0.009  # never overlapping
    assert [t for _, t in markers.pushed] == ons  # marker stamped at the code write
    assert markers.pushed[1][0] == "11|CLIP_ONSET|x"


def test_sync_pulse_when_quiet():
    out, markers = FakeOutput(), FakeMarkers()
    bus = TriggerBus(out, markers, local_clock, pulse_s=0.005, gap_s=0.005, sync_interval_s=0.1)
    seen = threading.Event()
    bus.listeners.append(lambda r: seen.set() if r.code is EventCode.SYNC else None)
    bus.start()
    assert seen.wait(2.0)
    bus.close()
    assert bus.records[0].code is EventCode.SYNC


def test_a_failing_trigger_box_still_sends_the_marker_and_counts_it():
    out, markers = FakeOutput(fail_on=EventCode.NOTE), FakeMarkers()
    bus = TriggerBus(out, markers, local_clock, pulse_s=0.002, gap_s=0.002, sync_interval_s=60)
    bus.start()
    bus.emit(EventCode.NOTE, "look")
    bus.close()
    assert bus.ttl_failures == 1
    assert markers.pushed[0][0] == "30|NOTE|look"
    assert bus.records[0].ttl_ok is False


def test_markers_reach_a_real_lsl_inlet_on_loopback():
    outlet = MarkerOutlet("mmme-test-markers", session_id="t")
    try:
        found = pylsl.resolve_byprop("source_id", outlet.source_id, timeout=5.0)
        assert found, "marker stream not resolvable on loopback"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(timeout=5.0)
        stamp = local_clock()
        deadline = time.monotonic() + 5.0
        sample = None
        while sample is None and time.monotonic() < deadline:
            outlet.push("11|CLIP_ONSET|happiness_1", stamp)
            sample, ts = inlet.pull_sample(timeout=0.2)
        assert sample == ["11|CLIP_ONSET|happiness_1"]
        assert abs(ts - stamp) < 1e-6
        inlet.close_stream()
    finally:
        outlet.close()
