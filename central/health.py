"""``GET /api/health``: liveness plus the ingest counters an operator needs first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from central.ingest import AlertIngest

router = APIRouter(prefix="/api", tags=["health"])

_NO_INGEST: dict[str, Any] = {"received": 0, "stored": 0, "duplicates": 0, "rejected": {}, "queued": 0}


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    ingest: AlertIngest | None = request.app.state.ingest
    return {
        "status": "ok",
        "mqtt_connected": ingest.connected if ingest is not None else False,
        "ingest": ingest.counters() if ingest is not None else dict(_NO_INGEST),
        "sse_clients": request.app.state.broadcaster.client_count,
    }
