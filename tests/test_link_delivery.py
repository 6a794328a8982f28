"""Station link end to end: real Mosquitto, real StationLink + SQLite outbox, real central app."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central.alerts.models import Alert
from central.app import create_app
from edge.commands import CommandHandler, Jpeg
from edge.outbox import Outbox
from tests.authkit import AUTH
from tests.linkkit import central_settings, health, jpeg, make_alert, make_link, station_id, wait_for
from wire.topics import media_topic, reply_topic, stats_topic, status_topic


def stored(app: FastAPI, station: str | None = None) -> int:
    with app.state.session_factory() as s:
        q = select(func.count()).select_from(Alert)
        if station:
            q = q.where(Alert.station == station)
        return s.scalar(q) or 0


@pytest.fixture
def central(broker, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(central_settings(broker.host, broker.port, tmp_path, fleet_silent_after_s=2.0))
    with TestClient(app, headers=AUTH) as client:
        wait_for(lambda: health(client)["mqtt_connected"], "central to subscribe")
        yield client


def test_events_are_removed_from_the_outbox_only_after_the_centre_acks(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite")
    link.start()
    try:
        msgs = [make_alert(st, seed=i) for i in range(20)]
        for m in msgs:
            assert link.submit_event(m)
        wait_for(lambda: stored(central.app, st) == 20, "20 alerts stored")
        wait_for(lambda: link.figures().items == 0, "the outbox to empty (acks)")
        assert link.counters.acked == 20
        assert health(central)["ingest"]["acks_sent"] >= 20
    finally:
        link.stop()
    ob = Outbox(tmp_path / "o.sqlite", 1 << 30)
    assert sorted(ob.journal()) == sorted(m.event_id for m in msgs)
    ob.close()


def test_outbox_survives_a_restart_while_the_centre_is_down(broker, tmp_path) -> None:
    st = station_id()
    path = tmp_path / "o.sqlite"
    link = make_link(broker.host, broker.port, st, path)
    link.start()
    wait_for(lambda: link.connected, "link connected")
    msgs = [make_alert(st, seed=i) for i in range(5)]
    for m in msgs:
        link.submit_event(m)
    wait_for(lambda: link.counters.published == 5, "5 publishes (nobody consumes them)")
    link.stop(flush_timeout_s=0)  # like a crash: nothing acknowledged
    assert Outbox(path, 1 << 30).count() == 5

    app = create_app(central_settings(broker.host, broker.port, tmp_path))
    with TestClient(app, headers=AUTH) as client:
        wait_for(lambda: health(client)["mqtt_connected"], "central to subscribe")
        link2 = make_link(broker.host, broker.port, st, path)
        link2.start()
        try:
            wait_for(lambda: stored(app, st) == 5, "the 5 outbox events after the restart")
            wait_for(lambda: link2.figures().items == 0, "outbox empty")
        finally:
            link2.stop()


def test_a_redelivered_event_is_stored_once_and_acked_again(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite")
    link.start()
    try:
        m = make_alert(st)
        link.submit_event(m)
        link.submit_event(m)  # two outbox items, one event id
        wait_for(lambda: link.figures().items == 0 and link.counters.acked == 2, "both items acked")
        assert stored(central.app, st) == 1
        assert health(central)["ingest"]["duplicates"] == 1
    finally:
        link.stop()


def test_media_is_chunked_verified_and_linked_to_its_event(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite")
    link.start()
    try:
        m = make_alert(st)
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(os.urandom(700_000))  # 3 chunks of 256 KiB
        sha = hashlib.sha256(clip.read_bytes()).hexdigest()
        link.submit_event(m)
        media_id = link.submit_media_file(
            clip, sha, camera="cam-1", kind="clip", content_type="video/mp4", event_id=m.event_id
        )
        items = wait_for(
            lambda: [i for i in central.get(f"/api/media?event_id={m.event_id}").json()["items"] if i["url"]],
            "the clip to be complete",
        )
        assert items[0]["media_id"] == media_id and items[0]["chunks"] == 3
        body = central.get(items[0]["url"]).content
        assert hashlib.sha256(body).hexdigest() == sha
        wait_for(lambda: link.figures().items == 0, "outbox empty")
        assert not list((tmp_path / "o.media").iterdir()), "the outbox's copy is deleted once delivered"
        with central.app.state.session_factory() as s:
            alert = s.scalar(select(Alert).where(Alert.event_id == m.event_id))
        beside = (central.app.state.settings.media_dir / alert.snapshot_path).with_suffix(".mp4")
        assert hashlib.sha256(beside.read_bytes()).hexdigest() == sha  # where the alerts API looks
    finally:
        link.stop()


def test_snapshot_request_from_the_centre_comes_back_through_the_outbox(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite", cameras=["cam-1"])
    image = jpeg(7, 320, 240)
    cmds = CommandHandler(link, st, ["cam-1"], lambda cam: Jpeg(image, 320, 240), None)
    link.on_command = cmds.submit
    cmds.start()
    link.start()
    try:
        wait_for(lambda: link.connected, "link connected")
        resp = central.post(f"/api/stations/{st}/cameras/cam-1/snapshot-request")
        assert resp.status_code == 202, resp.text
        status_url = resp.json()["status_url"]
        done = wait_for(lambda: (b := central.get(status_url).json())["media_url"] and b, "the snapshot")
        assert done["state"] == "ok"
        assert central.get(done["media_url"]).content == image
        # A clip needs a clip source, which this station has not: a clean refusal, not a hang.
        resp = central.post(f"/api/stations/{st}/cameras/cam-1/clip-request", json={"seconds": 5})
        url = resp.json()["status_url"]
        failed = wait_for(lambda: (b := central.get(url).json())["state"] != "sent" and b, "the clip reply")
        assert failed["state"] == "failed" and "clip" in failed["error"]
    finally:
        link.stop()
        cmds.stop()


def test_fleet_shows_online_stats_offline_and_silent_stations(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite", stats_interval_s=0.5)
    link.stats_fn = lambda: ([], 3, 0)
    link.start()

    def station() -> dict | None:
        return next((s for s in central.get("/api/fleet").json()["stations"] if s["station"] == st), None)

    try:
        s = wait_for(
            lambda: (x := station()) and x["online"] and x["queue_depth"] == 3 and x, "station online"
        )
        assert s["outbox"]["items"] == 0 and s["last_seen"]
    finally:
        link.stop()
    s = wait_for(lambda: (x := station()) and x["state"] == "offline" and x, "station offline")
    assert [a["kind"] for a in s["health_alerts"]] == ["offline"]

    # A station that says it is online and then goes quiet raises a "silent" health alert.
    quiet = station_id()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    status = {"v": 1, "station": quiet, "state": "online", "ts": "2030-01-01T00:00:00Z", "cameras": []}
    c.publish(status_topic(quiet), json.dumps(status), qos=1, retain=False).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()

    def quiet_alerts() -> list:
        row = next((s for s in central.get("/api/fleet").json()["stations"] if s["station"] == quiet), None)
        return row and [a["kind"] for a in row["health_alerts"]]

    assert wait_for(quiet_alerts, "a silent-station alert", timeout_s=10) == ["silent"]


BAD = [
    ("status", b"\x00\x01 not json"),
    ("stats", b'{"v": 1, "station": "x"}'),
    ("media", b'{"v": 9}'),
    ("reply", b"[]"),
]


def test_malformed_messages_on_every_topic_are_rejected_counted_and_not_stored(broker, central) -> None:
    st = station_id()
    topics = {"status": status_topic(st), "stats": stats_topic(st), "media": media_topic(st, "c"),
              "reply": reply_topic(st)}  # fmt: skip
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        for kind, payload in BAD:
            c.publish(topics[kind], payload, qos=1).wait_for_publish(5)
        c.publish(media_topic(st, "c"), b"x" * (4 * 1024 * 1024 + 1), qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()
    want = {"malformed_json": 1, "invalid_schema": 2, "unsupported_version": 1, "oversized": 1}
    wait_for(lambda: health(central)["ingest"]["rejected"] == want, f"rejections {want}")
    assert not [s for s in central.get("/api/fleet").json()["stations"] if s["station"] == st]
    assert central.get("/api/media").json()["items"] == []
    assert health(central)["status"] == "ok"


def test_two_central_instances_share_one_feed_without_loss_or_double_processing(broker, tmp_path) -> None:
    st = station_id()
    db = tmp_path / "shared"
    db.mkdir()
    apps = [
        create_app(central_settings(broker.host, broker.port, db, mqtt_shared_group="xl")) for _ in range(2)
    ]
    with TestClient(apps[0], headers=AUTH) as a, TestClient(apps[1], headers=AUTH) as b:
        for c in (a, b):
            wait_for(lambda c=c: health(c)["mqtt_connected"], "both instances subscribed")
        link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite")
        link.start()
        try:
            for i in range(40):
                link.submit_event(make_alert(st, seed=i))
            wait_for(lambda: stored(apps[0], st) == 40, "40 alerts in the shared store")
            wait_for(lambda: link.figures().items == 0, "outbox empty")
        finally:
            link.stop()
        counts = [health(c)["ingest"] for c in (a, b)]
    assert counts[0]["stored"] + counts[1]["stored"] == 40
    assert counts[0]["duplicates"] + counts[1]["duplicates"] == 0
    assert counts[0]["stored"] > 0 and counts[1]["stored"] > 0, "both members took a share"


def test_the_station_rejects_malformed_acks_and_commands_and_keeps_delivering(broker, central, tmp_path) -> None:
    st = station_id()
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite")
    link.start()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        wait_for(lambda: link.connected, "link connected")
        for topic, payload in ((f"xl/v1/{st}/ack", b"nope"), (f"xl/v1/{st}/ack", b'{"v":1,"ids":["a b"]}'),
                               (f"xl/v1/{st}/cmd/snapshot", b'{"v":1}'), ("xl/v1/_central/hello", b"{}")):  # fmt: skip
            c.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: sum(link.counters.bad_messages.values()) == 4, "4 bad messages counted")
        assert link.counters.bad_messages == {"ack": 2, "cmd": 1, "hello": 1}
        link.submit_event(make_alert(st))
        wait_for(lambda: link.counters.acked == 1, "delivery goes on")
    finally:
        c.disconnect()
        c.loop_stop()
        link.stop()


def test_a_shared_member_stopping_mid_stream_loses_nothing(broker, tmp_path) -> None:
    st = station_id()
    db = tmp_path / "shared"
    db.mkdir()
    survivor = create_app(central_settings(broker.host, broker.port, db, mqtt_shared_group="xl2"))
    leaver = create_app(central_settings(broker.host, broker.port, db, mqtt_shared_group="xl2"))
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite", ack_timeout_s=2.0)
    with TestClient(survivor, headers=AUTH) as a:
        wait_for(lambda: health(a)["mqtt_connected"], "survivor subscribed")
        with TestClient(leaver, headers=AUTH) as b:
            wait_for(lambda: health(b)["mqtt_connected"], "leaver subscribed")
            link.start()
            for i in range(300):
                link.submit_event(make_alert(st, seed=i))
            wait_for(lambda: stored(survivor, st) >= 10, "some alerts stored")
            left_at = stored(survivor, st)
        # The leaver is gone (its share of in-flight messages with it): the station re-sends.
        try:
            wait_for(lambda: stored(survivor, st) == 300, "all 300 alerts stored", timeout_s=60)
            wait_for(lambda: link.figures().items == 0, "outbox empty")
        finally:
            link.stop()
    assert left_at < 300, "the leaver left before the stream ended"


def test_an_alert_handed_over_while_a_clip_goes_out_overtakes_the_rest_of_the_clip(broker, tmp_path) -> None:
    """A clip's chunks take the link thread a while each (read, base64, publish); an alert handed
    over meanwhile goes out after the chunk in hand, not after the clip's whole pass."""
    st = station_id()
    arrivals: list[str] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{st}")
    sub.on_message = lambda c, u, msg: arrivals.append(msg.topic.rsplit("/", 1)[1])
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"xl/v1/{st}/+/+", qos=1)
    sub.loop_start()
    # No centre: nothing is acknowledged, so the window alone bounds a pass (256 / 4 = 64 chunks).
    link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite", window=256)
    link.start()
    try:
        wait_for(lambda: link.connected, "link connected")
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(os.urandom(64 * 256 * 1024))
        sha = hashlib.sha256(clip.read_bytes()).hexdigest()
        published = link.counters.published
        link.submit_media_file(clip, sha, camera="cam-1", kind="clip", content_type="video/mp4")
        deadline = time.monotonic() + 15
        while link.counters.published == published:  # spin until the clip's pass has begun
            assert time.monotonic() < deadline, "the clip's first chunk was never published"
        link.submit_event(make_alert(st))
        wait_for(lambda: len(arrivals) == 65, "the alert and the clip's 64 chunks", timeout_s=30)
    finally:
        link.stop(flush_timeout_s=0)
        sub.loop_stop()
        sub.disconnect()
    at = arrivals.index("event")
    assert 0 < at < 64, f"the alert came after {at} of the clip's 64 chunks"
