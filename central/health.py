"""``GET /api/health``: liveness plus the ingest counters an operator needs first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from central.ingest import AlertIngest
from central.outage import DatabaseOutage

router = APIRouter(prefix="/api", tags=["health"])

_NO_INGEST: dict[str, Any] = {"received": 0, "stored": 0, "duplicates": 0, "rejected": {}, "queued": 0}


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Always 200 while the process serves (liveness); ``status`` says "degraded" while the database
    is unreachable, and ``database`` since when and why."""
    ingest: AlertIngest | None = request.app.state.ingest
    outage: DatabaseOutage = request.app.state.db_outage
    up = outage.probe(request.app.state.session_factory)
    return {
        "status": "ok" if up else "degraded",
        "database": outage.state(),
        "mqtt_connected": ingest.connected if ingest is not None else False,
        "ingest": ingest.counters() if ingest is not None else dict(_NO_INGEST),
        "sse_clients": request.app.state.broadcaster.client_count,
    }
