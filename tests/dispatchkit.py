"""Fixtures for the dispatch, auth and console tests: one app per test on SQLite *or* PostgreSQL.

``db_url`` is parametrised over both backends; PostgreSQL uses a database of its own, created once
per session and dropped at the end; each test starts from empty tables. The server is the one at
``XL_TEST_PG`` when that is set (a SQLAlchemy URL without a database, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432``; a server that does not answer fails the tests),
else a private cluster that the session starts on a free port (``xltools.procs.start_postgres``) and
stops at the end. PostgreSQL is skipped only when its binaries are not installed (``make setup``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central.alerts.schemas import AlertOut
from central.alerts.service import store_alert
from central.app import create_app
from central.auth import service as auth
from central.auth.models import User
from central.auth.schemas import Role, UserIn
from central.clock import ManualClock
from central.db import Base
from central.settings import CentralSettings
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from wire import AlertMessage, Box, MediaBlob
from xltools.procs import start_postgres

# 2025-03-03 10:00 in Liyang (UTC+8): daytime, a school day.
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def jpeg(seed: int = 0) -> bytes:
    img = np.full((90, 160, 3), (40 + seed * 23) % 200, np.uint8)
    cv2.rectangle(img, (50, 20), (90, 80), (0, 0, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def alert_msg(
    station: str = "ly-s01", camera: str = "cam-lawn", ts: datetime = T0, rule_kind: str = "intrusion", seed: int = 0
) -> AlertMessage:
    return AlertMessage(
        event_id=uuid.uuid4().hex, station=station, camera=camera, rule="intrusion", rule_kind=rule_kind,  # type: ignore[arg-type]
        zone="watch", label="person", score=0.9, box=Box(x1=0.1, y1=0.2, x2=0.4, y2=0.9), track_id=3,
        pts_s=1.0, ts=ts, snapshot=MediaBlob.from_bytes(jpeg(seed), width_px=160, height_px=90),
    )  # fmt: skip


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (no database) of the server the session uses: ``XL_TEST_PG``, else a private cluster."""
    if os.environ.get("XL_TEST_PG"):
        yield os.environ["XL_TEST_PG"].rstrip("/")
        return
    try:
        pg = start_postgres(tmp_path_factory.mktemp("postgres"))
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield pg.url
    finally:
        pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (the shared test database of ``db_url`` is already migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    with temp_database(request.getfixturevalue("pg_server"), "xl_mig") as url:
        yield url


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    with temp_database(pg_server, "xl_test") as url:
        yield url


@contextlib.contextmanager
def temp_database(server: str, prefix: str) -> Iterator[str]:
    """A new, empty database on ``server``, dropped afterwards; fails the test if none answers."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL server at {server} does not answer: {exc.orig}")
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_pg(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        names = [t.name for t in Base.metadata.sorted_tables if t.name in tables]
        if names:
            with engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/central.db"
    url: str = request.getfixturevalue("pg_database")
    _empty_pg(url)
    return url


@dataclass
class Env:
    app: FastAPI
    admin: TestClient
    clock: ManualClock
    settings: CentralSettings

    def store(self, msg: AlertMessage) -> AlertOut:
        """Store like the ingest worker does, then run the same hook (grouping, order, announcement)."""
        with self.app.state.session_factory() as session:
            row, _ = store_alert(session, msg, self.settings.media_dir)
            out = AlertOut.from_row(row)
        self.app.state.runtime.on_alert_stored(out)
        return out

    def user(self, username: str, role: Role, station: str | None = None, worker: str | None = None) -> TestClient:
        """A client carrying an API token of a new user with this role and scope."""
        with self.app.state.session_factory() as session:
            data = UserIn(username=username, display_name=username, password=PASSWORD, role=role,  # type: ignore[arg-type]
                          station_id=station, worker_id=worker)  # fmt: skip
            row = auth.create_user(session, self.app.state.passwords, data, self.clock.now())
            _, raw = auth.issue_token(session, row, "api", "test", self.clock.now(), None)
        c = TestClient(self.app, headers={"Authorization": f"Bearer {raw}"})
        return c

    def order_of_alert(self, alert_id: int) -> dict[str, Any]:
        body = self.admin.get(f"/api/alerts/{alert_id}").json()
        return self.admin.get(f"/api/orders/{body['order_id']}").json()

    def act(self, client: TestClient, order_id: int, action: str, **kw: Any) -> Any:
        return client.post(f"/api/orders/{order_id}/actions", json={"action": action, **kw})

    def users(self) -> list[User]:
        with self.app.state.session_factory() as session:
            return list(session.scalars(sa.select(User)))


def make_env(db_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Env]:
    settings = CentralSettings(
        database_url=db_url, media_dir=tmp_path / "media", **{**TEST_AUTH_SETTINGS, **overrides}
    )
    clock = ManualClock(T0)
    app = create_app(settings, start_ingest=False, clock=clock)
    with TestClient(app, headers=AUTH) as admin:
        yield Env(app, admin, clock, settings)
    app.state.engine.dispose()


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)
