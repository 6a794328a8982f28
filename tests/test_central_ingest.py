"""Central ingest end to end: real Mosquitto, real paho publisher, real SQLite, real HTTP server."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central.app import create_app
from central.settings import CentralSettings
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from tests.linkkit import wait_for
from wire import AlertMessage, Box, MediaBlob, event_topic
from wire.messages import MAX_MESSAGE_BYTES

TIMEOUT_S = 10.0


def jpeg(seed: int = 0) -> bytes:
    img = np.full((48, 64, 3), seed * 41 % 256, np.uint8)
    cv2.circle(img, (32, 24), 12, (255, 255, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def make_alert(station: str = "st-01", camera: str = "cam-1", seed: int = 0) -> AlertMessage:
    return AlertMessage(
        event_id=uuid.uuid4().hex,
        station=station,
        camera=camera,
        rule="yard-loiter",
        rule_kind="loitering",
        zone="yard",
        label="person",
        score=0.66,
        box=Box(x1=0.3, y1=0.3, x2=0.5, y2=0.8),
        track_id=3,
        pts_s=4.0,
        ts=datetime.now(UTC),
        snapshot=MediaBlob.from_bytes(jpeg(seed), width_px=64, height_px=48),
    )


class Publisher:
    def __init__(self, client: mqtt.Client) -> None:
        self._client = client

    def send(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=TIMEOUT_S)
        assert info.is_published(), f"broker did not acknowledge the publish on {topic}"

    def alert(self, msg: AlertMessage) -> None:
        self.send(event_topic(msg.station, msg.camera), msg.to_json())


@pytest.fixture
def publisher(broker: Any) -> Iterator[Publisher]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    yield Publisher(client)
    client.disconnect()  # before loop_stop, which would otherwise wait out a 1 s select
    client.loop_stop()


@pytest.fixture
def settings(broker: Any, tmp_path: Path) -> CentralSettings:
    return CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db",
        media_dir=tmp_path / "media",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        # Own id per test: the session is persistent, so a shared id would carry messages over.
        mqtt_client_id=f"xl-central-test-{uuid.uuid4().hex[:8]}",
        **TEST_AUTH_SETTINGS,
    )


def health(client: TestClient | httpx.Client) -> dict[str, Any]:
    resp = client.get("/api/health")
    assert resp.status_code == 200
    return resp.json()


@pytest.fixture
def central(settings: CentralSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=AUTH) as client:
        wait_for(lambda: health(client)["mqtt_connected"], "central to subscribe")
        yield client


def test_alert_is_stored_with_its_snapshot(central: TestClient, publisher: Publisher) -> None:
    msg = make_alert(seed=5)

    publisher.alert(msg)

    items = wait_for(lambda: central.get("/api/alerts").json()["items"], "the alert to be listed")
    assert [a["event_id"] for a in items] == [msg.event_id]
    snap = central.get(items[0]["snapshot_url"])
    assert snap.status_code == 200
    assert hashlib.sha256(snap.content).hexdigest() == msg.snapshot.sha256 == items[0]["snapshot_sha256"]
    counters = health(central)["ingest"]
    assert (counters["received"], counters["stored"], counters["rejected"]) == (1, 1, {})


def test_redelivery_is_stored_once(central: TestClient, publisher: Publisher) -> None:
    msg = make_alert()

    publisher.alert(msg)
    publisher.alert(msg)

    wait_for(lambda: health(central)["ingest"]["duplicates"] == 1, "the duplicate to be counted")
    assert health(central)["ingest"]["stored"] == 1
    assert central.get("/api/alerts").json()["total"] == 1


def _with_bad_sha(msg: AlertMessage) -> bytes:
    doc = json.loads(msg.to_json())
    doc["snapshot"]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    return json.dumps(doc).encode()


def _with_version(msg: AlertMessage, v: int) -> bytes:
    return json.dumps(json.loads(msg.to_json()) | {"v": v}).encode()


def _without_snapshot(msg: AlertMessage, phase: str) -> bytes:
    return json.dumps(json.loads(msg.to_json()) | {"phase": phase, "snapshot": None}).encode()


_GOOD = make_alert("st-01", "cam-1")
_TOPIC = event_topic("st-01", "cam-1")
BAD_MESSAGES = {
    "garbage": (_TOPIC, b"\xff\xd8\x00\x13garbage\x9c", "malformed_json"),
    "truncated_json": (_TOPIC, _GOOD.to_json()[:40], "malformed_json"),
    "wrong_schema": (_TOPIC, b'{"hello": "world"}', "invalid_schema"),
    "future_version": (_TOPIC, _with_version(_GOOD, 2), "unsupported_version"),
    "station_mismatch": (event_topic("st-99", "cam-1"), _GOOD.to_json(), "topic_mismatch"),
    "bad_sha256": (_TOPIC, _with_bad_sha(_GOOD), "bad_snapshot"),
    # Only later phases may leave the snapshot out, and only for an event the centre holds.
    "start_without_snapshot": (_TOPIC, _without_snapshot(_GOOD, "start"), "invalid_schema"),
    "end_of_unknown_event_without_snapshot": (_TOPIC, _without_snapshot(_GOOD, "end"), "bad_snapshot"),
    "oversized": (_TOPIC, b" " * (MAX_MESSAGE_BYTES + 1), "oversized"),
}


@pytest.mark.parametrize("case", BAD_MESSAGES.keys())
def test_bad_message_is_rejected_and_service_keeps_serving(
    central: TestClient, publisher: Publisher, settings: CentralSettings, case: str
) -> None:
    topic, payload, reason = BAD_MESSAGES[case]

    publisher.send(topic, payload)

    wait_for(lambda: health(central)["ingest"]["rejected"].get(reason) == 1, f"a {reason} rejection")
    assert health(central)["ingest"]["rejected"] == {reason: 1}
    assert central.get("/api/alerts").json()["total"] == 0
    assert not [p for p in settings.media_dir.rglob("*") if p.is_file()]
    # Still consuming: a good alert after the bad one is stored.
    publisher.alert(make_alert())
    wait_for(lambda: health(central)["ingest"]["stored"] == 1, "a good alert after the bad one")


def test_rejections_are_logged_once_per_reason(
    central: TestClient, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="central.ingest")

    for _ in range(3):
        publisher.send(_TOPIC, b"not json")
    publisher.send(_TOPIC, b"{}")

    wait_for(
        lambda: health(central)["ingest"]["rejected"] == {"malformed_json": 3, "invalid_schema": 1},
        "four rejections",
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "central.ingest"]
    assert sum("malformed_json" in m for m in logged) == 1
    assert sum("invalid_schema" in m for m in logged) == 1
    assert all(_TOPIC in m for m in logged)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: FastAPI) -> Iterator[httpx.Client]:
    """Run ``app`` under a real uvicorn in a thread; yields a client for its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "uvicorn to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT_S, headers=AUTH) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(TIMEOUT_S)


def open_stream(stack: ExitStack, client: httpx.Client) -> Iterator[str]:
    resp = stack.enter_context(client.stream("GET", "/api/alerts/stream"))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    lines = resp.iter_lines()
    # The opening comment is sent after the subscription exists: from here on nothing is missed.
    for line in lines:
        if line == ": connected":
            return lines
    pytest.fail("stream ended before its opening comment")


def next_event(lines: Iterator[str]) -> tuple[str, dict[str, Any]]:
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event:
            return event, json.loads(line.removeprefix("data: "))
    pytest.fail("stream ended before an event")


def test_sse_pushes_new_alerts_to_every_client(settings: CentralSettings, publisher: Publisher) -> None:
    with serve(create_app(settings)) as http:
        wait_for(lambda: health(http)["mqtt_connected"], "central to subscribe")
        with ExitStack() as streams:
            first = open_stream(streams, http)
            second = open_stream(streams, http)
            assert health(http)["sse_clients"] == 2
            msg = make_alert(seed=9)

            publisher.alert(msg)

            for lines in (first, second):
                event, alert = next_event(lines)
                assert event == "alert"
                assert alert["event_id"] == msg.event_id
                assert alert["snapshot_url"] == f"/api/alerts/{alert['id']}/snapshot"
        # Closing the browsers' connections must free their subscriptions.
        wait_for(lambda: health(http)["sse_clients"] == 0, "disconnected SSE clients to be dropped")


@contextmanager
def own_broker(tmp: Path, port: int) -> Iterator[None]:
    """A Mosquitto this test may stop and restart on a fixed port (the shared one must stay up)."""
    conf = tmp / "mosquitto-own.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), f"mosquitto on port {port}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT_S)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_reconnects_when_the_broker_comes_and_goes(tmp_path: Path) -> None:
    port = _free_port()
    settings = CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db",
        media_dir=tmp_path / "media",
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_client_id=f"xl-central-test-{uuid.uuid4().hex[:8]}",
    )
    with TestClient(create_app(settings)) as central:
        # Started before its broker: serves HTTP anyway and reports that it is not connected.
        assert health(central)["mqtt_connected"] is False
        with own_broker(tmp_path, port):
            wait_for(lambda: health(central)["mqtt_connected"], "the first connection")
        wait_for(lambda: not health(central)["mqtt_connected"], "the loss to be noticed")

        with own_broker(tmp_path, port):
            wait_for(lambda: health(central)["mqtt_connected"], "the reconnection")
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            client.connect("127.0.0.1", port)
            client.loop_start()
            try:
                Publisher(client).alert(make_alert())
            finally:
                client.disconnect()
                client.loop_stop()
            wait_for(lambda: health(central)["ingest"]["stored"] == 1, "an alert after the reconnection")
