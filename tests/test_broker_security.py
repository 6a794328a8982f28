"""Mosquitto with provisioned credentials and the pattern ACL (xltools/broker.py): a station may
publish only under its own prefix and read only its own acks and commands."""

from __future__ import annotations

import queue
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central.alerts.models import Alert
from central.app import create_app
from tests.authkit import AUTH
from tests.linkkit import central_settings, health, make_alert, make_link, wait_for
from wire.topics import command_topic, event_topic
from xltools.broker import CENTRAL_USER, Credentials, provision
from xltools.procs import Broker, start_mosquitto

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Credentials]]:
    d = tmp_path_factory.mktemp("secure-broker")
    creds = provision(d / "auth", ["sec-a", "sec-b"])
    b = start_mosquitto(d, extra_conf=creds.broker_conf())
    yield b, creds
    b.stop()


def connect(b: Broker, user: str | None, password: str | None) -> tuple[mqtt.Client, queue.Queue, Any]:
    events: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: events.put(("connack", rc))
    c.on_subscribe = lambda _c, _u, _m, rcs, _p: events.put(("suback", rcs))
    c.on_message = lambda _c, _u, m: events.put(("msg", m.topic))
    c.connect_async(b.host, b.port)
    c.loop_start()
    kind, rc = events.get(timeout=10)
    assert kind == "connack"
    return c, events, rc


def close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def test_wrong_or_missing_credentials_are_refused(secured) -> None:
    b, creds = secured
    for user, pw in (("sec-a", creds.users["sec-b"]), ("sec-a", "guess"), (None, None), ("nobody", "x")):
        c, _, rc = connect(b, user, pw)
        close(c)
        assert rc.is_failure, f"{user!r} with a wrong password was let in"
    c, _, rc = connect(b, "sec-a", creds.users["sec-a"])
    close(c)
    assert not rc.is_failure


def test_a_station_cannot_use_another_stations_prefix_or_read_its_commands(secured, tmp_path) -> None:
    b, creds = secured
    settings = central_settings(b.host, b.port, tmp_path, mqtt_username=CENTRAL_USER,
                                mqtt_password=creds.users[CENTRAL_USER], mqtt_shared_group="xl")  # fmt: skip
    app = create_app(settings)
    with TestClient(app, headers=AUTH) as central:
        wait_for(lambda: health(central)["mqtt_connected"], "central (own user, shared group) subscribed")
        spy, events, _ = connect(b, "sec-a", creds.users["sec-a"])
        try:
            spy.subscribe([("xl/v1/sec-b/cmd/+", 1), ("xl/v1/sec-b/ack", 1), ("xl/v1/sec-a/cmd/+", 1)])
            # Mosquitto 2.0.11 grants the SUBACK and filters on delivery by the read ACL (checked
            # below: nothing of sec-b's ever reaches this client).
            kind, _codes = events.get(timeout=10)
            assert kind == "suback"
            forged = make_alert("sec-b")
            spy.publish(event_topic("sec-b", "cam-1"), forged.to_json(), qos=1)
            # Station a, with its own credentials, through the real link and outbox: delivered and acked.
            link = make_link(b.host, b.port, "sec-a", tmp_path / "a.sqlite", username="sec-a",
                             password=creds.users["sec-a"])  # fmt: skip
            link.start()
            try:
                own = make_alert("sec-a")
                link.submit_event(own)
                wait_for(lambda: link.counters.acked == 1, "station a's own alert acked")
                # The centre commands station b: station a must not see it.
                cmd = app.state.ingest
                from datetime import UTC, datetime

                from wire.link import Command

                assert cmd.publish_command(Command(cmd_id="a" * 32, station="sec-b", camera="cam-1",
                                                   kind="snapshot", ts=datetime.now(UTC)))  # fmt: skip
                spy.publish(command_topic("sec-a", "snapshot"), b"{}", qos=1)  # a station may not command
                bad = link.counters.bad_messages
            finally:
                link.stop()
        finally:
            close(spy)
        assert bad == {}, "a station must not be able to write its own ack/cmd topics"
        with app.state.session_factory() as s:
            stations = list(s.scalars(select(Alert.station)))
            assert stations == ["sec-a"], "the forged alert under sec-b's prefix must not arrive"
            assert s.scalar(select(func.count()).select_from(Alert)) == 1
    seen = []
    while not events.empty():
        seen.append(events.get_nowait())
    assert all("sec-b" not in t for k, t in seen if k == "msg"), seen
    assert ("msg", "xl/v1/sec-a/cmd/snapshot") not in seen


def test_provision_script_writes_hashed_passwords_and_acl(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "provision-broker"), "--out", str(tmp_path), "s1", "s2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "provisioned 2 station(s)" in out.stdout
    passwd = (tmp_path / "passwd").read_text()
    assert {line.split(":")[0] for line in passwd.splitlines()} == {"s1", "s2", CENTRAL_USER}
    assert "$7$" in passwd or "$6$" in passwd  # hashed, never plain
    assert "pattern write xl/v1/%u/+/event" in (tmp_path / "acl").read_text()
    assert oct((tmp_path / "credentials.json").stat().st_mode & 0o777) == "0o600"
