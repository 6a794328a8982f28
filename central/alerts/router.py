"""HTTP API of alerts: list, detail, snapshot image, clip, live stream. Every route is scoped to the user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.alerts import export, service
from central.alerts.broadcast import Broadcaster
from central.alerts.models import Alert
from central.alerts.schemas import AlertOut, AlertPage
from central.auth.deps import CurrentUser
from central.auth.service import Principal
from central.deps import MAX_DB_INT, Offset, PathId, SessionDep, get_session
from central.dispatch.models import WorkOrder
from central.dispatch.scope import alert_filter
from central.dispatch.workflow import State
from central.incidents.models import IncidentAlert
from central.notify import accepts

__all__ = ["router", "get_session", "annotate"]

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

IdFilter = Annotated[str | None, Query(min_length=1, max_length=64)]


def _not_found(alert_id: PathId) -> HTTPException:
    return HTTPException(status_code=404, detail=f"alert {alert_id} not found")


def annotate(session: Session, rows: list[Alert], media_dir: Path) -> list[AlertOut]:
    """AlertOut with the incident, order, priority and clip of each alert."""
    ids = [r.id for r in rows]
    links: dict[int, tuple[int, int | None, int | None, str | None]] = {}
    if ids:
        q = (
            select(IncidentAlert.alert_id, IncidentAlert.incident_id, WorkOrder.id, WorkOrder.priority, WorkOrder.state)
            .outerjoin(WorkOrder, WorkOrder.incident_id == IncidentAlert.incident_id)
            .where(IncidentAlert.alert_id.in_(ids))
        )
        links = {a: (i, o, p, s) for a, i, o, p, s in session.execute(q)}
    out = []
    for r in rows:
        inc, order, prio, state = links.get(r.id, (None, None, None, None))
        clip = h264 = None
        if service.clip_file(r, media_dir) is not None:
            clip = f"/api/alerts/{r.id}/clip"
            h264 = f"{clip}/h264" if service.clip_file(r, media_dir, h264=True) is not None else None
        out.append(
            AlertOut.from_row(r, incident_id=inc, order_id=order, priority=prio, order_state=state,
                              clip_url=clip, clip_h264_url=h264)  # fmt: skip
        )
    return out


def _visible_alert(session: Session, alert_id: PathId, user: Principal) -> Alert:
    clause = alert_filter(user)
    query = select(Alert).where(Alert.id == alert_id)
    if clause is not None:
        query = query.where(clause)
    row = session.scalar(query)
    if row is None:
        raise _not_found(alert_id)  # out of scope looks the same as missing: no existence leak
    return row


def feed_filters(
    user: CurrentUser,
    station: IdFilter = None,
    camera: IdFilter = None,
    rule: IdFilter = None,
    state: Annotated[list[State] | None, Query(description="work-order states to keep")] = None,
    since: Annotated[AwareDatetime | None, Query(description="captured at or after (ISO 8601 with offset)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="captured before (ISO 8601 with offset)")] = None,
) -> dict[str, Any]:
    """The feed's filters and the user's scope, as ``service.list_alerts`` takes them: one definition
    for the list and its CSV export."""
    if since is not None and until is not None and since >= until:
        raise HTTPException(422, "since must be before until")
    return {"station": station, "camera": camera, "rule": rule, "states": [s.value for s in state or ()],
            "visible": alert_filter(user), "since": since, "until": until}  # fmt: skip


FeedFilters = Annotated[dict[str, Any], Depends(feed_filters)]


@router.get("", response_model=AlertPage)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    request: Request,
    filters: FeedFilters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    before: Annotated[int | None, Query(ge=1, le=MAX_DB_INT, description="cursor: alerts after this one")] = None,
) -> AlertPage:
    cursor = _visible_alert(session, before, user) if before is not None else None
    rows, total = service.list_alerts(session, limit=limit, offset=offset, before=cursor, **filters)
    items = annotate(session, rows, request.app.state.settings.media_dir)
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


# Declared before /{alert_id}, as the stream below: "export.csv" is not an id.
@router.get("/export.csv", response_class=StreamingResponse)
def export_alerts(session: SessionDep, request: Request, filters: FeedFilters) -> StreamingResponse:
    """The alerts the feed would list with these filters, newest first, as CSV (UTF-8, BOM)."""
    _, total = service.list_alerts(session, limit=1, **filters)
    if total > export.MAX_ROWS:
        raise HTTPException(422, f"{total} alerts match: narrow the filters (time range) to {export.MAX_ROWS} or fewer")
    app = request.app
    body = export.rows_csv(app.state.session_factory, annotate, app.state.settings.media_dir, filters)
    since = filters["since"]
    parts = (filters["station"], filters["camera"], since and since.date().isoformat())
    name = "-".join(["alerts", *(x for x in parts if x)]) + ".csv"
    return StreamingResponse(
        body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


# Declared before /{alert_id} so "stream" is not taken for an id.
@router.get("/stream", response_class=StreamingResponse)
async def stream_alerts(request: Request, user: CurrentUser) -> StreamingResponse:
    """Server-Sent Events: ``event: alert`` (AlertOut) and ``event: order`` (order changes) in the user's scope."""
    broadcaster: Broadcaster = request.app.state.broadcaster
    keepalive_s: float = request.app.state.settings.sse_keepalive_s

    async def events() -> AsyncIterator[str]:
        # Subscribe before the first byte goes out, so a client that has seen the opening
        # comment gets every alert stored after it.
        queue = broadcaster.subscribe(accepts(user))
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
def get_alert(alert_id: PathId, session: SessionDep, user: CurrentUser, request: Request) -> AlertOut:
    row = _visible_alert(session, alert_id, user)
    return annotate(session, [row], request.app.state.settings.media_dir)[0]


@router.get("/{alert_id}/snapshot", response_class=FileResponse)
def get_snapshot(alert_id: PathId, session: SessionDep, user: CurrentUser, request: Request) -> FileResponse:
    row = _visible_alert(session, alert_id, user)
    path = service.snapshot_file(row, request.app.state.settings.media_dir)
    if path is None:
        raise HTTPException(status_code=404, detail=f"snapshot of alert {alert_id} is missing")
    # Snapshots never change once written; private: only this user's browser may keep them.
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400, immutable"}
    )


@router.get("/{alert_id}/clip", response_class=FileResponse)
def get_clip(alert_id: PathId, session: SessionDep, user: CurrentUser, request: Request) -> FileResponse:
    """The alert's video clip (MP4), once the station has sent it; supports Range requests."""
    row = _visible_alert(session, alert_id, user)
    path = service.clip_file(row, request.app.state.settings.media_dir)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no clip for alert {alert_id} (yet)")
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{alert_id}/clip/h264", response_class=FileResponse)
def get_clip_h264(alert_id: PathId, session: SessionDep, user: CurrentUser, request: Request) -> FileResponse:
    """The H.264 copy of the alert's clip, made when the clip is in another codec (H.265 cameras)."""
    row = _visible_alert(session, alert_id, user)
    path = service.clip_file(row, request.app.state.settings.media_dir, h264=True)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no H.264 copy of the clip of alert {alert_id} (yet)")
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})
