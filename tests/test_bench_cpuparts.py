"""The benchmark's CPU by part (xltools/bench/cpuparts.py): threads grouped by what they do, other
processes read whole."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from xltools.bench import cpuparts

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _spin(until: float) -> None:
    x = 0
    while time.monotonic() < until:
        x += 1


def test_busy_threads_and_a_busy_process_are_counted_by_part_and_idle_ones_are_not() -> None:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = cpuparts.CpuParts({"central": hog.pid})
        time.sleep(0.2)
        meter.begin()
        until = time.monotonic() + 1.5
        threads = [
            threading.Thread(target=_spin, args=(until,), name="inference-0"),
            threading.Thread(target=_spin, args=(until,), name="cam-gate01"),
            threading.Thread(target=time.sleep, args=(1.5,), name="evidence"),
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)
        parts = meter.end()  # while they run, as a probe's window ends with its agent running
        for t in threads:
            t.join()
    finally:
        hog.kill()
        hog.wait()
    # Two spinning Python threads share the GIL: about half a core each; the process a whole core
    # less what the two threads take of the box's other cores.
    assert parts.get("inference", 0) > 15 and parts.get("cameras", 0) > 15, parts
    assert parts.get("central", 0) > 30, parts
    assert parts.get("evidence", 0) < 5, parts
    assert "cam-gate01" not in parts and "inference-0" not in parts  # grouped, not per thread
    text = cpuparts.summary(parts)
    assert "inference=" in text and "central=" in text


def test_thread_names_map_to_parts() -> None:
    assert cpuparts.part_of("cam-gate01") == "cameras"
    assert cpuparts.part_of("analyse-gate01") == "analyse"
    assert cpuparts.part_of("paho-mqtt-client-xl-edge-s1") == "mqtt"
    assert cpuparts.part_of(None) == cpuparts.NATIVE
    assert cpuparts.part_of("checks") == "checks"  # unlisted names keep their own
    assert cpuparts.summary({}) == "-"


def test_a_process_gone_during_the_window_is_left_out_not_an_error() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    meter = cpuparts.CpuParts({"broker": p.pid})
    meter.begin()
    p.wait()
    time.sleep(0.05)
    assert "broker" not in meter.end()


def test_a_thread_that_ends_within_the_window_is_counted_as_ended() -> None:
    """Its /proc entry goes with it; the process keeps its time (FFmpeg's threads of a decoder that
    a looping file replaced read as nothing before)."""
    meter = cpuparts.CpuParts()
    meter.begin()
    t = threading.Thread(target=_spin, args=(time.monotonic() + 0.6,), name="cam-gone")
    t.start()
    t.join()
    time.sleep(0.3)  # the ending thread's last ticks, and idle time in the window
    parts = meter.end()
    assert parts.get(cpuparts.ENDED, 0) > 30, parts
    assert "cameras" not in parts or parts["cameras"] < 5, parts  # gone: not read as a live camera
