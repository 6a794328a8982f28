"""Fixed-bucket histograms used by the hot path, the reports and the benchmark."""

from __future__ import annotations

import pytest

from edge.meters import ALERT_STAGES, AlertLatency, Histogram


def test_quantiles_and_windows() -> None:
    h = Histogram((0.1, 0.5, 1.0))
    for v in [0.05] * 90 + [0.3] * 9 + [2.0]:
        h.observe(v)
    s1 = h.snapshot()
    assert s1.count == 100 and s1.counts == (90, 9, 0, 1)
    assert s1.quantile(0.5) == 0.1 and s1.quantile(0.99) == 0.5 and s1.quantile(1.0) == float("inf")
    for _ in range(10):
        h.observe(0.7)
    window = h.snapshot() - s1
    assert window.count == 10 and window.quantile(0.99) == 1.0 and window.mean() == pytest.approx(0.7)


def test_bounds_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        Histogram((1.0, 0.5))


def test_alert_latency_is_measured_from_capture_per_stage() -> None:
    lat = AlertLatency()
    lat.observe("raised", captured_s=100.0, at_s=100.12)
    lat.observe("sent", captured_s=100.0, at_s=101.4)
    lat.observe("sent", captured_s=100.0, at_s=99.0)  # the wall clock stepped back: 0, not negative
    snap = lat.snapshot()
    assert tuple(snap) == ALERT_STAGES
    assert snap["raised"].count == 1 and snap["raised"].quantile(1.0) == 0.15
    assert snap["rendered"].count == 0 and snap["committed"].count == 0
    assert snap["sent"].count == 2 and snap["sent"].total == pytest.approx(1.4)
    assert snap["sent"].quantile(0.5) == 0.05 and snap["sent"].quantile(1.0) == 1.5
    with pytest.raises(KeyError):
        lat.observe("stored", 0.0)  # the centre's stage is the centre's own histogram
