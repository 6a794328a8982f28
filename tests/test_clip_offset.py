"""Where an alert's event starts in its (possibly shared) clip: the end message's
``ClipInfo.event_offset_s`` is stored on the alert (``clip_offset_s``, migration 0003), exposed by the
alerts API, and the console's player seeks there.

Real parts throughout: the station's own code (ring, desk, evidence writer, ``to_message``) cuts one
clip for three overlapping events of a real stream; its messages and the clip go through a real
StationLink and Mosquitto to a real central app; the console runs in Debian's chromium; the store
path and the migration run on SQLite and the private PostgreSQL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from central import db
from central.alerts.models import Alert
from central.alerts.service import store_alert
from central.app import create_app
from central.models import import_all
from central.settings import CentralSettings
from edge.clips import ClipRecorder
from edge.events import EventDesk, EvidenceJob
from edge.evidence import EvidenceWriter
from edge.publish import to_message
from edge.sources import VideoSource
from edge.types import Event, EventPhase, RuleKind
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from tests.conftest import CLIPS, ROOT, Broker, free_port
from tests.dispatchkit import Env, alert_msg
from tests.linkkit import central_settings, health, jpeg, make_link, serve_central, wait_for
from wire import AlertMessage, MediaBlob
from wire.messages import ClipInfo

pytest_plugins = ["tests.dispatchkit"]

STATION, CAMERA = "ly-s01", "cam-lawn"  # in the reference data: the console's operator sees it
CHROMIUM = Path("/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
OP_PASSWORD = "operator-pass-01"


@dataclass(frozen=True)
class SharedClip:
    ids: list[str]  # in the order the events started
    starts: dict[str, AlertMessage]
    ends: dict[str, AlertMessage]
    path: Path  # the one clip file of the three events, as the station wrote it
    sha256: str


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> SharedClip:
    """Three overlapping events of a real stream through the station's code: one shared clip, and an
    end message per event saying where it starts in that clip (about 1.0, 1.6 and 4.6 s)."""
    rec = ClipRecorder(pre_s=1.0, post_s=1.0, share_s=30.0)
    desk = EventDesk(snapshot_window_s=0.0, recorder=rec)
    src = VideoSource(str(CLIPS / "campus_pedestrians_vtest.avi"), 5.0, realtime=False, on_packet=rec.push)
    ids = [uuid.uuid4().hex for _ in range(3)]
    script = {1.0: (0, EventPhase.START), 1.6: (1, EventPhase.START), 2.2: (0, EventPhase.END),
              4.0: (1, EventPhase.END), 4.6: (2, EventPhase.START), 5.4: (2, EventPhase.END)}  # fmt: skip
    jobs: list[EvidenceJob] = []
    for df in src.frames():
        hit = script.get(round(df.pts_s, 1))
        evs = [Event(ids[hit[0]], STATION, CAMERA, "intrusion", RuleKind.INTRUSION, "watch", "person", 0.8,
                     (0.1, 0.1, 0.3, 0.5), hit[0], df.pts_s, df.ts, phase=hit[1])] if hit else []  # fmt: skip
        jobs += desk.handle(evs, df, [])
        if df.pts_s > 8.0:
            break
    writer = EvidenceWriter(tmp_path_factory.mktemp("station") / "media")
    starts: dict[str, AlertMessage] = {}
    ends: dict[str, AlertMessage] = {}
    clips = []
    for job in jobs:
        ev, snap = writer.process(job)
        if writer.fresh_clip is not None:
            clips.append(writer.fresh_clip.events)
        if ev.phase is EventPhase.START:
            starts[ev.event_id] = to_message(ev, snap)
        elif ev.phase is EventPhase.END:
            ends[ev.event_id] = to_message(ev, snap)
    assert clips == [tuple(ids)] and set(starts) == set(ends) == set(ids)  # one clip for the three
    infos = [ends[e].clip for e in ids]
    assert all(c is not None for c in infos) and len({c.sha256 for c in infos if c}) == 1
    path = Path(infos[0].path)  # type: ignore[union-attr]
    offsets = [c.event_offset_s for c in infos if c]
    assert offsets == sorted(offsets) and offsets[2] - offsets[0] == pytest.approx(3.6, abs=0.11), offsets
    return SharedClip(ids, starts, ends, path, hashlib.sha256(path.read_bytes()).hexdigest())


def alert_updates(engine: sa.Engine) -> list[str]:
    """Every UPDATE of the alerts table the engine sends from now on (appended as they go)."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _record(_conn, _cursor, statement: str, *_args: object) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE ALERTS"):
            seen.append(statement)

    return seen


# -- through the link: real StationLink, Mosquitto and central app ---------------------------------


@pytest.fixture
def central(broker: Broker, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(central_settings(broker.host, broker.port, tmp_path))
    with TestClient(app, headers=AUTH) as client:
        wait_for(lambda: health(client)["mqtt_connected"], "central to subscribe")
        yield client


def _by_event(client: TestClient) -> dict[str, dict]:
    return {a["event_id"]: a for a in client.get("/api/alerts", params={"limit": 500}).json()["items"]}


def test_the_end_message_sets_the_offset_once_and_a_redelivery_changes_nothing(
    broker: Broker, central: TestClient, shared: SharedClip, tmp_path: Path
) -> None:
    a, b, c = shared.ids
    updates = alert_updates(central.app.state.engine)
    link = make_link(broker.host, broker.port, STATION, tmp_path / "o.sqlite", cameras=[CAMERA])
    link.start()
    try:
        for e in shared.ids:
            assert link.submit_event(shared.starts[e])
        wait_for(lambda: link.counters.acked == 3, "the three starts acknowledged")
        assert {e: x["clip_offset_s"] for e, x in _by_event(central).items()} == dict.fromkeys(shared.ids)
        assert updates == []

        # a and b end; c's end never comes (its alert keeps no offset).
        for e in (a, b):
            assert link.submit_event(shared.ends[e])
        wait_for(lambda: link.counters.acked == 5, "the two ends acknowledged")
        alerts = _by_event(central)
        assert len(alerts) == 3
        for e in (a, b):
            want = shared.ends[e].clip.event_offset_s  # type: ignore[union-attr]
            one = central.get(f"/api/alerts/{alerts[e]['id']}").json()
            assert one["clip_offset_s"] == alerts[e]["clip_offset_s"] == want
        assert alerts[c]["clip_offset_s"] is None
        assert len(updates) == 2  # one UPDATE per end
        ingest = health(central)["ingest"]
        assert (ingest["stored"], ingest["duplicates"]) == (3, 2)  # an end is not a new alert

        # The shared clip arrives once; each alert's clip is that file, the one its offset is in.
        assert link.submit_media_file(shared.path, shared.sha256, camera=CAMERA, kind="clip",
                                      content_type="video/mp4", event_id=a, event_ids=[b, c])  # fmt: skip
        wait_for(
            lambda: all(x["clip_url"] for x in _by_event(central).values()), "the clip beside every alert"
        )
        for e in shared.ids:
            body = central.get(f"/api/alerts/{alerts[e]['id']}/clip").content
            assert hashlib.sha256(body).hexdigest() == shared.sha256 == shared.ends[e].clip.sha256  # type: ignore[union-attr]

        # A redelivered end (a second outbox item of the same message): stored once, nothing written.
        wait_for(lambda: link.figures().items == 0, "the clip's chunks acknowledged")
        acked = link.counters.acked
        assert link.submit_event(shared.ends[a])
        wait_for(lambda: link.counters.acked == acked + 1, "the redelivery acknowledged")
        assert len(updates) == 2
        ingest = health(central)["ingest"]
        assert (ingest["stored"], ingest["duplicates"]) == (3, 3)
        assert {e: x["clip_offset_s"] for e, x in _by_event(central).items()} == {
            a: shared.ends[a].clip.event_offset_s,  # type: ignore[union-attr]
            b: shared.ends[b].clip.event_offset_s,  # type: ignore[union-attr]
            c: None,
        }
        assert central.get("/api/alerts").json()["total"] == 3
    finally:
        link.stop()


# -- the store path on both backends ---------------------------------------------------------------


def _clip(offset: float) -> ClipInfo:
    return ClipInfo(content_type="video/mp4", path="/var/lib/xl/media/c.mp4", sha256="a" * 64, size_bytes=1000,
                    duration_s=41.0, start_pts_s=100.0, event_offset_s=offset)  # fmt: skip


def _store(env: Env, msg: AlertMessage) -> tuple[Alert, bool]:
    with env.app.state.session_factory() as s:
        row, created = store_alert(s, msg, env.settings.media_dir)
        s.expunge(row)
        return row, created


def test_every_phase_is_stored_with_one_update_at_most(env: Env) -> None:
    updates = alert_updates(env.app.state.engine)
    start = alert_msg(ts=datetime.now(UTC))
    row, created = _store(env, start)
    assert created and row.clip_offset_s is None and updates == []
    assert env.admin.get(f"/api/alerts/{row.id}").json()["clip_offset_s"] is None

    end = start.model_copy(update={"phase": "end", "clip": _clip(32.5)})
    row, created = _store(env, end)
    assert not created and row.clip_offset_s == 32.5 and len(updates) == 1
    assert env.admin.get(f"/api/alerts/{row.id}").json()["clip_offset_s"] == 32.5
    assert _store(env, end)[0].clip_offset_s == 32.5 and len(updates) == 1  # a redelivery writes nothing

    # An end without a clip (the station could not write one) leaves the offset as it is.
    _store(env, start.model_copy(update={"phase": "end"}))
    assert env.admin.get(f"/api/alerts/{row.id}").json()["clip_offset_s"] == 32.5 and len(updates) == 1

    # An update with a better frame and (unusually) a clip: both in one UPDATE.
    better = MediaBlob.from_bytes(jpeg(7), width_px=64, height_px=48)
    row, _ = _store(env, start.model_copy(update={"phase": "update", "snapshot": better, "clip": _clip(0.0)}))
    assert (row.clip_offset_s, row.snapshot_sha256) == (0.0, better.sha256) and len(updates) == 2

    # An end whose start was lost creates the alert, offset included.
    lone = alert_msg(ts=datetime.now(UTC), seed=3).model_copy(update={"phase": "end", "clip": _clip(4.25)})
    row, created = _store(env, lone)
    assert created and row.clip_offset_s == 4.25 and len(updates) == 2
    assert env.admin.get(f"/api/alerts/{row.id}").json()["clip_offset_s"] == 4.25
    assert env.admin.get("/api/alerts").json()["total"] == 2


# -- the migration ---------------------------------------------------------------------------------


def _migrate(engine: sa.Engine, revision: str, down: bool = False) -> None:
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _columns(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {c["name"]: c for c in sa.inspect(conn).get_columns("alerts")}


def _old_alert(conn: sa.Connection) -> None:
    conn.execute(sa.insert(Alert.__table__).values(
        event_id="e" * 32, station="s", camera="c", rule="r", rule_kind="intrusion", zone="z", label="person",
        score=0.5, x1=0.1, y1=0.1, x2=0.2, y2=0.2, track_id=1, pts_s=1.0, ts=datetime.now(UTC),
        received_at=datetime.now(UTC), snapshot_path="d/e.jpg", snapshot_sha256="0" * 64, snapshot_size=1,
    ))  # fmt: skip


def _on_alerts(diff: object) -> bool:
    item = diff[0] if isinstance(diff, list) else diff
    parts = item[1:] if isinstance(item, tuple) else ()
    return any(
        p == "alerts"
        or getattr(p, "name", None) == "alerts"
        or getattr(getattr(p, "table", None), "name", None) == "alerts"
        for p in parts
    )


def test_migration_adds_a_nullable_offset_to_stored_alerts(fresh_db_url: str) -> None:
    import_all()
    engine = db.make_engine(fresh_db_url)
    try:
        _migrate(engine, "0002")
        assert "clip_offset_s" not in _columns(engine)
        with engine.begin() as conn:
            _old_alert(conn)
        _migrate(engine, "head")
        col = _columns(engine)["clip_offset_s"]
        assert col["nullable"] and isinstance(col["type"], sa.Float)
        with engine.connect() as conn:
            assert conn.execute(sa.select(Alert.event_id, Alert.clip_offset_s)).all() == [("e" * 32, None)]
            diff = compare_metadata(MigrationContext.configure(conn), db.Base.metadata)
        assert [d for d in diff if _on_alerts(d)] == []  # the alerts table is exactly the model
        db.migrate(engine)  # what the app does at start: nothing left to do
        _migrate(engine, "0002", down=True)
        assert "clip_offset_s" not in _columns(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(sa.table("alerts"))).scalar() == 1
    finally:
        engine.dispose()


def test_migration_leaves_an_alerts_table_made_by_the_newer_models_as_it_is(fresh_db_url: str) -> None:
    """A walking-skeleton database (``create_all``, no Alembic) made from these models has the column."""
    import_all()
    engine = db.make_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            Alert.__table__.create(conn)
        _migrate(engine, "head")
        assert "clip_offset_s" in _columns(engine)
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head
    finally:
        engine.dispose()


# -- the console: its player starts at the event ------------------------------------------------------


@dataclass
class Served:
    url: str
    app: object


@pytest.fixture
def served(broker: Broker, tmp_path: Path) -> Iterator[Served]:
    """The central app behind uvicorn (chromium needs a real server), consuming Mosquitto, with an
    operator of the station."""
    settings = CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db", media_dir=tmp_path / "media", mqtt_host=broker.host,
        mqtt_port=broker.port, mqtt_client_id=f"xl-central-ui-{uuid.uuid4().hex[:8]}", **TEST_AUTH_SETTINGS,
    )  # fmt: skip
    app = create_app(settings)
    with serve_central(app, free_port()) as url:
        user = {
            "username": "op1",
            "display_name": "op1",
            "password": OP_PASSWORD,
            "role": "operator",
            "station_id": STATION,
        }
        assert httpx.post(f"{url}/api/users", json=user, headers=AUTH).status_code == 201
        yield Served(url, app)


def clip_time(s: float) -> str:
    return f"{int(s) // 60}:{int(s) % 60:02d}"


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium missing: scripts/install-os-deps installs it"
)
def test_the_console_plays_a_shared_clip_from_the_alerts_event(
    broker: Broker, served: Served, shared: SharedClip, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    a, b, c = shared.ids
    link = make_link(broker.host, broker.port, STATION, tmp_path / "o.sqlite", cameras=[CAMERA])
    link.start()
    try:
        for e in shared.ids:
            link.submit_event(shared.starts[e])
        for e in shared.ids:
            link.submit_event(shared.ends[e])
        link.submit_media_file(shared.path, shared.sha256, camera=CAMERA, kind="clip", content_type="video/mp4",
                               event_id=a, event_ids=[b, c])  # fmt: skip
        with httpx.Client(base_url=served.url, headers=AUTH) as admin:
            ready = lambda: [x for x in admin.get("/api/alerts").json()["items"]  # noqa: E731
                             if x["clip_url"] and x["incident_id"] and x["clip_offset_s"] is not None]  # fmt: skip
            wait_for(lambda: len(ready()) == 3, "three alerts with their incident, clip and offset")
            alerts = {x["event_id"]: x for x in ready()}
            inc = admin.get(f"/api/incidents/{alerts[c]['incident_id']}").json()
    finally:
        link.stop()
    shown = [x for x in inc["alerts"] if x["clip_url"]][-1]  # the alert whose clip the console plays
    offset = shown["clip_offset_s"]
    assert offset == shared.ends[shown["event_id"]].clip.event_offset_s and offset > 0.5  # type: ignore[union-attr]

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(served.url + "/")
            page.fill("#login-user", "op1")
            page.fill("#login-pass", OP_PASSWORD)
            page.click("#login-submit")
            page.wait_for_selector("#app-view:not([hidden])")
            page.goto(f"{served.url}/#/incident/{inc['id']}")
            page.wait_for_selector("#incident-clip")
            v = "document.querySelector('#incident-clip')"
            page.wait_for_function(
                f"{v}.readyState >= 1 && !{v}.seeking && {v}.currentTime > 0", timeout=10000
            )
            at, duration = page.evaluate(f"[{v}.currentTime, {v}.duration]")
            assert at == pytest.approx(offset, abs=0.01) and duration > offset
            assert page.inner_text("#incident-clip-at").endswith(clip_time(offset))
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "test-artifacts" / "12-incident-clip-offset.png"), full_page=True)
            # It plays on from there; back at the start, the caption's link seeks to the event again.
            played = page.evaluate(f"""async () => {{ const v = {v}; v.muted = true; await v.play();
                await new Promise(r => setTimeout(r, 600)); v.pause(); return v.currentTime; }}""")  # fmt: skip
            assert played > offset + 0.1
            page.evaluate(f"{v}.currentTime = 0")
            page.wait_for_function(f"!{v}.seeking && {v}.currentTime === 0")
            page.click("#incident-clip-at")
            page.wait_for_function(
                f"!{v}.seeking && Math.abs({v}.currentTime - {offset}) < 0.01", timeout=5000
            )
            assert page.evaluate(f"{v}.error") is None
        finally:
            browser.close()
