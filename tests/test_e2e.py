"""End to end with real parts: clip -> xl-edge (PyAV, ONNX, rules) -> Mosquitto -> xl-central -> API."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest

from tests.authkit import ADMIN_TOKEN, AUTH
from tests.conftest import CLIPS, free_port, wait_port

STATION = """\
station: {{id: e2e-station, name: e2e}}
mqtt: {{host: 127.0.0.1, port: {port}}}
media: {{dir: {media}}}
outbox: {{path: {outbox}}}
cameras:
  - id: lawn-cam
    source: {clip}
    realtime: false
    zones:
      - id: lawn
        points: [[0.0, 0.50], [0.30, 0.56], [0.55, 0.68], [0.80, 0.82], [1.0, 0.90], [1.0, 1.0], [0.0, 1.0]]
    rules:
      - {{id: lawn-intrusion, zone: lawn, classes: [person], min_frames: 2}}
"""


@pytest.fixture
def central(broker, tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "central", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--db", f"sqlite:///{tmp_path / 'c.db'}", "--media-dir", str(tmp_path / "media"),
         "--mqtt-host", broker.host, "--mqtt-port", str(broker.port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "XL_CENTRAL_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, timeout_s=30, proc=proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while not httpx.get(f"{url}/api/health").json().get("mqtt_connected"):
            assert time.monotonic() < deadline, "central never connected to the broker"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_clip_alerts_reach_the_central_api_with_snapshots(broker, central: str, tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    cfg.write_text(STATION.format(port=broker.port, clip=CLIPS / "campus_pedestrians_vtest.avi",
                                  media=tmp_path / "edge-media", outbox=tmp_path / "outbox.sqlite"))  # fmt: skip
    edge = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=240
    )
    assert edge.returncode == 0, edge.stderr[-3000:]

    deadline = time.monotonic() + 20
    while (body := httpx.get(f"{central}/api/alerts", headers=AUTH).json())["total"] < 2:
        assert time.monotonic() < deadline, f"alerts never arrived: {body}; edge log: {edge.stderr[-2000:]}"
        time.sleep(0.2)
    items = body["items"]
    assert {a["station"] for a in items} == {"e2e-station"}
    assert all(a["rule_kind"] == "intrusion" and a["zone"] == "lawn" for a in items)
    assert [a["ts"] for a in items] == sorted((a["ts"] for a in items), reverse=True)  # newest first
    for a in items:
        snap = httpx.get(f"{central}{a['snapshot_url']}", headers=AUTH)
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(snap.content).hexdigest() == a["snapshot_sha256"]

    # Every alert gets its clip; overlapping events of the camera share one clip, sent once.
    deadline = time.monotonic() + 60
    while True:
        items = httpx.get(f"{central}/api/alerts?limit=200", headers=AUTH).json()["items"]
        if all(a["clip_url"] for a in items):
            break
        assert time.monotonic() < deadline, (
            f"clips missing: {[a['id'] for a in items if not a['clip_url']]}; "
            f"edge log: {[ln for ln in edge.stderr.splitlines() if 'clip' in ln or 'link:' in ln][-8:]}"
        )
        time.sleep(0.5)
    clips = {a["id"]: httpx.get(f"{central}{a['clip_url']}", headers=AUTH) for a in items}
    assert all(r.status_code == 200 and r.headers["content-type"] == "video/mp4" for r in clips.values())
    shas = {hashlib.sha256(r.content).hexdigest() for r in clips.values()}
    assert len(shas) < len(items), f"{len(items)} alerts, {len(shas)} distinct clips: nothing was shared"
    one = tmp_path / "one.mp4"
    one.write_bytes(next(iter(clips.values())).content)
    with av.open(str(one)) as c:
        assert sum(1 for _ in c.decode(video=0)) > 25

    page = httpx.get(f"{central}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
