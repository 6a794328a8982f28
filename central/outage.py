"""The database going away and coming back.

While it is away every request, every message from a station and every scheduler round fails;
logging each with its stack trace buries the one line that matters. So the first failure of an
outage is logged once (a warning: where, and the driver's words), the return once, and meanwhile the
API answers 503 with a message the console shows, the ingest leaves the alert unacknowledged for its
station to send again (docs/mqtt.md), and ``GET /api/health`` says the database is down and since when.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

log = logging.getLogger(__name__)

UNAVAILABLE = "the database is unavailable; try again shortly"


def is_outage(exc: BaseException) -> bool:
    """A failure to reach the database (refused, dropped, timed out, SQLite unable to open or locked),
    as opposed to a bad statement or a constraint: those are bugs or bad data and keep their trace."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class DatabaseOutage:
    """Whether the database is down, shared by the API, the ingest and the scheduler (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: datetime | None = None
        self._down_mono = 0.0
        self._failures = 0
        self._error = ""
        self._back_mono = float("-inf")

    def failed(self, where: str, exc: BaseException) -> None:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since, self._down_mono = datetime.now(UTC), time.monotonic()
            self._failures += 1
            self._error = detail
        if first:
            log.warning(
                "database: unavailable (first seen by %s: %s); the API answers 503, stations' alerts wait "
                "in their outboxes and are sent again; further failures are only counted until it is back",
                where,
                detail,
            )

    def ok(self) -> None:
        if self._down_since is None:  # the common case, without the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            took, n = time.monotonic() - self._down_mono, self._failures
            self._down_since, self._failures, self._error = None, 0, ""
            self._back_mono = time.monotonic()
        log.warning("database: back after %.0f s (%d failed operations meanwhile)", took, n)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def back_for_s(self) -> float:
        """Seconds since the last outage ended (infinite when there was none)."""
        return time.monotonic() - self._back_mono

    def state(self) -> dict[str, Any]:
        with self._lock:
            since = self._down_since
            return {
                "up": since is None,
                "down_since": since.isoformat() if since else None,
                "failures": self._failures,
                "error": self._error,
            }

    def probe(self, session_factory: Any) -> bool:
        """``SELECT 1``: records the outage or the return; True when the database answered."""
        try:
            with session_factory() as s:
                s.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            self.failed("health check", exc)
            return False
        self.ok()
        return True
