"""Role and object checks for routers that do not take a principal themselves (fleet, media).

Applied in ``create_app`` as a router-wide dependency: admins and dispatchers pass; a station
operator passes only for paths about their own station (``{station}``, or a media item or a
station command of it: the status of a live snapshot they asked for);
grid workers do not pass (their evidence comes through their orders' alerts).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from central.auth.deps import CurrentUser
from central.auth.schemas import Role
from central.deps import SessionDep
from central.fleet.models import StationCommand
from central.media.models import MediaItem


def station_staff(request: Request, user: CurrentUser, session: SessionDep) -> None:
    if user.role in (Role.ADMIN, Role.DISPATCHER):
        return
    if user.role is not Role.OPERATOR:
        raise HTTPException(status_code=403, detail=f"role {user.role.value} may not do this")
    params = request.path_params
    station = params.get("station")
    if station is None and "media_id" in params:
        item = session.get(MediaItem, params["media_id"])
        station = item.station if item is not None else None
        if station != user.station_id:
            raise HTTPException(status_code=404, detail=f"media {params['media_id']} not found")
    if station is None and "cmd_id" in params:
        cmd = session.get(StationCommand, params["cmd_id"])
        station = cmd.station if cmd is not None else None
        if station != user.station_id:
            raise HTTPException(status_code=404, detail=f"command {params['cmd_id']} not found")
    if station is None:
        raise HTTPException(status_code=403, detail="operators see their own station only; ask a dispatcher")
    if station != user.station_id:
        raise HTTPException(status_code=404, detail=f"station {station} not found")
