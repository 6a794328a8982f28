"""The Xueliang contender: the real station agent (default settings) on N copies of a workload,
publishing to a real Mosquitto, with alert latency measured up to the central store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from edge.agent import StationAgent
from edge.config import StationConfig
from edge.meters import HistogramSnapshot
from edge.sources import input_fps
from xltools.bench.cpuparts import CpuParts
from xltools.procs import Broker, free_port, start_mosquitto, wait_port

VEHICLES = ["car", "truck", "bus", "motorbike", "bicycle"]


def keeps_real_time(min_fps_in: float, fps_target: float, lag_p99_s: float) -> bool:
    """The input half of "sustained" (../shared/bench/README.md): no camera below 98% of its
    rate, and frames decoded at most 0.5 s late at p99."""
    return min_fps_in >= 0.98 * fps_target and lag_p99_s <= 0.5


@dataclass
class Probe:
    """One measured run of N cameras."""

    cameras: int
    seconds: float
    fps_in: list[float]
    lag_p99_s: float
    detect_ratio: float  # detected / frames with motion (due at the detect rate)
    frames_moving: int
    alerts: int
    latency_p99_ms: float
    latency_max_ms: float
    cpu_pct: float
    infer_calls_per_s: float
    batch_hist: dict[int, int]
    stage_ms: dict[str, float] = field(default_factory=dict)
    # p99 of the new alerts' latency at each station stage (edge.meters.ALERT_STAGES), as the upper
    # bound of the agent's histogram bucket: where the latency above goes before the broker.
    alert_stage_p99_ms: dict[str, float] = field(default_factory=dict)
    hw_decoding: int = 0  # cameras decoding on a device (stream.hwaccel: auto finds one on a GPU box)
    # Percent of one core over the window by part of the station (xltools.bench.cpuparts), and of
    # the other processes the probe was given (the centre, the broker).
    cpu_parts: dict[str, float] = field(default_factory=dict)

    def sustained(self, fps_target: float) -> bool:
        return (
            keeps_real_time(min(self.fps_in), fps_target, self.lag_p99_s)
            and (self.frames_moving == 0 or self.detect_ratio >= 0.95)
            and self.latency_p99_ms <= 1000.0
        )


@dataclass
class Centre:
    """What the probes publish to: a private Mosquitto and a central service storing in ``db``."""

    broker: Broker
    proc: subprocess.Popen
    db: Path

    @property
    def others(self) -> dict[str, int]:
        """Their processes, for the CPU-by-part figures."""
        return {"central": self.proc.pid, "broker": self.broker.proc.pid}


@contextmanager
def centre(work: Path) -> Iterator[Centre]:
    """Start both under ``work`` (the service's log in ``work/central.log``); stop them on exit."""
    broker = start_mosquitto(work / "mosquitto")
    port = free_port()
    db = work / "central.db"
    with (work / "central.log").open("wb") as clog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "central", "serve", "--port", str(port), "--db", f"sqlite:///{db}",
             "--media-dir", str(work / "media"), "--mqtt-port", str(broker.port)],
            stdout=clog, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 30, proc)
        yield Centre(broker, proc, db)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        broker.stop()


def station_config(
    workload: Path, cameras: int, broker_port: int, workdir: Path, labels: list[str], stagger_s: float = 0.0,
    record: Path | None = None,
) -> StationConfig:
    """N cameras on one workload; with ``stagger_s`` camera i starts i * stagger_s / N into the clip,
    so that their activity is independent, as different real cameras' is. ``record``: each camera's
    record stream (dual-stream cameras: detection on ``workload``, clips from ``record``)."""
    sid = f"bench-{uuid.uuid4().hex[:8]}"
    whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    return StationConfig.model_validate(
        {
            "station": {"id": sid},
            "mqtt": {"host": "127.0.0.1", "port": broker_port},
            "outbox": {"path": str(workdir / f"{sid}.outbox.sqlite")},
            "media": {"dir": str(workdir / f"{sid}-media")},
            "cameras": [
                {
                    "id": f"cam{i:02d}",
                    "source": str(workload),
                    "loop": True,
                    "realtime": True,
                    "start_s": round(i * stagger_s / cameras, 3),
                    "zones": [{"id": "all", "points": whole}],
                    "rules": [{"id": "watch", "kind": "intrusion", "zone": "all", "classes": labels}],
                    **({"record_source": str(record)} if record is not None else {}),
                }
                for i in range(cameras)
            ],
        }
    )


def _alert_latencies(db: Path, station: str, since: datetime) -> list[float]:
    with sqlite3.connect(db, timeout=10) as c:
        rows = c.execute("SELECT ts, received_at FROM alerts WHERE station = ?", (station,)).fetchall()
    out = []
    for ts, received in rows:
        t0, t1 = datetime.fromisoformat(str(ts)), datetime.fromisoformat(str(received))
        if t0.replace(tzinfo=None) >= since.replace(tzinfo=None):
            out.append((t1 - t0).total_seconds() * 1000.0)
    return out


def run_xueliang(
    workload: Path, cameras: int, seconds: float, broker_port: int, central_db: Path, workdir: Path,
    labels: list[str], warmup_s: float = 3.0, settle_s: float = 3.0, stagger_s: float = 0.0,
    others: dict[str, int] | None = None, record: Path | None = None,
) -> Probe:  # fmt: skip
    cfg = station_config(workload, cameras, broker_port, workdir, labels, stagger_s, record)
    agent = StationAgent(cfg)
    runner = threading.Thread(target=agent.run, name="bench-agent", daemon=True)
    runner.start()
    time.sleep(warmup_s)
    parts = CpuParts(dict(others or {}))
    parts.begin()
    t0, cpu0 = time.monotonic(), os.times()
    since = datetime.now().astimezone()
    before = [(r.source.stats.due_mark, r.source.stats.lag_s.snapshot(),
               r.pipeline.stats.moving, r.pipeline.stats.moving_detected) for r in agent.runners]  # fmt: skip
    b0 = (agent.batcher.stats.batch_size.snapshot(), agent.batcher.stats.batches)
    lat0 = agent.alert_latency.snapshot()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    cpu1 = os.times()
    cpu_parts = parts.end()
    fps, lags, moving, moving_det = [], [], 0, 0
    lag_total: HistogramSnapshot | None = None
    for r, (mark0, lag0, mv0, md0) in zip(agent.runners, before, strict=True):
        s, p = r.source.stats, r.pipeline.stats
        fps.append(input_fps(mark0, s.due_mark))
        w = s.lag_s.snapshot() - lag0
        lag_total = w if lag_total is None else _add(lag_total, w)
        moving += p.moving - mv0
        moving_det += p.moving_detected - md0
        lags.append(w.quantile(0.99))
    bs = agent.batcher.stats.batch_size.snapshot() - b0[0]
    calls = agent.batcher.stats.batches - b0[1]
    lat = {k: v - lat0[k] for k, v in agent.alert_latency.snapshot().items()}
    hw = sum(r.source.stats.hw_decoding for r in agent.runners)
    time.sleep(settle_s)  # alerts raised at the end of the window reach the store
    agent.stop.set()
    runner.join(timeout=30)
    stored = _alert_latencies(central_db, cfg.station.id, since)
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / dt * 100.0
    return Probe(
        cameras=cameras,
        seconds=dt,
        fps_in=fps,
        lag_p99_s=lag_total.quantile(0.99) if lag_total else 0.0,
        detect_ratio=moving_det / moving if moving else 1.0,
        frames_moving=moving,
        alerts=len(stored),
        latency_p99_ms=float(np.percentile(stored, 99)) if stored else 0.0,
        latency_max_ms=max(stored, default=0.0),
        cpu_pct=cpu,
        infer_calls_per_s=calls / dt,
        batch_hist={int(b): n for b, n in zip(bs.bounds, bs.counts, strict=False) if n},
        alert_stage_p99_ms={k: h.quantile(0.99) * 1000.0 for k, h in lat.items() if h.count},
        hw_decoding=hw,
        cpu_parts=cpu_parts,
    )


def _add(a: HistogramSnapshot, b: HistogramSnapshot) -> HistogramSnapshot:
    return HistogramSnapshot(a.bounds, tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
                             a.total + b.total, a.count + b.count)  # fmt: skip


def stage_summary(p99_ms: dict[str, float]) -> str:
    """``raised<=200/rendered<=300/...ms``: bucket upper bounds, so each reads "at most"."""
    return "/".join(f"{k}<={v:.0f}" for k, v in p99_ms.items()) + "ms" if p99_ms else "-"
