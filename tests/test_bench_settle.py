"""The benchmark waits for a quiet box before each probe (xltools/bench/settle.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from xltools.bench import settle


def test_a_probe_waits_while_the_box_is_busy_and_starts_once_it_is_quiet() -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        waited, busy = settle.wait_quiet(max_busy_pct=30.0, timeout_s=1.5)
        assert waited >= 1.5 and busy > 60.0, (waited, busy)  # every core spinning: it waits it out
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    waited, busy = settle.wait_quiet(max_busy_pct=30.0, timeout_s=20.0)
    assert waited < 20.0 and busy <= 30.0, (waited, busy)
