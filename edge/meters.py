"""Cheap meters for the hot path: fixed-bucket histograms that allocate nothing per observation.

Stages own their meters and only ``observe``; reports (logs, the stats topic, /metrics, the
benchmark) read ``snapshot()`` on their own timer. Bucket bounds follow Prometheus (``le``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
INFER_BUCKETS_MS = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 200.0, 400.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)
ALERT_BUCKETS_S = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
                   30.0, 60.0)  # fmt: skip
# Where a new alert is on the station, in order: the rule raised it (a camera's analysis thread),
# its snapshot was rendered (the evidence worker), it was committed to the outbox and first
# published (the link thread).
ALERT_STAGES = ("raised", "rendered", "committed", "sent")


@dataclass(frozen=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket (not cumulative); the last one is +Inf
    total: float
    count: int

    def __sub__(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """What was observed between ``earlier`` and this snapshot."""
        return HistogramSnapshot(
            self.bounds,
            tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True)),
            self.total - earlier.total,
            self.count - earlier.count,
        )

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf when it lies past the last bound)."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class Histogram:
    """Written by one thread; read by others through ``snapshot`` (a torn read is off by one)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(bounds) or not bounds:
            raise ValueError(f"bucket bounds must be non-empty and ascending, got {bounds}")
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self._total = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self._total += value
        self._count += 1

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self._counts), self._total, self._count)


class AlertLatency:
    """Seconds from a new alert's frame capture to each station stage (``ALERT_STAGES``), one
    histogram per stage: where the alert latency that an operator sees goes, before the broker and
    the centre (whose own histogram ends at its store). Starts only: the message that shows the
    alert; later phases carry no news for the feed. Each stage has one writer thread."""

    def __init__(self) -> None:
        self.stages = {s: Histogram(ALERT_BUCKETS_S) for s in ALERT_STAGES}

    def observe(self, stage: str, captured_s: float, at_s: float | None = None) -> None:
        """``captured_s``: the frame's capture, ``at_s``: the stage's time (now when None), both
        wall-clock seconds; a clock step back counts as 0."""
        at = time.time() if at_s is None else at_s
        self.stages[stage].observe(max(0.0, at - captured_s))

    def snapshot(self) -> dict[str, HistogramSnapshot]:
        return {s: h.snapshot() for s, h in self.stages.items()}
