"""Offline alignment on synthetic edges with a known truth (no devices, no clock)."""

from __future__ import annotations

import numpy as np
import pytest

from mmmelab.sync.align import (
    align_coded,
    align_timed,
    camera_edges,
    coded_edges,
    host_time_segment,
    robust_line,
)

EPOCH, OFFSET, DRIFT_PPM = 1000.0, 2.75, 85.0


def device(master: np.ndarray) -> np.ndarray:
    return (master - EPOCH) * (1 + DRIFT_PPM * 1e-6) + OFFSET


def markers(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = EPOCH + 1.0 + np.cumsum(rng.uniform(0.3, 2.0, n))
    codes = rng.choice([10, 11, 12, 13, 14, 16, 17, 200], n)
    return t, codes


def check(seg, tol_ms: float) -> None:
    probe = np.array([device(EPOCH + 5.0), device(EPOCH + 100.0)])
    truth = np.array([EPOCH + 5.0, EPOCH + 100.0])
    assert np.abs(seg.to_master(probe) - truth).max() * 1e3 < tol_ms
    assert seg.drift_ppm == pytest.approx(DRIFT_PPM, abs=2.0)


def test_coded_edges_with_missing_and_spurious_edges():
    t, codes = markers()
    rng = np.random.default_rng(1)
    keep = rng.random(len(t)) > 0.15  # 15 % of the edges are missed
    et = device(t[keep]) + rng.normal(0, 0.0002, keep.sum())
    ec = codes[keep]
    spurious_t = device(rng.uniform(t[0], t[-1], 12))  # 12 edges nobody sent
    et = np.concatenate([et, spurious_t])
    ec = np.concatenate([ec, rng.choice([10, 11, 99], 12)])
    order = np.argsort(et)
    seg = align_coded(et[order], ec[order], t, codes, float(et.min()), float(et.max()))
    assert seg is not None
    check(seg, 0.3)
    assert keep.sum() <= seg.edges_used <= keep.sum() + 3  # the spurious ones are left out
    assert seg.residual_rms_ms < 0.3


def test_coded_edges_from_a_sampled_trigger_channel():
    t, codes = markers(60)
    rate = 1000.0
    dev_t = np.arange(int(device(t[-1] + 1.0) * rate)) / rate
    level = np.zeros(len(dev_t), np.int64)
    for tt, c in zip(t, codes, strict=True):
        on = dev_t >= device(tt + 0.0005)  # the amplifier sees it 0.5 ms later
        off = dev_t >= device(tt + 0.0205)
        level[on & ~off] = c
    et, ec = coded_edges(dev_t, level, 1 / rate, latency_s=0.0005)
    assert list(ec) == list(codes)
    seg = align_coded(et, ec, t, codes, dev_t[0], dev_t[-1])
    assert seg is not None
    check(seg, 0.35)  # half a sample at most


def _camera(pulse_jitter_s: float, seed: int = 2):
    t, _ = markers(150, seed)
    rng = np.random.default_rng(seed)
    fps = 150.0
    exp_master = np.arange(EPOCH, t[-1] + 1.0, 1 / fps) + rng.uniform(0, 1 / fps)
    on = t + rng.uniform(0, pulse_jitter_s, len(t))
    off = on + 0.020
    gpi = np.zeros(len(exp_master), np.int64)
    for a, b in zip(on, off, strict=True):
        gpi[(exp_master >= a) & (exp_master < b)] = 1
    exp_dev = device(exp_master)
    host = exp_master + 0.002 + rng.exponential(0.001, len(exp_master))
    return t, exp_dev, gpi, host


@pytest.mark.parametrize(
    ("jitter_ms", "tol_ms", "fit"), [(0.0, 0.4, "interval"), (1.0, 1.0, "least squares")]
)
def test_camera_edges_between_two_exposures(jitter_ms, tol_ms, fit):
    t, exp_dev, gpi, host = _camera(jitter_ms / 1000)
    et, eh, rising, lo, hi = camera_edges(exp_dev, gpi, host, latency_s=0.0)
    assert np.all(lo < hi) and np.all((et > lo) & (et < hi))
    marker_t = np.concatenate([t, t + 0.020])
    marker_rising = np.concatenate([np.ones(len(t), bool), np.zeros(len(t), bool)])
    seg = align_timed(
        et, eh, rising, marker_t, marker_rising, exp_dev[0], exp_dev[-1], 1 / 150, lo, hi
    )
    assert seg is not None and seg.fit == fit
    check(seg, tol_ms)
    if fit == "interval":
        assert seg.interval_margin_ms is not None and seg.interval_margin_ms >= 0


def test_host_time_fallback_follows_the_least_delayed_arrivals():
    rng = np.random.default_rng(3)
    master = EPOCH + np.sort(rng.uniform(0, 300, 3000))
    host = master + 0.0005 + rng.exponential(0.004, len(master))
    seg = host_time_segment(device(master), host, 0.0, 1.0)
    assert seg.method == "host_time"
    probe = device(np.array([EPOCH + 10.0, EPOCH + 290.0]))
    assert np.abs(seg.to_master(probe) - np.array([EPOCH + 10.0, EPOCH + 290.0])).max() < 0.002


def test_robust_line_ignores_outliers():
    x = np.linspace(0, 100, 200)
    y = 3.0 + 0.9999 * x
    y[::17] += 0.5
    a, b, keep = robust_line(x, y)
    assert a == pytest.approx(3.0, abs=1e-9) and b == pytest.approx(0.9999, abs=1e-12)
    assert keep.sum() == 200 - len(y[::17])
