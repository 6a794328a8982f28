"""Runtime control of a real `xl-edge run`: SIGHUP restarts only the camera whose settings changed,
SIGTERM exits within 10 s with the outbox intact; /metrics parses as Prometheus text; the systemd
watchdog is pinged only while every camera loop makes progress."""

from __future__ import annotations

import gc
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import StationAgent
from edge.config import load_station_config
from edge.sdnotify import SystemdNotifier
from tests.conftest import CLIPS
from tests.linkkit import wait_for
from xltools.procs import free_port

STATION = """\
station: {{id: rt-s1}}
mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 1}}
outbox: {{path: "{tmp}/outbox/rt.sqlite"}}
media: {{dir: "{tmp}/media", pre_s: 1, post_s: 1, ram_s: 0.5}}
metrics: {{port: {metrics}}}
cameras:
  - id: lawn
    source: "{clips}/campus_pedestrians_vtest.avi"
    loop: true
    zones: [{{id: all, points: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    rules: [{{id: anyone, zone: all, end_after_s: 1}}]
  - id: hall
    source: "{clips}/indoor_one_by_one.mp4"
    loop: true
    zones: [{{id: door, points: {hall_zone}}}]
    rules: [{{id: door-in, zone: door}}]
  - id: lot
    source: "{clips}/parking_lot_cars.mp4"
    loop: true
"""
HALL_ZONE = "[[0, 0.5], [1, 0.5], [1, 1], [0, 1]]"
HALL_ZONE_2 = "[[0, 0.3], [1, 0.3], [1, 1], [0, 1]]"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser: (name, labels) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def ring_bytes(m: dict) -> dict[tuple[str, str], float]:
    """xl_edge_clip_ring_bytes: (camera, memory|disk) -> bytes."""
    return {(dict(k[1])["camera"], dict(k[1])["where"]): v for k, v in m.items() if k[0] == "xl_edge_clip_ring_bytes"}


def per_camera(m: dict, name: str) -> dict[str, float]:
    return {dict(k[1])["camera"]: v for k, v in m.items() if k[0] == name}


def test_sighup_restarts_only_the_changed_camera_and_sigterm_keeps_the_outbox(broker, tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    mport = free_port()
    text = STATION.format(port=broker.port, tmp=tmp_path, metrics=mport, clips=CLIPS, hall_zone=HALL_ZONE)
    cfg.write_text(text)
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "--log-format", "json", "run", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def ready() -> dict | None:
            try:
                m = scrape(mport)
            except OSError:
                return None
            dec = per_camera(m, "xl_edge_frames_decoded_total")
            ok = len(dec) == 3 and min(dec.values()) > 10 and m[("xl_edge_outbox_events", ())] >= 1
            return m if ok else None

        m1 = wait_for(ready, "three cameras decoding and an event in the outbox", timeout_s=60)
        # The figures of the issue are all there (parsed with prometheus_client's parser above).
        names = {k[0] for k in m1}
        for n in ("xl_edge_camera_input_fps", "xl_edge_camera_detect_fps", "xl_edge_source_lag_seconds_bucket",
                  "xl_edge_frames_dropped_total", "xl_edge_detect_frames_dropped_total", "xl_edge_inference_seconds_bucket",
                  "xl_edge_inference_batch_size_bucket", "xl_edge_outbox_items", "xl_edge_camera_reconnects_total",
                  "xl_edge_media_bytes", "process_resident_memory_bytes", "xl_edge_camera_hw_decode",
                  "xl_edge_camera_hw_decode_fallbacks_total", "xl_edge_camera_timestamp_jumps_total",
                  "xl_edge_alert_latency_seconds_bucket", "xl_edge_decode_slots",
                  "xl_edge_decode_slot_waits_total"):  # fmt: skip
            assert n in names, n
        assert per_camera(m1, "xl_edge_camera_online") == {"lawn": 1.0, "hall": 1.0, "lot": 1.0}
        # What each clip ring holds, in memory and (a long event's older packets) on disk.
        ring = ring_bytes(m1)
        assert {c for c, _ in ring} == {"lawn", "hall", "lot"} and all(ring[(c, "memory")] > 0 for c in ("lawn", "hall", "lot"))
        assert set(per_camera(m1, "xl_edge_clip_spool_errors_total").values()) == {0.0}
        # ram_s 0.5 < pre_s: the agent's spool thread keeps moving each ring's older packets to disk.
        on_disk = lambda: {c for (c, where), v in ring_bytes(scrape(mport)).items() if where == "disk" and v > 0}  # noqa: E731
        wait_for(lambda: on_disk() == {"lawn", "hall", "lot"}, "every ring's older packets on disk")
        # Which weights run, and how much detection ran on motion regions only.
        assert m1[("xl_edge_detector_int8", ())] in (0.0, 1.0)
        assert m1[("xl_edge_decode_slots", ())] == 0  # no limit unless decoding.max_concurrent asks
        regions, detected = per_camera(m1, "xl_edge_frames_detected_regions_total"), per_camera(m1, "xl_edge_frames_detected_total")
        assert all(0 <= regions[c] <= detected[c] for c in detected)

        cfg.write_text(text.replace(HALL_ZONE, HALL_ZONE_2))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: scrape(mport)[("xl_edge_config_reloads_total", ())] == 1, "the reload")
        time.sleep(1.5)
        m2 = scrape(mport)
        started1 = per_camera(m1, "xl_edge_camera_started_timestamp_seconds")
        started2 = per_camera(m2, "xl_edge_camera_started_timestamp_seconds")
        assert started2["hall"] > started1["hall"]
        assert started2["lawn"] == started1["lawn"] and started2["lot"] == started1["lot"]
        dec1, dec2 = (
            per_camera(m1, "xl_edge_frames_decoded_total"),
            per_camera(m2, "xl_edge_frames_decoded_total"),
        )
        for cam in ("lawn", "lot"):  # the others kept their threads and their counters running
            assert dec2[cam] > dec1[cam] + 10, (cam, dec1, dec2)

        outbox_before = m2[("xl_edge_outbox_items", ())]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    lines = (tmp_path / "agent.log").read_text()
    assert rc == 0, lines[-3000:]
    assert elapsed < 10.0, elapsed
    assert '"restarted": ["hall"]' in lines and '"kept": ["lawn", "lot"]' in lines, lines[-3000:]
    # No central acknowledged anything: every item raised is still on disk, in a sound database.
    db = sqlite3.connect(tmp_path / "outbox" / "rt.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    events = db.execute("SELECT COUNT(*) FROM items WHERE kind = 'event'").fetchone()[0]
    journal = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    assert items >= outbox_before >= 1 and events >= journal >= 1


# -- systemd notify + watchdog ---------------------------------------------------------------------

WATCHED = """\
station: {{id: wd-s1}}
mqtt: {{host: 127.0.0.1, port: {port}}}
outbox: {{path: "{tmp}/o.sqlite"}}
media: {{dir: "{tmp}/media", clips: false}}
cameras:
  - id: cam-a
    source: "{clips}/indoor_one_by_one.mp4"
    loop: true
    stream: {{open_timeout_s: 1, read_timeout_s: 1, watchdog_s: 1}}
  - id: cam-b
    source: "{clips}/parking_lot_cars.mp4"
    loop: true
    stream: {{open_timeout_s: 1, read_timeout_s: 1, watchdog_s: 1}}
"""


class NotifyListener:
    """The systemd side: a datagram socket the agent's NOTIFY_SOCKET points at."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data.decode()))

    def pings_since(self, t: float) -> int:
        return sum(1 for ts, m in list(self.got) if ts >= t and m == "WATCHDOG=1")

    def close(self) -> None:
        self._stop.set()
        self._t.join()
        self.sock.close()


def test_watchdog_pings_stop_while_a_camera_loop_is_stalled(broker, tmp_path: Path, monkeypatch) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    cfg_file = tmp_path / "wd.yaml"
    cfg_file.write_text(WATCHED.format(port=broker.port, tmp=tmp_path, clips=CLIPS))
    agent = StationAgent(load_station_config(cfg_file))
    runner = agent.slots["cam-b"].runner
    gate = threading.Event()
    gate.set()
    real = runner.pipeline.analyse

    def maybe_stuck(prep):  # a detector that hangs: no exception, no progress
        gate.wait()
        return real(prep)

    runner.pipeline.analyse = maybe_stuck  # type: ignore[method-assign]
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: any(m.startswith("READY=1") for _, m in listener.got), "READY=1")
        t0 = time.monotonic()
        wait_for(lambda: listener.pings_since(t0) >= 3, "watchdog pings while healthy")
        gate.clear()  # cam-b hangs inside its loop
        wait_for(lambda: agent.stalled_parts() == ["camera cam-b"], "the stalled loop noticed", timeout_s=15)
        quiet = time.monotonic()
        time.sleep(2.0)
        assert listener.pings_since(quiet + 0.6) == 0, "pinged systemd while a camera loop was hung"
        gate.set()
        t1 = time.monotonic()
        wait_for(lambda: listener.pings_since(t1) >= 2, "pings again once the loop moves")
    finally:
        gate.set()
        agent.stop.set()
        t.join(15)
        listener.close()
    assert not t.is_alive()
    assert any(m == "STOPPING=1" for _, m in listener.got)


def test_notifier_addresses_and_watchdog_owner(tmp_path: Path) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": "@xl-test", "WATCHDOG_USEC": "20000000"})
    assert n.address == "\0xl-test" and n.ping_every_s == 10.0
    n.close()
    other = SystemdNotifier(
        {"NOTIFY_SOCKET": str(tmp_path / "s"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_s == 0.0 and not other.watchdog()  # meant for another process
    assert not other.ready()  # nobody listens: counted, never raised
    assert other.errors == 1
    other.close()
    off = SystemdNotifier({})
    assert not off.enabled and not off.ready() and not off.watchdog()


@pytest.fixture(autouse=True)
def _no_inherited_notify(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)


STOPPED = """\
station: {{id: stop-s1}}
mqtt: {{host: 127.0.0.1, port: {port}}}
outbox: {{path: "{tmp}/o.sqlite"}}
media: {{dir: "{tmp}/media", pre_s: 1, post_s: 1}}
cameras:
  - id: lawn
    source: "{clips}/campus_pedestrians_vtest.avi"
    loop: true
    zones: [{{id: all, points: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    rules: [{{id: anyone, zone: all}}]
  - id: lot
    source: "{clips}/parking_lot_cars.mp4"
    loop: true
"""


def _run_then_stop(cfg_file: Path) -> weakref.ref[StationAgent]:
    agent = StationAgent(load_station_config(cfg_file))
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    wait_for(lambda: all(r.pipeline.stats.detected > 3 for r in agent.runners), "detection running")
    agent.stop.set()
    t.join(20)
    assert not t.is_alive()
    return weakref.ref(agent)


def test_an_agent_stopped_while_its_cameras_run_leaves_no_thread_and_is_freed(broker, tmp_path: Path) -> None:
    # One process may run agent after agent (the benchmark's probes, an embedding service): a
    # stopped agent that stayed reachable kept every decoder (FFmpeg's threads) and clip ring.
    cfg_file = tmp_path / "stop.yaml"
    cfg_file.write_text(STOPPED.format(port=broker.port, tmp=tmp_path, clips=CLIPS))
    before = {t.ident for t in threading.enumerate()}
    native_before = len(os.listdir("/proc/self/task"))
    gone = _run_then_stop(cfg_file)
    left = [x.name for x in threading.enumerate() if x.ident not in before and x.is_alive()]
    assert left == [], f"threads left running after stop: {left}"
    gc.collect()
    assert gone() is None, "the stopped agent is still reachable"
    # Its decoders went with it, and FFmpeg's threads with them (native threads Python does not list).
    assert len(os.listdir("/proc/self/task")) <= native_before + 1
