"""Live sync health on synthetic feeds (no threads, no clock)."""

from __future__ import annotations

import numpy as np

from mmmelab.sync.live import LiveSync, new_edges

OFFSET, DRIFT = 3.0, 90e-6


def dev(master: float) -> float:
    return (master - 1000.0) * (1 + DRIFT) + OFFSET


def feed(
    live: LiveSync,
    t0: float,
    t1: float,
    stream: str = "eeg",
    jitter: float = 0.0,
    reset_at: float | None = None,
    edges: bool = True,
    seed: int = 0,
) -> float:
    rng = np.random.default_rng(seed)
    t = t0
    while t < t1:
        code = 200 if int(t) % 2 else 11
        live.marker(t, code, t + 0.02)
        if edges:
            d = dev(t + rng.normal(0, jitter))
            if reset_at is not None and t >= reset_at:
                d -= dev(reset_at)
            live.edges(stream, np.array([d]), np.array([code]), np.array([t + 0.005]))
        t += 0.5
    return t


def test_tracks_offset_and_drift():
    live = LiveSync()
    end = feed(live, 1000.0, 1060.0)
    h = live.status(end, ["eeg"])["eeg"]
    assert h.state == "ok" and h.edges == 40
    assert abs(h.drift_ppm - 90.0) < 1.0 and h.residual_ms < 0.05
    master_now = (dev(end) - OFFSET) / (1 + DRIFT) + 1000.0
    assert abs(h.offset_ms / 1e3 - (master_now - dev(end))) < 1e-4


def test_a_stream_that_stops_seeing_triggers_is_reported():
    live = LiveSync(lost_after_s=5.0)
    t = feed(live, 1000.0, 1030.0)
    t = feed(live, t, t + 10.0, edges=False)  # markers go on, edges stop
    h = live.status(t, ["eeg", "physio"])
    assert h["eeg"].state == "no_triggers" and "trigger cable" in h["eeg"].message
    assert h["physio"].state == "no_triggers"  # never saw any


def test_recovers_after_a_clock_reset():
    live = LiveSync()
    end = feed(live, 1000.0, 1080.0, stream="camera", reset_at=1040.0)
    h = live.status(end, ["camera"])["camera"]
    assert h.state == "ok" and h.residual_ms < 0.05


def test_a_growing_residual_is_reported():
    live = LiveSync()
    end = feed(live, 1000.0, 1040.0, jitter=0.004, seed=2)
    assert live.status(end, ["eeg"])["eeg"].state == "residual_high"


def test_new_edges_sees_level_changes_across_blocks():
    idx, last = new_edges(0, np.array([0, 0, 11, 11, 0, 200]))
    assert list(idx) == [2, 5] and last == 200
    idx, last = new_edges(last, np.array([200, 200, 0]))
    assert list(idx) == [] and last == 0


def test_edges_waiting_for_their_marker_do_not_survive_a_clock_reset():
    live = LiveSync()
    for k in range(8):  # a map on the old clock
        t = 1000.0 + k
        live.marker(t, 11, t + 0.02)
        live.edges("camera", np.array([dev(t)]), None, np.array([t + 0.003]), np.array([True]))
    t_old = 1008.0  # an edge whose marker is not known yet ...
    live.edges("camera", np.array([dev(t_old)]), None, np.array([t_old + 0.003]), np.array([True]))
    reset = dev(t_old + 0.2)  # ... the camera clock restarts at 0 ...
    live.edges(
        "camera",
        np.array([dev(t_old + 0.5) - reset]),
        None,
        np.array([t_old + 0.503]),
        np.array([True]),
    )
    live.marker(t_old, 11, t_old + 0.02)  # ... and only then its marker arrives
    live.marker(t_old + 0.5, 11, t_old + 0.52)
    for k in range(1, 8):
        t = t_old + 0.5 + k
        live.marker(t, 11, t + 0.02)
        live.edges(
            "camera", np.array([dev(t) - reset]), None, np.array([t + 0.003]), np.array([True])
        )
    live.marker(1020.0, 11, 1020.02)
    h = live.status(1020.0, ["camera"])["camera"]
    assert h.state == "ok" and h.residual_ms < 0.05


def test_seen_gives_each_streams_newest_edge_for_the_stop_to_wait_on():
    live = LiveSync()
    assert live.seen() == {}
    end = feed(live, 1000.0, 1010.0)
    feed(live, 1000.0, 1004.0, stream="physio", seed=1)
    seen = live.seen()
    assert set(seen) == {"eeg", "physio"}
    assert abs(seen["eeg"] - (end - 0.5 + 0.005)) < 1e-9  # the last edge fed
    assert seen["physio"] < seen["eeg"]  # physio stopped earlier: the stop would wait for it
