"""The benchmark's search for the largest sustained camera count."""

from __future__ import annotations

import pytest

from xltools.bench.ramp import ramp


@pytest.mark.parametrize("true_n", [0, 1, 3, 7, 20, 45, 64])
@pytest.mark.parametrize("start", [1, 4, 10, 60])
def test_finds_the_largest_sustained_count(true_n: int, start: int) -> None:
    r = ramp(lambda n: (n <= true_n, None), start, 64, 30)
    assert r.best == true_n
    assert all(ok == (n <= true_n) for n, ok, _ in r.probes)


def test_probe_budget_keeps_the_best_bracket() -> None:
    r = ramp(lambda n: (n <= 45, None), 1, 64, 5)
    assert len(r.probes) == 5 and r.best == max(n for n, ok, _ in r.probes if ok)
