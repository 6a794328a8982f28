"""``/api/reference/<kind>``: read for every signed-in user, write for admins. Plus the health wall.

(The "live snapshot" request of a camera is the fleet router's, which sends the MQTT command.)"""



from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from central.alerts.models import Alert
from central.auth.deps import AdminUser, CurrentUser, StaffUser
from central.deps import ClockDep, SessionDep
from central.dispatch.models import WorkOrder
from central.dispatch.scope import station_visible
from central.dispatch.service import OPEN_STATES
from central.fleet.service import fleet_view
from central.stations import service
from central.stations.models import Camera, Station

router = APIRouter(prefix="/api", tags=["reference"])
RowId = Annotated[str, Path(min_length=1, max_length=130, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


def _kind_routes(kind: service.Kind) -> None:
    schema_in, schema_out = kind.schema_in, kind.schema_out

    def list_rows(_user: CurrentUser, session: SessionDep) -> list[Any]:
        return [schema_out.model_validate(r) for r in service.list_rows(session, kind)]

    def get_row(row_id: RowId, _user: CurrentUser, session: SessionDep) -> Any:
        row = service.get_row(session, kind, row_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"{kind.name} {row_id} not found")
        return schema_out.model_validate(row)

    def put_row(
        row_id: RowId, body: Annotated[schema_in, Body()], _admin: AdminUser, session: SessionDep, response: Response  # type: ignore[valid-type]
    ) -> Any:
        try:
            row, created = service.upsert_row(session, kind, row_id, body)
        except service.Conflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        response.status_code = 201 if created else 200
        return schema_out.model_validate(row)

    def delete_row(row_id: RowId, _admin: AdminUser, session: SessionDep) -> None:
        try:
            found = service.delete_row(session, kind, row_id)
        except service.Conflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        if not found:
            raise HTTPException(status_code=404, detail=f"{kind.name} {row_id} not found")

    base = f"/reference/{kind.name}"
    tag = [f"reference: {kind.name}"]
    router.add_api_route(base, list_rows, methods=["GET"], response_model=list[schema_out], tags=tag,
                         operation_id=f"list_{kind.name}")  # fmt: skip
    router.add_api_route(f"{base}/{{row_id}}", get_row, methods=["GET"], response_model=schema_out, tags=tag,
                         operation_id=f"get_{kind.name}")  # fmt: skip
    router.add_api_route(f"{base}/{{row_id}}", put_row, methods=["PUT"], response_model=schema_out, tags=tag,
                         operation_id=f"put_{kind.name}")  # fmt: skip
    router.add_api_route(f"{base}/{{row_id}}", delete_row, methods=["DELETE"], status_code=204, tags=tag,
                         operation_id=f"delete_{kind.name}")  # fmt: skip


for _kind in service.KINDS.values():
    _kind_routes(_kind)


class CameraHealth(BaseModel):
    id: str
    code: str
    name: str
    grid_id: str | None
    last_alert_at: str | None
    alerts_24h: int
    status: str | None = None  # from the fleet monitor, when present


class StationHealth(BaseModel):
    id: str
    name: str
    town: str
    cameras: list[CameraHealth]
    open_orders: int
    alerts_24h: int
    last_alert_at: str | None
    status: str | None = None
    detail: dict[str, Any] | None = None


def _fleet_status(session: SessionDep, request: Request, now: datetime) -> dict[str, Any]:
    """Station/camera status from the fleet monitor, keyed by station; {} when it has nothing."""
    silent_after_s = getattr(request.app.state.settings, "fleet_silent_after_s", 120.0)
    try:
        view = fleet_view(session, silent_after_s, now)
    except SQLAlchemyError:  # the wall renders without fleet data rather than failing
        session.rollback()
        return {}
    out: dict[str, Any] = {}
    for st in view.get("stations", []):
        status = "silent" if st.get("silent") else ("online" if st.get("online") else st.get("state") or "offline")
        cams = {c["camera"]: {"status": c.get("state")} for c in st.get("cameras", [])}
        out[st["station"]] = {"status": status, "cameras": cams, "last_seen": st.get("last_seen"),
                              "health_alerts": len(st.get("health_alerts", []))}  # fmt: skip
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@router.get("/stations/health", response_model=list[StationHealth], tags=["health"])
def health_wall(user: StaffUser, session: SessionDep, clock: ClockDep, request: Request) -> list[StationHealth]:
    """The 12 stations and their cameras: last alert, alerts in 24 h, open orders, fleet status if known."""
    since = clock.now() - timedelta(hours=24)
    fleet = _fleet_status(session, request, clock.now())
    per_cam = {
        (s, c): (n, last)
        for s, c, n, last in session.execute(
            select(Alert.station, Alert.camera, func.count(Alert.id), func.max(Alert.ts))
            .where(Alert.ts >= since)
            .group_by(Alert.station, Alert.camera)
        )
    }
    last_any = dict(session.execute(select(Alert.station, func.max(Alert.ts)).group_by(Alert.station)).all())
    open_orders = dict(
        session.execute(
            select(WorkOrder.station, func.count(WorkOrder.id)).where(WorkOrder.state.in_(OPEN_STATES)).group_by(WorkOrder.station)
        ).all()
    )
    out = []
    for st in session.scalars(select(Station).order_by(Station.id)):
        if not station_visible(user, st.id):
            continue
        info = _as_dict(fleet.get(st.id))
        cams_info = _as_dict(info.get("cameras"))
        cams = []
        for cam in session.scalars(select(Camera).where(Camera.station_id == st.id).order_by(Camera.code)):
            n, last = per_cam.get((st.id, cam.code), (0, None))
            cinfo = _as_dict(cams_info.get(cam.code))
            cams.append(CameraHealth(
                id=cam.id, code=cam.code, name=cam.name, grid_id=cam.grid_id, alerts_24h=n,
                last_alert_at=last.isoformat() if last else None, status=cinfo.get("status"),
            ))  # fmt: skip
        last = last_any.get(st.id)
        out.append(StationHealth(
            id=st.id, name=st.name, town=st.town, cameras=cams, open_orders=open_orders.get(st.id, 0),
            alerts_24h=sum(c.alerts_24h for c in cams), last_alert_at=last.isoformat() if last else None,
            status=info.get("status"), detail=info or None,
        ))  # fmt: skip
    return out
