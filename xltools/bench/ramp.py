"""Find the largest N for which a probe is sustained: grow geometrically, then bisect."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RampResult:
    best: int  # largest sustained N found (0: not even one)
    probes: list[tuple[int, bool, Any]] = field(default_factory=list)


def ramp(probe: Callable[[int], tuple[bool, Any]], start: int, max_n: int, max_probes: int) -> RampResult:
    """``probe(n)`` -> (sustained, details). Stops after ``max_probes`` with the best bracket so far."""
    res = RampResult(0)
    good, bad = 0, max_n + 1
    n = max(1, min(start, max_n))
    while len(res.probes) < max_probes and bad - good > 1:
        ok, info = probe(n)
        res.probes.append((n, ok, info))
        if ok:
            good = max(good, n)
            n = min(max_n, math.ceil(n * 1.5)) if bad > max_n else (good + bad) // 2
            if n >= bad:
                n = (good + bad) // 2
        else:
            bad = min(bad, n)
            n = max(1, n * 2 // 3) if good == 0 else (good + bad) // 2
        if n == good or n >= bad:
            break
    res.best = good
    return res
