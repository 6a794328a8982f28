"""Database engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and would hand back naive values, so it stores naive UTC and we
    re-attach UTC when reading; PostgreSQL uses ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets settings that let the ingest thread and the API share it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A database host that stops answering fails a connection in 5 s instead of the kernel's minutes:
        # requests then get their 503 (central/outage.py) while the host is away.
        args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
        return create_engine(url, pool_pre_ping=True, connect_args=args)

    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    database = parsed.database
    memory = not database or database == ":memory:"
    if database and not memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        # One shared connection, or every session would see its own empty database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not memory:
            # WAL: API readers are not blocked while the ingest thread writes.
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows stay readable after commit, e.g. for the SSE push.
    return sessionmaker(engine, expire_on_commit=False)


def create_all(engine: Engine) -> None:
    """Create missing tables of every model imported so far (no migrations)."""
    Base.metadata.create_all(engine)


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision, then create tables no migration covers yet.

    The second step keeps models added by other work usable before their migration lands; every
    table of a release has a migration (a test compares models and migrations).
    """
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    Base.metadata.create_all(engine)
