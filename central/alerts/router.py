"""HTTP API of alerts: list, detail, snapshot image, live stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session

from central.alerts import service
from central.alerts.broadcast import Broadcaster
from central.alerts.schemas import AlertOut, AlertPage

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

IdFilter = Annotated[str | None, Query(min_length=1, max_length=64)]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _not_found(alert_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"alert {alert_id} not found")


@router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    station: IdFilter = None,
    camera: IdFilter = None,
) -> AlertPage:
    rows, total = service.list_alerts(session, limit=limit, offset=offset, station=station, camera=camera)
    return AlertPage(items=[AlertOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset)


# Declared before /{alert_id} so "stream" is not taken for an id.
@router.get("/stream", response_class=StreamingResponse)
async def stream_alerts(request: Request) -> StreamingResponse:
    """Server-Sent Events: ``event: alert`` with an AlertOut per newly stored alert."""
    broadcaster: Broadcaster = request.app.state.broadcaster
    keepalive_s: float = request.app.state.settings.sse_keepalive_s

    async def events() -> AsyncIterator[str]:
        # Subscribe before the first byte goes out, so a client that has seen the opening
        # comment gets every alert stored after it.
        queue = broadcaster.subscribe()
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), timeout=keepalive_s)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    # A comment keeps proxies from closing an idle connection.
                    yield ": keep-alive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            # Runs on normal end and when Starlette cancels us on client disconnect.
            broadcaster.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: int, session: SessionDep) -> AlertOut:
    row = service.get_alert(session, alert_id)
    if row is None:
        raise _not_found(alert_id)
    return AlertOut.from_row(row)


@router.get("/{alert_id}/snapshot", response_class=FileResponse)
def get_snapshot(alert_id: int, session: SessionDep, request: Request) -> FileResponse:
    row = service.get_alert(session, alert_id)
    if row is None:
        raise _not_found(alert_id)
    path = service.snapshot_file(row, request.app.state.settings.media_dir)
    if path is None:
        raise HTTPException(status_code=404, detail=f"snapshot of alert {alert_id} is missing")
    # Snapshots never change once written, so browsers may keep them.
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400, immutable"}
    )
