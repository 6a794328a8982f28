"""Visual dispatch against a real agent: live snapshot and "clip of the last N s" via the centre's API."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from central.app import create_app
from tests.authkit import AUTH
from tests.conftest import CLIPS
from tests.linkkit import central_settings, health, station_id, wait_for

STATION = """\
station: {{id: {id}}}
mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 1}}
outbox: {{path: "{outbox}"}}
media: {{dir: "{media}"}}
cameras:
  - id: gate
    source: {clip}
    realtime: true
    loop: true
"""


def test_live_snapshot_and_recent_clip_from_a_running_agent(broker, tmp_path: Path) -> None:
    st = station_id()
    cfg = tmp_path / "st.yaml"
    cfg.write_text(STATION.format(id=st, port=broker.port, outbox=tmp_path / "o.sqlite", media=tmp_path / "m",
                                  clip=CLIPS / "campus_pedestrians_vtest.avi"))  # fmt: skip
    app = create_app(central_settings(broker.host, broker.port, tmp_path))
    with TestClient(app, headers=AUTH) as central:
        wait_for(lambda: health(central)["mqtt_connected"], "central subscribed")
        edge = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            def camera_online() -> bool:
                s = next((x for x in central.get("/api/fleet").json()["stations"] if x["station"] == st), None)
                return bool(s and s["cameras"] and s["cameras"][0]["state"] == "online" and s["cameras"][0]["fps_in"] > 0)

            wait_for(camera_online, "the camera online with fps in the fleet view", timeout_s=60)
            snap = central.post(f"/api/stations/{st}/cameras/gate/snapshot-request").json()
            clip = central.post(f"/api/stations/{st}/cameras/gate/clip-request", json={"seconds": 3}).json()
            done = wait_for(lambda: (b := central.get(snap["status_url"]).json())["media_url"] and b, "snapshot", timeout_s=60)
            img = cv2.imdecode(np.frombuffer(central.get(done["media_url"]).content, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[:2] == (576, 768)
            done = wait_for(lambda: (b := central.get(clip["status_url"]).json())["state"] != "sent" and b, "clip", timeout_s=60)
            assert done["state"] == "ok", done
            def clip_media() -> dict | None:
                items = central.get(f"/api/media?cmd_id={clip['cmd_id']}").json()["items"]
                return items[0] if items and items[0]["url"] else None

            got = wait_for(clip_media, "the clip file", timeout_s=60)
            body = central.get(got["url"]).content
            assert len(body) > 1000 and hashlib.sha256(body).hexdigest() == got["sha256"]
        finally:
            edge.send_signal(signal.SIGTERM)
            _, err = edge.communicate(timeout=60)
        assert edge.returncode == 0, err[-2000:]
