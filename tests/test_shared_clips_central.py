"""One clip shared by several events of a camera, at the centre: every event's alert gets the clip,
whichever arrives first; retention keeps it while any of its events is held; old single-event
chunks work as before; a chunk that names other events than the earlier chunks of its media is
refused; the ``media_events`` migration on a database with and without the table."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import db
from central.alerts.models import Alert
from central.alerts.schemas import AlertOut
from central.alerts.service import clip_file, store_alert
from central.app import create_app
from central.media import service as media
from central.media.models import MediaEvent, MediaItem
from central.models import import_all
from central.retention import sweep_quota
from tests.authkit import AUTH
from tests.dispatchkit import Env, alert_msg
from tests.linkkit import central_settings, health, make_alert, station_id, wait_for
from wire import AlertMessage
from wire.link import MediaChunk
from wire.topics import event_topic, media_topic

pytest_plugins = ["tests.dispatchkit"]


def clip_chunks(
    data: bytes, chunk: int, event_id: str | None, event_ids: list[str] | None = None, *,
    media_id: str | None = None, station: str = "ly-s01", camera: str = "cam-lawn",
) -> list[MediaChunk]:  # fmt: skip
    """The chunks of one MP4 clip, as the station sends them (every chunk names the same events)."""
    media_id = media_id or uuid.uuid4().hex
    n = math.ceil(len(data) / chunk)
    return [
        MediaChunk(
            media_id=media_id,
            station=station,
            camera=camera,
            kind="clip",
            content_type="video/mp4",
            event_id=event_id,
            event_ids=event_ids or [],
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            chunk_bytes=chunk,
            index=i,
            count=n,
            data_b64=base64.b64encode(data[i * chunk : (i + 1) * chunk]).decode(),
        )  # fmt: skip
        for i in range(n)
    ]


def receive_alert(env: Env, msg: AlertMessage) -> AlertOut:
    """What the ingest does with an alert (``AlertIngest._on_event``), then the runtime's hook."""
    with env.app.state.session_factory() as s:
        row, created = store_alert(s, msg, env.settings.media_dir)
        if created:  # its clip may have arrived first
            media.place_clips_beside_alert(s, msg.event_id, env.settings.media_dir)
        out = AlertOut.from_row(row)
    env.app.state.runtime.on_alert_stored(out)
    return out


def receive_chunks(env: Env, chunks: list[MediaChunk]) -> list[str]:
    with env.app.state.session_factory() as s:
        return [media.store_chunk(s, c, env.settings.media_dir) for c in chunks]


def clip_of(env: Env, alert: AlertOut) -> bytes | None:
    r = env.admin.get(f"/api/alerts/{alert.id}/clip")
    return r.content if r.status_code == 200 else None


def test_a_clip_shared_by_three_events_reaches_all_three_alerts(env: Env) -> None:
    first, second, third = (alert_msg(seed=i) for i in range(3))
    a = receive_alert(env, first)  # one alert before its clip...
    data = os.urandom(2500)
    chunks = clip_chunks(data, 1000, first.event_id, [second.event_id, third.event_id])
    assert receive_chunks(env, [chunks[2], chunks[0], chunks[0], chunks[1]]) == [
        "stored", "stored", "duplicate", "complete",
    ]  # fmt: skip
    assert clip_of(env, a) == data
    b, c = receive_alert(env, second), receive_alert(env, third)  # ...two after it
    assert clip_of(env, b) == data and clip_of(env, c) == data
    body = env.admin.get(f"/api/alerts/{c.id}").json()
    assert body["clip_url"] == f"/api/alerts/{c.id}/clip"

    media_id = chunks[0].media_id
    with env.app.state.session_factory() as s:
        item = s.get(MediaItem, media_id)
        assert media.events_of(s, item) == [first.event_id, *sorted([second.event_id, third.event_id])]
        assert set(s.scalars(select(MediaEvent.event_id).where(MediaEvent.media_id == media_id))) == {
            first.event_id, second.event_id, third.event_id,
        }  # fmt: skip
        stored = media.media_file(item, env.settings.media_dir)
        beside = [clip_file(s.get(Alert, x.id), env.settings.media_dir) for x in (a, b, c)]
    # One file on disk under four names: the media file and one beside each alert's snapshot.
    assert len({os.stat(p).st_ino for p in [stored, *beside]}) == 1
    for event in (first, second, third):
        items = env.admin.get(f"/api/media?event_id={event.event_id}").json()["items"]
        assert [(i["media_id"], i["event_id"]) for i in items] == [(media_id, first.event_id)]
        assert items[0]["event_ids"] == sorted([second.event_id, third.event_id])
        assert env.admin.get(items[0]["url"]).content == data


def test_an_old_style_chunk_serves_its_one_event(env: Env) -> None:
    msg, other = alert_msg(seed=1), alert_msg(seed=2)
    data = os.urandom(1500)
    chunks = clip_chunks(data, 1000, msg.event_id)  # no event_ids: a station before shared clips
    assert receive_chunks(env, chunks) == ["stored", "complete"]
    alert, unrelated = receive_alert(env, msg), receive_alert(env, other)
    assert clip_of(env, alert) == data and clip_of(env, unrelated) is None
    items = env.admin.get(f"/api/media?event_id={msg.event_id}").json()["items"]
    assert [(i["media_id"], i["event_ids"]) for i in items] == [(chunks[0].media_id, [])]
    assert env.admin.get(f"/api/media?event_id={other.event_id}").json()["items"] == []
    with env.app.state.session_factory() as s:
        rows = s.execute(select(MediaEvent.media_id, MediaEvent.event_id)).all()
    assert rows == [(chunks[0].media_id, msg.event_id)]


def test_a_shared_clip_is_linked_only_beside_alerts_of_its_own_camera(env: Env) -> None:
    mine, elsewhere = alert_msg(camera="cam-lawn", seed=1), alert_msg(camera="cam-gate", seed=2)
    a, b = receive_alert(env, mine), receive_alert(env, elsewhere)
    data = os.urandom(800)
    assert receive_chunks(env, clip_chunks(data, 1000, mine.event_id, [elsewhere.event_id])) == ["complete"]
    assert clip_of(env, a) == data
    assert clip_of(env, b) is None  # a station names an event of another camera: not its evidence


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    import_all()
    engine = db.make_engine(f"sqlite:///{tmp_path}/c.db")
    db.create_all(engine)
    with db.make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_a_chunk_naming_other_events_than_its_media_is_refused(session: Session, tmp_path: Path) -> None:
    mdir = tmp_path / "media"
    e1, e2, e3 = (uuid.uuid4().hex for _ in range(3))
    data = os.urandom(3000)
    c = clip_chunks(data, 1000, e1, [e2, e3])
    assert media.store_chunk(session, c[0], mdir) == "stored"
    # The same set of events, in another order, with a repeat, or another one first: the same media.
    again = c[1].model_copy(update={"event_ids": [e3, e2, e3]})
    assert media.store_chunk(session, again, mdir) == "stored"
    swapped = c[0].model_copy(update={"event_id": e2, "event_ids": [e1, e3]})
    assert media.store_chunk(session, swapped, mdir) == "duplicate"
    # Another set of events (one missing, one more, none): refused, nothing stored.
    for events in ([e2], [e2, e3, uuid.uuid4().hex], []):
        with pytest.raises(media.MediaError, match="disagrees"):
            media.store_chunk(session, c[2].model_copy(update={"event_ids": events}), mdir)
    assert session.get(MediaItem, c[0].media_id).received == 2
    assert media.store_chunk(session, c[2], mdir) == "complete"
    with pytest.raises(media.MediaError, match="disagrees"):  # also once complete
        media.store_chunk(session, c[0].model_copy(update={"event_ids": [e2]}), mdir)
    # An old-style media (one event) takes no chunk that adds events to it.
    old = clip_chunks(data, 1000, e1)
    assert media.store_chunk(session, old[0], mdir) == "stored"
    with pytest.raises(media.MediaError, match="disagrees"):
        media.store_chunk(session, old[1].model_copy(update={"event_ids": [e2]}), mdir)
    assert media.store_chunk(session, old[1], mdir) == "stored"


def test_media_stored_before_media_events_is_still_found_by_its_event(
    session: Session, tmp_path: Path
) -> None:
    """An item with no ``media_events`` rows (stored by an older centre, table made by create_all)."""
    mdir = tmp_path / "media"
    eid = uuid.uuid4().hex
    data = os.urandom(500)
    chunk = clip_chunks(data, 1000, eid)[0]
    assert media.store_chunk(session, chunk, mdir) == "complete"
    session.execute(sa.delete(MediaEvent))
    session.commit()
    item = session.get(MediaItem, chunk.media_id)
    assert media.events_of(session, item) == [eid]
    assert media.store_chunk(session, chunk, mdir) == "duplicate"  # its chunks still agree
    assert list(session.scalars(select(MediaItem.media_id).where(media.serves(eid)))) == [chunk.media_id]
    media.hold_evidence(session, eid)
    later = datetime.now(UTC) + timedelta(days=40)
    assert media.sweep_retention(session, mdir, 30 * 86400, now=later)["kept_held"] == 1
    media.release_evidence(session, eid)
    assert media.sweep_retention(session, mdir, 30 * 86400, now=later)["media"] == 1


def mp4_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.mp4") if ".partial" not in p.parts]


def test_retention_keeps_a_shared_clip_while_any_of_its_events_is_held(env: Env) -> None:
    msgs = [alert_msg(seed=i) for i in range(3)]
    alerts = [receive_alert(env, m) for m in msgs]
    data = os.urandom(1200)
    chunks = clip_chunks(data, 1000, msgs[0].event_id, [msgs[1].event_id, msgs[2].event_id])
    assert receive_chunks(env, chunks) == ["stored", "complete"]
    mdir, held = env.settings.media_dir, msgs[2].event_id  # the last event is held, not the first
    later = datetime.now(UTC) + timedelta(days=40)
    with env.app.state.session_factory() as s:
        media.hold_evidence(s, held)
        counts = media.sweep_retention(s, mdir, 30 * 86400, now=later)
        item = s.get(MediaItem, chunks[0].media_id)
        assert counts["media"] == 0 and counts["kept_held"] == 2  # the clip and the held alert
        assert item.state == "complete" and media.media_file(item, mdir).read_bytes() == data
    assert clip_of(env, alerts[2]) == data  # the held alert keeps its snapshot and clip...
    assert env.admin.get(f"/api/alerts/{alerts[2].id}/snapshot").status_code == 200
    assert [clip_of(env, a) for a in alerts[:2]] == [None, None]  # ...the others' names are gone
    with env.app.state.session_factory() as s:
        media.release_evidence(s, held)
        counts = media.sweep_retention(s, mdir, 30 * 86400, now=later)
        assert counts["media"] == 1 and counts["clips"] == 1 and counts["kept_held"] == 0
        assert s.get(MediaItem, chunks[0].media_id).state == "expired"
    assert clip_of(env, alerts[2]) is None
    assert mp4_files(mdir) == []  # no name of the clip is left: its bytes are freed


def test_quota_keeps_a_shared_clip_while_any_of_its_events_is_held(env: Env) -> None:
    msgs = [alert_msg(seed=i) for i in range(3)]
    alerts = [receive_alert(env, m) for m in msgs]
    data = os.urandom(4000)
    chunks = clip_chunks(data, 4000, msgs[0].event_id, [msgs[1].event_id, msgs[2].event_id])
    assert receive_chunks(env, chunks) == ["complete"]
    mdir = env.settings.media_dir
    with env.app.state.session_factory() as s:
        # The alerts' incident has an open order (held by the quota too): close them all first.
        s.execute(sa.text("UPDATE work_orders SET state = 'closed'"))
        s.commit()
        media.hold_evidence(s, msgs[1].event_id)
        stats = sweep_quota(s, mdir, quota_bytes=0)
        item = s.get(MediaItem, chunks[0].media_id)
        assert item.state == "complete" and stats.held_bytes == len(data)
    assert clip_of(env, alerts[1]) == data
    assert [clip_of(env, a) for a in (alerts[0], alerts[2])] == [None, None]
    with env.app.state.session_factory() as s:
        media.release_evidence(s, msgs[1].event_id)
        sweep_quota(s, mdir, quota_bytes=0)
        assert s.get(MediaItem, chunks[0].media_id).state == "expired"
    assert mp4_files(mdir) == []


def test_shared_clip_through_the_ingest_over_mqtt(broker, tmp_path: Path) -> None:
    """The real path: alerts and chunks published to the broker, stored by the centre's ingest."""
    st = station_id()
    app = create_app(central_settings(broker.host, broker.port, tmp_path))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        with TestClient(app, headers=AUTH) as central:
            wait_for(lambda: health(central)["mqtt_connected"], "central to subscribe")
            first, second, third, single = (make_alert(st, seed=i) for i in range(4))

            def send(topic: str, payload: bytes) -> None:
                pub.publish(topic, payload, qos=1).wait_for_publish(10)

            def clip(event_id: str) -> bytes | None:
                items = central.get("/api/alerts", params={"station": st}).json()["items"]
                row = next((i for i in items if i["event_id"] == event_id), None)
                if row is None or not row["clip_url"]:
                    return None
                return central.get(row["clip_url"]).content

            send(event_topic(st, "cam-1"), first.to_json())
            wait_for(lambda: len(central.get("/api/alerts", params={"station": st}).json()["items"]) == 1,
                     "the first alert")  # fmt: skip
            data = os.urandom(3000)
            shared = clip_chunks(data, 1024, first.event_id, [second.event_id, third.event_id],
                                 station=st, camera="cam-1")  # fmt: skip
            for c in reversed(shared):
                send(media_topic(st, "cam-1"), c.to_json())
            wait_for(lambda: clip(first.event_id) == data, "the shared clip beside the first alert")
            for m in (second, third):
                send(event_topic(st, "cam-1"), m.to_json())
            wait_for(lambda: clip(second.event_id) == data and clip(third.event_id) == data,
                     "the shared clip beside the later alerts")  # fmt: skip
            # A station before shared clips: one clip, one event.
            own = os.urandom(900)
            send(event_topic(st, "cam-1"), single.to_json())
            for c in clip_chunks(own, 1024, single.event_id, station=st, camera="cam-1"):
                send(media_topic(st, "cam-1"), c.to_json())
            wait_for(lambda: clip(single.event_id) == own, "the single-event clip")
            # A chunk of the shared clip that names other events is refused for good.
            bad = shared[0].model_copy(update={"event_ids": [second.event_id]})
            send(media_topic(st, "cam-1"), bad.to_json())
            wait_for(lambda: health(central)["ingest"]["rejected"].get("bad_media") == 1, "the refusal")
            assert [clip(m.event_id) for m in (first, second, third)] == [data] * 3
    finally:
        pub.loop_stop()
        pub.disconnect()


# -- the migration ---------------------------------------------------------------------------------


def _upgrade(engine: sa.Engine, revision: str) -> None:
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _old_item(conn: sa.Connection, media_id: str, event_id: str | None) -> None:
    conn.execute(sa.insert(MediaItem.__table__).values(
        media_id=media_id, station="s", camera="c", kind="clip", content_type="video/mp4", event_id=event_id,
        sha256="0" * 64, size_bytes=1, chunk_bytes=1, count=1, received=0, state="partial", path="",
        created_at=datetime.now(UTC),
    ))  # fmt: skip


@pytest.mark.parametrize("table_first", [False, True], ids=["no-table", "table-by-create_all"])
def test_migration_adds_media_events_and_copies_old_items(fresh_db_url: str, table_first: bool) -> None:
    import_all()
    engine = db.make_engine(fresh_db_url)
    try:
        _upgrade(engine, "0001")
        old, cmd, e = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
        with engine.begin() as conn:
            MediaItem.__table__.create(conn)  # media tables come from create_all (no migration yet)
            if table_first:  # a newer centre ran create_all before this migration was applied
                MediaEvent.__table__.create(conn)
                conn.execute(sa.insert(MediaEvent.__table__).values(media_id=old, event_id=e))
            _old_item(conn, old, e)
            _old_item(conn, cmd, None)  # a requested clip: no event
        _upgrade(engine, "head")
        with engine.connect() as conn:
            rows = conn.execute(sa.select(MediaEvent.media_id, MediaEvent.event_id)).all()
            indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("media_events")}
            pk = sa.inspect(conn).get_pk_constraint("media_events")["constrained_columns"]
        assert rows == [(old, e)]
        assert indexes == {"ix_media_events_event": ["event_id"]} and sorted(pk) == ["event_id", "media_id"]
        db.migrate(engine)  # what the app does at start: nothing left to do
        cfg = db.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
            assert not sa.inspect(conn).has_table("media_events")
    finally:
        engine.dispose()
