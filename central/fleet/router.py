"""``GET /api/fleet``; station commands for visual dispatch (live snapshot, recent clip)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet import service
from central.fleet.models import FleetCamera, StationCommand
from wire.link import Command
from wire.topics import ID_PATTERN

router = APIRouter(prefix="/api", tags=["fleet"])

IdPath = Annotated[str, Path(pattern=ID_PATTERN)]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


class ClipRequest(BaseModel):
    seconds: float = Field(10.0, gt=0.0, le=300.0)


@router.get("/fleet")
def get_fleet(request: Request, session: SessionDep) -> dict[str, Any]:
    """Per station and camera: online/offline, last seen, fps, queue depth, outbox, open health alerts."""
    return service.fleet_view(session, request.app.state.settings.fleet_silent_after_s)


def _send(
    request: Request, session: SessionDep, station: str, camera: str, kind: str, seconds: float
) -> dict:
    known = list(session.scalars(select(FleetCamera.camera).where(FleetCamera.station == station)))
    if known and camera not in known:
        raise HTTPException(404, f"station {station!r} reports no camera {camera!r} (it has {known})")
    ingest = request.app.state.ingest
    if ingest is None or not ingest.connected:
        raise HTTPException(503, "not connected to the broker; try again shortly")
    cmd = Command(
        cmd_id=uuid.uuid4().hex,
        station=station,
        camera=camera,
        kind=kind,
        seconds=seconds if kind == "clip" else 10.0,  # a snapshot ignores it
        ts=datetime.now(UTC),
    )
    row = service.create_command(session, cmd.cmd_id, station, camera, kind, seconds)
    if not ingest.publish_command(cmd):
        row.state, row.error = "failed", "could not publish the command"
        session.commit()
        raise HTTPException(503, "could not publish the command; try again shortly")
    return {"cmd_id": cmd.cmd_id, "state": row.state, "status_url": f"/api/commands/{cmd.cmd_id}"}


@router.post("/stations/{station}/cameras/{camera}/snapshot-request", status_code=202)
def snapshot_request(
    request: Request, session: SessionDep, station: IdPath, camera: IdPath
) -> dict[str, Any]:
    """Ask the station for a live snapshot of the camera; poll ``status_url`` for ``media_url``."""
    return _send(request, session, station, camera, "snapshot", 0.0)


@router.post("/stations/{station}/cameras/{camera}/clip-request", status_code=202)
def clip_request(
    request: Request, session: SessionDep, station: IdPath, camera: IdPath, body: ClipRequest | None = None
) -> dict[str, Any]:
    """Ask the station for a clip of the camera's last ``seconds``."""
    return _send(request, session, station, camera, "clip", (body or ClipRequest()).seconds)


@router.get("/commands/{cmd_id}")
def get_command(
    session: SessionDep, cmd_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
) -> dict[str, Any]:
    row = session.get(StationCommand, cmd_id)
    if row is None:
        raise HTTPException(404, f"command {cmd_id} not found")
    return service.command_view(session, row)
