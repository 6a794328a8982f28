"""Cheap meters for the hot path: fixed-bucket histograms that allocate nothing per observation.

Stages own their meters and only ``observe``; reports (logs, the stats topic, /metrics, the
benchmark) read ``snapshot()`` on their own timer. Bucket bounds follow Prometheus (``le``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
INFER_BUCKETS_MS = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0, 200.0, 400.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)


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
