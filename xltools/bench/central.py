"""scripts/bench-central: what one alert costs the dispatch centre, and how many a second it takes.

A real ``xl-central`` process (SQLite, or ``--db`` for PostgreSQL) behind its own Mosquitto is fed
alert lives at a fixed rate by real station links (``edge.link.StationLink``, each with its outbox,
so every item is acknowledged as in the field). An alert life is what a station's evidence worker
sends for one event: a start with a 640x360 JPEG snapshot, for a share of them an update with a
better frame, an end naming its clip, and the clip itself over the media lane. Snapshots and the
clip are cut from a shared clip, so their sizes are real.

Measured over the window, from /proc: the centre process's CPU in ms per alert life and in % of one
core, and from its store the latency capture -> stored (p50, p99). The centre keeps up when every
life sent within the window was stored, and the latency p99 stays under 1 s.

Prints one line per rate and a final ``RESULT key=value ...`` line (the last rate's figures).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np

from edge.config import MqttConfig, OutboxConfig
from edge.link import StationLink
from wire import AlertMessage, Box, MediaBlob
from wire.messages import ClipInfo
from xltools.bench.cpuparts import ticks, user_sys_ticks
from xltools.bench.workloads import CLIPS
from xltools.procs import free_port, start_mosquitto, wait_port

CLIP = "campus_pedestrians_vtest.avi"  # the busy workload's scene: people walking, alerts all day
# A camera's events within 30 s of its clip's first one share that clip (edge: media.share_window_s),
# which then runs from 5 s before the first to 5 s after the last: about 40 s on a busy camera.
SHARE_S = 30.0
CLIP_S = 40.0
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _frames(path: Path, n: int, w: int = 640, h: int = 360) -> list[np.ndarray]:
    """``n`` BGR frames spread over the clip, at the sub-stream's size."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 7 == 0:
                out.append(cv2.resize(f.to_ndarray(format="bgr24"), (w, h), interpolation=cv2.INTER_AREA))
            if len(out) >= n:
                break
    if not out:
        raise RuntimeError(f"{path}: no frames decoded")
    return out


def _snapshots(frames: list[np.ndarray]) -> list[tuple[bytes, int, int]]:
    """JPEGs as the station renders them: the frame with the object's box drawn, quality 85."""
    out = []
    for i, f in enumerate(frames):
        img = f.copy()
        x = 40 + (i * 37) % 480
        cv2.rectangle(img, (x, 80), (x + 90, 300), (0, 0, 255), 2)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        out.append((buf.tobytes(), img.shape[1], img.shape[0]))
    return out


def _clip(path: Path, out: Path, seconds: float) -> tuple[Path, str, int]:
    """An evidence clip of ``seconds`` re-encoded at the sub-stream's size (H.264 in MP4)."""
    with av.open(str(path)) as src, av.open(str(out), "w") as dst:
        s = dst.add_stream("libx264", rate=15)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        s.bit_rate = 1_000_000
        rate = float(src.streams.video[0].average_rate or 25)
        for i, f in enumerate(src.decode(video=0)):
            if i >= seconds * rate:
                break
            img = cv2.resize(f.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                dst.mux(p)
        for p in s.encode():
            dst.mux(p)
    data = out.read_bytes()
    return out, hashlib.sha256(data).hexdigest(), len(data)


@dataclass
class Figures:
    rate: float
    sent: int
    stored: int
    cpu_pct: float
    cpu_ms_per_alert: float
    sys_share: float  # of that CPU, the kernel's (file writes, fsync, sockets)
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def kept_up(self) -> bool:
        return self.stored >= self.sent and self.latency_p99_ms <= 1000.0


class Feeder:
    """Station links sending alert lives round-robin over their cameras at a fixed rate."""

    def __init__(self, port: int, work: Path, stations: int, cameras: int, update_share: float) -> None:
        frames = _frames(CLIPS / CLIP, 24)
        self.snaps = [(MediaBlob.from_bytes(d, width_px=w, height_px=h)) for d, w, h in _snapshots(frames)]
        self.clip, self.clip_sha, self.clip_size = _clip(CLIPS / CLIP, work / "clip.mp4", CLIP_S)
        self.update_share = update_share
        # (station, camera) -> (when its first event ended, the events sharing its clip)
        self._clip_events: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self.cameras = [f"cam{c:02d}" for c in range(cameras)]
        self.links: list[StationLink] = []
        for s in range(stations):
            sid = f"bench-st{s:02d}"
            mcfg = MqttConfig(host="127.0.0.1", port=port, client_id=f"xl-edge-{sid}")
            ocfg = OutboxConfig(path=str(work / f"{sid}.outbox.sqlite"))
            self.links.append(StationLink(mcfg, ocfg, sid, self.cameras))
        self.by_station = {lk.station: lk for lk in self.links}
        self._n = 0
        self._ends: list[tuple[float, AlertMessage]] = []  # (due, end message) of lives under way

    def start(self) -> None:
        for link in self.links:
            link.start()
        deadline = time.monotonic() + 20
        while not all(link.connected for link in self.links):
            if time.monotonic() > deadline:
                raise RuntimeError("the station links did not connect to the broker")
            time.sleep(0.05)

    def stop(self) -> None:
        for link in self.links:
            link.stop(flush_timeout_s=5.0)

    def _life(self) -> None:
        """Start now (and an update for some); the end and its clip follow 2 s later."""
        i = self._n
        self._n += 1
        link = self.links[i % len(self.links)]
        cam = self.cameras[(i // len(self.links)) % len(self.cameras)]
        base = AlertMessage(
            event_id=uuid.uuid4().hex, station=link.station, camera=cam, rule="campus-walk",
            rule_kind="intrusion", zone="campus", label="person", score=0.83,
            box=Box(x1=0.3, y1=0.2, x2=0.42, y2=0.8), track_id=i, pts_s=float(i), ts=datetime.now(UTC),
            snapshot=self.snaps[i % len(self.snaps)], phase="start",
        )  # fmt: skip
        link.submit_event(base)
        if (i * 0.618) % 1.0 < self.update_share:
            snap = self.snaps[(i + 5) % len(self.snaps)]
            link.submit_event(base.model_copy(update={"phase": "update", "snapshot": snap, "score": 0.9}))
        clip = ClipInfo(
            content_type="video/mp4", path=f"/var/lib/xueliang/clips/{base.event_id}.mp4", sha256=self.clip_sha,
            size_bytes=self.clip_size, duration_s=CLIP_S, start_pts_s=max(0.0, base.pts_s - 5.0), event_offset_s=5.0,
        )  # fmt: skip
        end = base.model_copy(update={"phase": "end", "snapshot": None, "clip": clip, "ts": base.ts})
        self._ends.append((time.monotonic() + 2.0, end))

    def _due_ends(self) -> None:
        now = time.monotonic()
        while self._ends and self._ends[0][0] <= now:
            _, end = self._ends.pop(0)
            link = self.by_station[end.station]
            link.submit_event(end)
            self._clip_events.setdefault((end.station, end.camera), (now, []))[1].append(end.event_id)
        for (station, camera), (first, events) in list(self._clip_events.items()):
            if now - first >= SHARE_S:
                self._send_clip(station, camera, events)

    def _send_clip(self, station: str, camera: str, events: list[str]) -> None:
        del self._clip_events[(station, camera)]
        link = self.by_station[station]
        link.submit_media_file(
            self.clip, self.clip_sha, camera=camera, kind="clip", content_type="video/mp4",
            event_id=events[0], event_ids=events[1:],
        )  # fmt: skip

    def run(self, rate: float, seconds: float) -> int:
        """Send ``rate`` lives a second for ``seconds``; returns how many were started."""
        period = 1.0 / rate
        t0 = time.monotonic()
        n0 = self._n
        while (now := time.monotonic()) < t0 + seconds:
            due = t0 + (self._n - n0) * period
            if now >= due:
                self._life()
            self._due_ends()
            time.sleep(max(0.0, min(due + period - time.monotonic(), 0.01)))
        return self._n - n0

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Send the window's last ends and the clips they wait for, then wait until the centre has
        acknowledged everything (the outboxes are empty): all the window's work is then done."""
        deadline = time.monotonic() + timeout_s
        while self._ends and time.monotonic() < deadline:
            self._due_ends()
            time.sleep(0.05)
        for (station, camera), (_, events) in list(self._clip_events.items()):
            self._send_clip(station, camera, events)
        while time.monotonic() < deadline:
            if all(link.figures().items == 0 for link in self.links):
                return True
            time.sleep(0.05)
        return False


def _latencies_ms(db: Path, since: datetime) -> list[float]:
    """Capture -> stored of the alerts captured since ``since`` (the bench's own reading)."""
    with sqlite3.connect(db, timeout=10) as c:
        rows = c.execute("SELECT ts, received_at FROM alerts").fetchall()
    out = []
    for ts, received in rows:
        t0, t1 = (datetime.fromisoformat(str(v)).replace(tzinfo=UTC) for v in (ts, received))
        if t0 >= since:
            out.append((t1 - t0).total_seconds() * 1000.0)
    return out


def _quiet(stat: Path, below_pct: float = 3.0, timeout_s: float = 20.0) -> None:
    """Wait until the process uses under ``below_pct`` of a core over half a second."""
    deadline = time.monotonic() + timeout_s
    last = ticks(stat) or 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = ticks(stat) or 0
        if (now - last) * TICK_S * 100.0 / 0.5 < below_pct:
            return
        last = now


def _sys_ticks(stat: Path) -> int:
    t = user_sys_ticks(stat)
    return 0 if t is None else t[1]


def measure(feeder: Feeder, central_pid: int, db: Path, rate: float, seconds: float) -> Figures:
    stat = Path(f"/proc/{central_pid}/stat")
    since = datetime.now(UTC)
    t0, c0, s0 = time.monotonic(), ticks(stat) or 0, _sys_ticks(stat)
    sent = feeder.run(rate, seconds)
    drained = feeder.drain()
    _quiet(stat)  # acknowledged is stored; the clips' assembly and the acks' last batch may still run
    t1, c1, s1 = time.monotonic(), ticks(stat) or 0, _sys_ticks(stat)
    lat = _latencies_ms(db, since)
    cpu_s = (c1 - c0) * TICK_S
    sys_share = (s1 - s0) / max(1, c1 - c0)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if lat else (float("nan"),) * 2
    stored = len(lat) if drained else 0  # what is not acknowledged was not (yet) kept
    cpu_ms = 1000.0 * cpu_s / max(1, len(lat))
    return Figures(rate, sent, stored, 100.0 * cpu_s / (t1 - t0), cpu_ms, sys_share, p50, p99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench-central", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="10,20,40", help="alert lives per second, one window each")
    ap.add_argument("--seconds", type=float, default=30.0, help="window per rate")
    # 20 cameras at 10-15 lives a second: 0.5-0.75 a camera, as the busy workload's cameras raise.
    ap.add_argument("--stations", type=int, default=2)
    ap.add_argument("--cameras", type=int, default=10, help="per station")
    ap.add_argument("--update-share", type=float, default=0.4, help="share of lives with a better frame")
    ap.add_argument("--keep", action="store_true", help="keep the centre's database, media and log")
    a = ap.parse_args(argv)
    rates = [float(r) for r in a.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="xl-bench-central-"))
    broker = start_mosquitto(work / "mosquitto")
    port = free_port()
    db = work / "central.db"
    clog = (work / "central.log").open("wb")
    central = subprocess.Popen(
        [sys.executable, "-m", "central", "serve", "--port", str(port), "--db", f"sqlite:///{db}",
         "--media-dir", str(work / "media"), "--mqtt-port", str(broker.port)],
        stdout=clog, stderr=subprocess.STDOUT,
    )  # fmt: skip
    feeder: Feeder | None = None
    last: Figures | None = None
    try:
        wait_port("127.0.0.1", port, 30, central)
        feeder = Feeder(broker.port, work, a.stations, a.cameras, a.update_share)
        print(f"clip {feeder.clip_size / 1000:.0f} kB, snapshot {len(feeder.snaps[0].data_b64) * 3 // 4000} kB, "
              f"{a.stations} stations x {a.cameras} cameras; centre pid {central.pid}", flush=True)  # fmt: skip
        feeder.start()
        feeder.run(2.0, 5.0)  # warm-up: imports, first incidents and orders, caches
        feeder.drain()
        time.sleep(2.0)
        for rate in rates:
            last = measure(feeder, central.pid, db, rate, a.seconds)
            print(
                f"rate {rate:g}/s: sent {last.sent} stored {last.stored}; centre {last.cpu_pct:.1f}% of a core, "
                f"{last.cpu_ms_per_alert:.2f} ms CPU per alert life ({last.sys_share:.0%} in the kernel); latency p50 {last.latency_p50_ms:.0f} ms "
                f"p99 {last.latency_p99_ms:.0f} ms{'' if last.kept_up else '  (did not keep up)'}",
                flush=True,
            )
            time.sleep(2.0)
    finally:
        if feeder is not None:
            threading.Thread(target=feeder.stop, daemon=True).start()
        central.terminate()
        central.wait(timeout=20)
        broker.stop()
        clog.close()
        if a.keep:
            print(f"work {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if last is None:
        return 1
    print(
        f"RESULT central_ms_per_alert={last.cpu_ms_per_alert:.2f} central_cpu_pct={last.cpu_pct:.1f} "
        f"rate={last.rate:g} kept_up={int(last.kept_up)} latency_p99_ms={last.latency_p99_ms:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
