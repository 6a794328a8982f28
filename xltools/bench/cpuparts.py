"""Where a probe's CPU goes, by part of the station and beside it: the profile that every "target not
reached" needs, read from /proc over the probe's window (Linux; elsewhere it reads nothing).

The agent's threads are named for what they do (``cam-<id>``, ``analyse-<id>``, ``inference-<n>``,
``evidence``, ``xl-link``, ...); threads Python did not start (FFmpeg's slice threads, onnxruntime's
pool) are counted as ``native``. Other processes on the box (the centre, the broker) are read whole.

A thread that ends within the window leaves /proc with its time, but the process keeps it: what the
process used beyond the sum of its live threads is ``ended``. In a probe that is mostly FFmpeg's
threads: a looping file source opens a new decoder at every pass (and a camera at every
reconnect), and the old decoder's threads end with it. Read as native, not as overhead.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Thread name prefix -> part. Anything not listed keeps its own name.
PARTS = {
    "cam-": "cameras",  # demux, decode, pacing, the motion gate and the detector's downscale
    "rec-": "cameras",  # a recording tap's reader
    "analyse-": "analyse",  # postprocess, tracking, rules
    "inference-": "inference",
    "paho-mqtt-client-": "mqtt",
    "xl-link": "link",
    "evidence": "evidence",
    "spool": "media",
}
NATIVE = "native"  # threads without a Python thread object: FFmpeg's, onnxruntime's
ENDED = "ended"  # threads that ended within the window (the process keeps their time, /proc not)


def part_of(thread_name: str | None) -> str:
    if thread_name is None:
        return NATIVE
    for prefix, part in PARTS.items():
        if thread_name.startswith(prefix):
            return part
    return thread_name


def user_sys_ticks(stat: Path) -> tuple[int, int] | None:
    """utime and stime of a /proc stat file, in clock ticks (None when it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]), int(fields[12])


def ticks(stat: Path) -> int | None:
    """utime + stime of a /proc stat file, in clock ticks (None when it is gone)."""
    t = user_sys_ticks(stat)
    return None if t is None else t[0] + t[1]


def _threads() -> dict[int, int]:
    out: dict[int, int] = {}
    task = Path("/proc/self/task")
    if not task.is_dir():
        return out
    for d in task.iterdir():
        t = ticks(d / "stat")
        if t is not None:
            out[int(d.name)] = t
    return out


@dataclass
class CpuParts:
    """Start with ``begin()``, end with ``end()``: percent of one core per part over the window."""

    others: dict[str, int] = field(default_factory=dict)  # part name -> pid of another process
    _t0: float = 0.0
    _threads0: dict[int, int] = field(default_factory=dict)
    _others0: dict[str, int | None] = field(default_factory=dict)
    _self0: int = 0

    def begin(self) -> None:
        self._t0 = os.times().elapsed
        self._threads0 = _threads()
        self._self0 = ticks(Path("/proc/self/stat")) or 0
        self._others0 = {k: ticks(Path(f"/proc/{pid}/stat")) for k, pid in self.others.items()}

    def end(self) -> dict[str, float]:
        dt = os.times().elapsed - self._t0
        per_tick = 100.0 / (os.sysconf("SC_CLK_TCK") * dt) if dt > 0 else 0.0
        names = {t.native_id: t.name for t in threading.enumerate()}
        used: Counter[str] = Counter()
        live = 0
        for tid, n in _threads().items():
            d = n - self._threads0.get(tid, 0)  # a new thread from 0
            used[part_of(names.get(tid))] += d
            live += d
        # Ticks are counted per thread, so the sums differ by a tick or two per thread: noise.
        used[ENDED] += max(0, (ticks(Path("/proc/self/stat")) or 0) - self._self0 - live)
        for k, pid in self.others.items():
            t0, t1 = self._others0.get(k), ticks(Path(f"/proc/{pid}/stat"))
            if t0 is not None and t1 is not None:
                used[k] += t1 - t0
        return {k: v * per_tick for k, v in used.most_common() if v > 0}


def summary(parts: dict[str, float], min_pct: float = 1.0) -> str:
    """``inference=86 cameras=38 native=15 ...`` (percent of one core), small parts left out."""
    return " ".join(f"{k}={v:.0f}" for k, v in parts.items() if v >= min_pct) or "-"
