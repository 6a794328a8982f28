"""Evidence media received from stations: list by event, download when complete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.media import service
from central.media.models import MediaItem

router = APIRouter(prefix="/api/media", tags=["media"])
Hex32 = r"^[0-9a-f]{32}$"


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def media_out(m: MediaItem, event_ids: list[str] | None = None) -> dict[str, Any]:
    """``event_ids``: the further events sharing the clip, as on the wire (``event_id`` excluded)."""
    return {
        "media_id": m.media_id, "station": m.station, "camera": m.camera, "kind": m.kind,
        "content_type": m.content_type, "event_id": m.event_id,
        "event_ids": [e for e in event_ids or () if e != m.event_id], "cmd_id": m.cmd_id, "sha256": m.sha256,
        "size_bytes": m.size_bytes, "received_chunks": m.received, "chunks": m.count, "state": m.state,
        "rendition": m.rendition,
        "url": f"/api/media/{m.media_id}" if m.state == "complete" else None,
    }  # fmt: skip


@router.get("")
def list_media(
    session: SessionDep,
    event_id: Annotated[str | None, Query(pattern=Hex32)] = None,
    cmd_id: Annotated[str | None, Query(pattern=Hex32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    q = select(MediaItem)
    if event_id:  # its own media and the clips it shares with other events
        q = q.where(service.serves(event_id))
    if cmd_id:
        q = q.where(MediaItem.cmd_id == cmd_id)
    rows = list(session.scalars(q.order_by(MediaItem.created_at.desc()).limit(limit)))
    events = service.events_by_media(session, [m.media_id for m in rows])
    return {"items": [media_out(m, events.get(m.media_id)) for m in rows]}


@router.get("/{media_id}", response_class=FileResponse)
def get_media(
    request: Request, session: SessionDep, media_id: Annotated[str, Path(pattern=Hex32)]
) -> FileResponse:
    m = session.get(MediaItem, media_id)
    if m is None:
        raise HTTPException(404, f"media {media_id} not found")
    path = service.media_file(m, request.app.state.settings.media_dir)
    if path is None:
        raise HTTPException(404, f"media {media_id} is {m.state}, not available")
    return FileResponse(
        path, media_type=m.content_type, headers={"Cache-Control": "private, max-age=86400, immutable"}
    )
