"""Central HTTP API against a real SQLite database and media dir; alerts stored via the service."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central.alerts.models import Alert
from central.alerts.service import SnapshotError, store_alert
from central.app import create_app
from central.settings import CentralSettings
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from wire import AlertMessage, Box, MediaBlob
from wire.messages import ClipInfo

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def jpeg(seed: int = 0) -> bytes:
    img = np.full((48, 64, 3), seed * 37 % 256, np.uint8)
    cv2.rectangle(img, (8, 8), (40, 30), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def make_alert(
    station: str = "st-01", camera: str = "cam-1", ts: datetime = T0, seed: int = 0
) -> AlertMessage:
    return AlertMessage(
        event_id=uuid.uuid4().hex,
        station=station,
        camera=camera,
        rule="gate-intrusion",
        rule_kind="intrusion",
        zone="gate",
        label="person",
        score=0.87,
        box=Box(x1=0.1, y1=0.2, x2=0.4, y2=0.9),
        track_id=7,
        pts_s=12.5,
        ts=ts,
        snapshot=MediaBlob.from_bytes(jpeg(seed), width_px=64, height_px=48),
    )


@pytest.fixture
def settings(tmp_path: Path) -> CentralSettings:
    return CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db", media_dir=tmp_path / "media", **TEST_AUTH_SETTINGS
    )


@pytest.fixture
def app(settings: CentralSettings) -> FastAPI:
    return create_app(settings, start_ingest=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=AUTH) as c:
        yield c


Store = Callable[[AlertMessage], tuple[int, bool]]


@pytest.fixture
def store(app: FastAPI, client: TestClient) -> Store:
    """Stores through the service into the app's database (tables exist once ``client`` started)."""

    def _store(msg: AlertMessage) -> tuple[int, bool]:
        with app.state.session_factory() as session:
            alert, created = store_alert(session, msg, app.state.settings.media_dir)
            return alert.id, created

    return _store


def test_list_is_newest_first_by_capture_time(client: TestClient, store: Store) -> None:
    offsets_s = [0, 20, 10, 30]
    msgs = [make_alert(ts=T0 + timedelta(seconds=s)) for s in offsets_s]
    for m in msgs:
        store(m)

    body = client.get("/api/alerts").json()

    expected = [m.event_id for _, m in sorted(zip(offsets_s, msgs, strict=True), reverse=True)]
    assert [a["event_id"] for a in body["items"]] == expected
    assert body["total"] == 4


def test_pagination_reports_total_and_slices(client: TestClient, store: Store) -> None:
    for i in range(5):
        store(make_alert(ts=T0 + timedelta(seconds=i)))
    everything = client.get("/api/alerts").json()["items"]

    first = client.get("/api/alerts", params={"limit": 2}).json()
    last = client.get("/api/alerts", params={"limit": 2, "offset": 4}).json()
    beyond = client.get("/api/alerts", params={"limit": 2, "offset": 10}).json()

    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert first["items"] == everything[:2]
    assert (last["total"], len(last["items"])) == (5, 1)
    assert last["items"] == everything[4:]
    assert (beyond["total"], beyond["items"]) == (5, [])


def test_filters_by_station_and_camera(client: TestClient, store: Store) -> None:
    store(make_alert("st-01", "cam-1"))
    store(make_alert("st-01", "cam-2"))
    store(make_alert("st-02", "cam-1"))

    by_station = client.get("/api/alerts", params={"station": "st-01"}).json()
    by_both = client.get("/api/alerts", params={"station": "st-01", "camera": "cam-2"}).json()

    assert by_station["total"] == 2
    assert {a["station"] for a in by_station["items"]} == {"st-01"}
    assert [(a["station"], a["camera"]) for a in by_both["items"]] == [("st-01", "cam-2")]


def test_detail_round_trips_fields_and_utc_time(client: TestClient, store: Store) -> None:
    cst = timezone(timedelta(hours=8))
    msg = make_alert(ts=datetime(2025, 3, 1, 16, 30, 0, 250000, tzinfo=cst))
    alert_id, _ = store(msg)

    body = client.get(f"/api/alerts/{alert_id}").json()

    assert body["event_id"] == msg.event_id
    assert body["box"] == {"x1": 0.1, "y1": 0.2, "x2": 0.4, "y2": 0.9}
    assert (body["rule_kind"], body["label"], body["score"], body["track_id"]) == (
        "intrusion",
        "person",
        0.87,
        7,
    )
    assert datetime.fromisoformat(body["ts"]) == msg.ts
    assert datetime.fromisoformat(body["ts"]).utcoffset() == timedelta(0)
    assert datetime.fromisoformat(body["received_at"]).tzinfo is not None
    assert body["snapshot_url"] == f"/api/alerts/{alert_id}/snapshot"


def test_snapshot_bytes_are_served_from_dated_folder(
    client: TestClient, store: Store, settings: CentralSettings
) -> None:
    msg = make_alert(seed=3)
    alert_id, _ = store(msg)

    resp = client.get(f"/api/alerts/{alert_id}/snapshot")

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    assert resp.content == jpeg(3)
    assert (settings.media_dir / "2025-03-01" / f"{msg.event_id}.jpg").read_bytes() == jpeg(3)
    assert not list(settings.media_dir.rglob("*.tmp"))


@pytest.mark.parametrize("path", ["/api/alerts/999", "/api/alerts/999/snapshot"])
def test_unknown_alert_is_json_404(client: TestClient, path: str) -> None:
    resp = client.get(path)

    assert resp.status_code == 404
    assert resp.json() == {"detail": "alert 999 not found"}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"offset": -1}, {"station": ""}],
)
def test_invalid_query_is_422_with_reason(client: TestClient, params: dict[str, object]) -> None:
    resp = client.get("/api/alerts", params=params)

    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_limit_bounds_are_inclusive(client: TestClient) -> None:
    assert client.get("/api/alerts", params={"limit": 1}).status_code == 200
    assert client.get("/api/alerts", params={"limit": 500}).status_code == 200


def test_store_is_idempotent_on_event_id(client: TestClient, store: Store) -> None:
    msg = make_alert()

    first_id, first_created = store(msg)
    again_id, again_created = store(msg)

    assert (first_created, again_created) == (True, False)
    assert first_id == again_id
    assert client.get("/api/alerts").json()["total"] == 1


def test_bad_snapshot_checksum_stores_nothing(
    client: TestClient, store: Store, settings: CentralSettings
) -> None:
    good = make_alert()
    bad = good.model_copy(update={"snapshot": good.snapshot.model_copy(update={"sha256": "0" * 64})})

    with pytest.raises(SnapshotError):
        store(bad)

    assert client.get("/api/alerts").json()["total"] == 0
    assert not [p for p in settings.media_dir.rglob("*") if p.is_file()]


def test_health_without_ingest(client: TestClient) -> None:
    body = client.get("/api/health").json()

    assert body["status"] == "ok"
    assert body["mqtt_connected"] is False
    assert body["ingest"]["received"] == 0


def test_console_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")

    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "static/app.js" in page.text
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_an_update_with_a_better_snapshot_replaces_it_and_nothing_else_does(app: FastAPI, settings) -> None:
    start = make_alert(seed=1)
    with TestClient(app, headers=AUTH), app.state.session_factory() as session:
        alert, created = store_alert(session, start, settings.media_dir)
        assert created
        path = settings.media_dir / alert.snapshot_path
        assert path.read_bytes() == jpeg(1)
        # The end (or a re-sent start) with another picture leaves the stored one alone.
        for phase in ("end", "start"):
            other = start.model_copy(
                update={"phase": phase, "snapshot": MediaBlob.from_bytes(jpeg(2), 64, 48)}
            )
            store_alert(session, other, settings.media_dir)
            assert path.read_bytes() == jpeg(1)
        better = start.model_copy(
            update={"phase": "update", "snapshot": MediaBlob.from_bytes(jpeg(3), 64, 48)}
        )
        again, created = store_alert(session, better, settings.media_dir)
        assert not created and again.id == alert.id
        assert path.read_bytes() == jpeg(3) and again.snapshot_sha256 == better.snapshot.sha256
        assert again.snapshot_size == len(jpeg(3))


def test_later_phases_without_a_snapshot_keep_the_stored_one(app: FastAPI, settings) -> None:
    """Stations send the snapshot once: an end (or an update with no better frame) carries none."""
    start = make_alert(seed=4)
    clip = ClipInfo(content_type="video/mp4", path="st-01/cam-1/c.mp4", sha256="a" * 64, size_bytes=10,
                    duration_s=20.0, start_pts_s=2.5, event_offset_s=7.5)  # fmt: skip
    with TestClient(app, headers=AUTH), app.state.session_factory() as session:
        alert, _ = store_alert(session, start, settings.media_dir)
        path = settings.media_dir / alert.snapshot_path
        for phase in ("update", "end"):
            later = start.model_copy(update={"phase": phase, "snapshot": None, "clip": clip if phase == "end" else None})
            again, created = store_alert(session, later, settings.media_dir)
            assert not created and again.id == alert.id
        assert path.read_bytes() == jpeg(4) and again.snapshot_sha256 == start.snapshot.sha256
        assert again.clip_offset_s == 7.5
        # A later phase without a snapshot for an event never stored has nothing to show: refused.
        orphan = make_alert(seed=5).model_copy(update={"phase": "end", "snapshot": None})
        with pytest.raises(SnapshotError):
            store_alert(session, orphan, settings.media_dir)
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
