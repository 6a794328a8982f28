"""Helpers of the link tests: a station link on a temporary outbox, a central app, alerts, waits."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from central.settings import CentralSettings
from edge.config import MqttConfig, OutboxConfig
from edge.link import StationLink
from tests.authkit import TEST_AUTH_SETTINGS
from wire import AlertMessage, Box, MediaBlob

TIMEOUT_S = 15.0


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def jpeg(seed: int = 0, w: int = 64, h: int = 48) -> bytes:
    img = np.full((h, w, 3), seed * 41 % 256, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (255, 255, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def make_alert(station: str, camera: str = "cam-1", seed: int = 0) -> AlertMessage:
    return AlertMessage(
        event_id=uuid.uuid4().hex,
        station=station,
        camera=camera,
        rule="yard-intrusion",
        rule_kind="intrusion",
        zone="yard",
        label="person",
        score=0.8,
        box=Box(x1=0.3, y1=0.3, x2=0.5, y2=0.8),
        track_id=seed,
        pts_s=1.0,
        ts=datetime.now(UTC),
        snapshot=MediaBlob.from_bytes(jpeg(seed), width_px=64, height_px=48),
    )


def station_id() -> str:
    return f"st-{uuid.uuid4().hex[:8]}"


def make_link(
    host: str, port: int, station: str, outbox: Path, cameras: list[str] | None = None, **kw: Any
) -> StationLink:
    mqtt_kw = {k: kw.pop(k) for k in ("username", "password", "stats_interval_s", "tls") if k in kw}
    mcfg = MqttConfig(host=host, port=port, client_id=f"xl-edge-{station}", **mqtt_kw)
    ocfg = OutboxConfig(path=str(outbox), **({"ack_timeout_s": 5.0, "flush_timeout_s": 5.0} | kw))
    return StationLink(mcfg, ocfg, station, cameras or ["cam-1"])


def central_settings(host: str, port: int, tmp: Path, **kw: Any) -> CentralSettings:
    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp}/central.db",
        "media_dir": tmp / "media",
        "mqtt_host": host,
        "mqtt_port": port,
        "mqtt_client_id": f"xl-central-test-{uuid.uuid4().hex[:8]}",
    }
    return CentralSettings(**{**base, **TEST_AUTH_SETTINGS, **kw})  # an admin token (tests.authkit.AUTH), a cheap hash


def health(client: Any) -> dict[str, Any]:
    resp = client.get("/api/health")
    assert resp.status_code == 200
    return resp.json()


def outbox_items(link: StationLink) -> int:
    return link.figures().items


@contextlib.contextmanager
def serve_central(app: Any, port: int) -> Iterator[str]:
    """``app`` behind a real uvicorn on ``port`` (a browser needs a real server), once it is up and
    subscribed to its broker; yields its base URL and stops it afterwards."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not (server.started and httpx.get(f"{url}/api/health").json().get("mqtt_connected")):
            assert time.monotonic() < deadline, "central did not start and subscribe"
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
