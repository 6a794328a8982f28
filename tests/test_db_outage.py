"""The centre's PostgreSQL stops under load and comes back: no alert is lost or stored twice, the API
answers 503 with a reason meanwhile (not 500s), the health check says so, the log says it once each
way, and the stations are not called silent for what the centre could not record."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central.alerts.models import Alert
from central.app import create_app
from central.fleet.models import HealthAlert
from tests.authkit import AUTH
from tests.linkkit import central_settings, health, make_alert, make_link, station_id, wait_for
from xltools.procs import Postgres, postgres_bindir, start_postgres


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Postgres]:
    try:
        postgres_bindir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server = start_postgres(tmp_path / "pg")
    engine = sa.create_engine(f"{server.url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE xl"))
    engine.dispose()
    yield server
    server.stop()


def test_a_database_outage_loses_nothing_and_says_so_once(broker, pg: Postgres, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    settings = central_settings(broker.host, broker.port, tmp_path, database_url=f"{pg.url}/xl",
                                fleet_silent_after_s=8.0, scheduler_interval_s=0.5)  # fmt: skip
    app = create_app(settings)
    st = station_id()

    def stored() -> tuple[int, int]:
        with app.state.session_factory() as s:
            return s.execute(select(func.count(), func.count(func.distinct(Alert.event_id))).where(Alert.station == st)).one()  # fmt: skip

    with TestClient(app, headers=AUTH) as client:
        wait_for(lambda: health(client)["mqtt_connected"], "central to subscribe")
        link = make_link(broker.host, broker.port, st, tmp_path / "o.sqlite", ack_timeout_s=1.0, resend_max_s=2.0,
                         stats_interval_s=5.0)  # fmt: skip
        quiet_st = station_id()  # a second station that only reports its health
        quiet = make_link(broker.host, broker.port, quiet_st, tmp_path / "q.sqlite", stats_interval_s=5.0)
        quiet.start()
        time.sleep(2.5)  # the two report at different times, as stations do
        link.start()
        try:
            before = [make_alert(st, seed=i) for i in range(5)]
            for m in before:
                link.submit_event(m)
            wait_for(lambda: stored() == (5, 5), "5 alerts stored")
            wait_for(lambda: {st, quiet_st} <= {s["station"] for s in client.get("/api/fleet").json()["stations"]}, "fleet")
            assert health(client)["database"]["up"] is True

            pg.pause()
            during = [make_alert(st, seed=10 + i) for i in range(5)]
            for m in during:
                link.submit_event(m)
            wait_for(lambda: health(client)["ingest"]["rejected"].get("store_failed", 0) >= 5, "failed stores")
            h = health(client)
            assert h["status"] == "degraded" and h["database"]["up"] is False and h["database"]["down_since"], h
            r = client.get("/api/alerts")
            assert r.status_code == 503 and "database is unavailable" in r.json()["detail"], r.text
            assert r.json()["code"] == "database_unavailable"
            assert r.headers["retry-after"] == "5"
            assert link.figures().items >= 5  # kept by the station, unacknowledged
            time.sleep(settings.fleet_silent_after_s + 1)  # longer than a station may go unheard

            pg.resume()
            wait_for(lambda: stored() == (10, 10), "all 10 alerts stored once", timeout_s=60)
            wait_for(lambda: link.figures().items == 0, "the station's outbox to empty")
            h = health(client)
            assert h["status"] == "ok" and h["database"]["up"] is True
            assert client.get("/api/alerts", params={"station": st}).json()["total"] == 10
            # Grouped and given orders as usual, although they arrived after the outage.
            items = client.get("/api/alerts", params={"station": st, "limit": 50}).json()["items"]
            assert all(a["incident_id"] and a["order_state"] for a in items), items
            # Stations kept reporting during the outage; none is called silent once it is back.
            wait_for(lambda: sum(s["station"] in (st, quiet_st) and s["online"]
                                 for s in client.get("/api/fleet").json()["stations"]) == 2, "stations online")  # fmt: skip
            time.sleep(settings.fleet_silent_after_s + 1)  # past the sweep's hold after the outage
            with app.state.session_factory() as s:
                assert s.scalar(select(func.count()).select_from(HealthAlert).where(
                    HealthAlert.station.in_([st, quiet_st]), HealthAlert.kind == "silent")) == 0  # fmt: skip
        finally:
            link.stop()
            quiet.stop()

    lines = [r for r in caplog.records if r.name.startswith("central")]
    down = [r for r in lines if "database: unavailable" in r.getMessage()]
    back = [r for r in lines if "database: back after" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1, [r.getMessage() for r in lines]
    assert not [r for r in lines if r.exc_info], [r.getMessage() for r in lines if r.exc_info]  # no trace per failure
