"""Probes measured one at a time: wait for the box to go quiet before each.

An overloaded probe leaves work behind it - the centre storing its backlog of alerts and clips, the
agent's outbox draining, threads shutting down - which would otherwise run during the next probe
and fail it (seen: after 48 busy cameras failed, 40, 36, 34 and 33 failed in a row at 52-71% of
motion frames detected, while 34 passed four times of four on a quiet box).
"""

from __future__ import annotations

import time
from pathlib import Path

STAT = Path("/proc/stat")


def _times() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs."""
    v = [int(x) for x in STAT.read_text().split("\n", 1)[0].split()[1:]]
    return v[3] + v[4], sum(v)


def busy_pct(sample_s: float) -> float:
    """Share of all CPUs busy over ``sample_s`` (0-100)."""
    i0, t0 = _times()
    time.sleep(sample_s)
    i1, t1 = _times()
    return 100.0 * (1.0 - (i1 - i0) / max(t1 - t0, 1))


def wait_quiet(max_busy_pct: float = 15.0, timeout_s: float = 60.0, sample_s: float = 0.5) -> tuple[float, float]:
    """Wait until the box is at most ``max_busy_pct`` busy over ``sample_s`` (or ``timeout_s`` passed);
    returns (seconds waited, last busy %). No /proc/stat (not Linux): returns at once."""
    if not STAT.is_file():
        return 0.0, 0.0
    t0 = time.monotonic()
    while True:
        busy = busy_pct(sample_s)
        waited = time.monotonic() - t0
        if busy <= max_busy_pct or waited >= timeout_s:
            return waited, busy
