"""start_postgres: a private PostgreSQL cluster on a free port that works and really stops."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from xltools.procs import postgres_bindir, start_postgres


def test_private_cluster_serves_and_stops(tmp_path: Path) -> None:
    try:
        postgres_bindir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    t0 = time.monotonic()
    pg = start_postgres(tmp_path / "pg")
    try:
        started_s = time.monotonic() - t0
        assert pg.port != 5432
        assert pg.url == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}"
        assert started_s < 30, f"took {started_s:.1f}s to start"
        engine = sa.create_engine(f"{pg.url}/postgres")
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)"))
                conn.execute(sa.text("INSERT INTO t (name) VALUES ('雪亮'), ('b')"))
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT id, name FROM t ORDER BY id")).all()
                port = conn.execute(sa.text("SHOW port")).scalar_one()
        finally:
            engine.dispose()
        assert [tuple(r) for r in rows] == [(1, "雪亮"), (2, "b")]
        assert int(port) == pg.port
    finally:
        pg.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", pg.port), timeout=2):
        pass
    assert not (pg.datadir / "postmaster.pid").exists()
    pg.stop()  # idempotent
