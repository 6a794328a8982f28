"""``/api/incidents``: list and detail (alerts, order), merge candidates, merge and split."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.alerts.router import annotate
from central.auth.deps import CurrentUser, StaffUser
from central.auth.service import Principal
from central.deps import ClockDep, Offset, PathId, SessionDep
from central.dispatch import service as orders
from central.dispatch.models import WorkOrder
from central.dispatch.schemas import OrderOut
from central.dispatch.scope import order_filter
from central.dispatch.workflow import State
from central.incidents import service
from central.incidents.models import Incident, IncidentAlert
from central.incidents.schemas import IncidentDetail, IncidentOut, IncidentPage, MergeIn, SplitIn
from central.stations.models import Camera, Grid

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
Filter = Annotated[str | None, Query(min_length=1, max_length=64)]


def _visible_query(user: Principal):  # noqa: ANN202 - a Select
    query = select(Incident, WorkOrder).outerjoin(WorkOrder, WorkOrder.incident_id == Incident.id)
    if (clause := order_filter(user)) is not None:
        query = query.where(clause)
    return query


def _out(session: Session, inc: Incident, order: WorkOrder | None, user: Principal, names: dict[int, str]) -> dict:
    cam = session.get(Camera, f"{inc.station}:{inc.camera}")
    grid = session.get(Grid, inc.grid_id) if inc.grid_id else None
    cover = session.scalar(
        select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == inc.id).order_by(IncidentAlert.alert_id).limit(1)
    )
    return dict(
        id=inc.id, station=inc.station, camera=inc.camera, camera_name=cam.name if cam else None, grid_id=inc.grid_id,
        grid_name=grid.name if grid else None, category=inc.category, rule=inc.rule, first_ts=inc.first_ts,
        last_ts=inc.last_ts, alert_count=inc.alert_count, merged_into_id=inc.merged_into_id, cover_alert_id=cover,
        order=OrderOut.of(order, user, names) if order is not None else None,
    )  # fmt: skip


def _get(session: Session, incident_id: PathId, user: Principal) -> tuple[Incident, WorkOrder | None]:
    row = session.execute(_visible_query(user).where(Incident.id == incident_id)).first()
    if row is None:
        raise HTTPException(status_code=404, detail=f"incident {incident_id} not found")
    return row[0], row[1]


def _names(session: Session) -> dict[int, str]:
    return {lvl.level: lvl.name for lvl in orders.chain(session)}


@router.get("", response_model=IncidentPage)
def list_incidents(
    session: SessionDep,
    user: CurrentUser,
    station: Filter = None,
    camera: Filter = None,
    rule: Filter = None,
    state: Annotated[list[State] | None, Query()] = None,
    include_merged: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> IncidentPage:
    query = _visible_query(user)
    if not include_merged:
        query = query.where(Incident.merged_into_id.is_(None))
    if station is not None:
        query = query.where(Incident.station == station)
    if camera is not None:
        query = query.where(Incident.camera == camera)
    if rule is not None:
        query = query.where((Incident.rule == rule) | (Incident.category == rule))
    if state:
        query = query.where(WorkOrder.state.in_([s.value for s in state]))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Incident.last_ts.desc(), Incident.id.desc()).limit(limit).offset(offset))
    names = _names(session)
    items = [IncidentOut(**_out(session, i, o, user, names)) for i, o in rows]
    return IncidentPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{incident_id}", response_model=IncidentDetail)
def get_incident(incident_id: PathId, session: SessionDep, user: CurrentUser, request: Request) -> IncidentDetail:
    inc, order = _get(session, incident_id, user)
    alerts = annotate(session, service.alerts_of(session, inc.id), request.app.state.settings.media_dir)
    return IncidentDetail(**_out(session, inc, order, user, _names(session)), alerts=alerts)


@router.get("/{incident_id}/merge-candidates", response_model=list[IncidentOut])
def merge_candidates(incident_id: PathId, session: SessionDep, user: StaffUser, request: Request) -> list[IncidentOut]:
    """Same grid and category within the merge window, in your scope."""
    inc, _ = _get(session, incident_id, user)
    window = request.app.state.settings.incident_merge_window_s
    names = _names(session)
    out = []
    for cand in service.merge_candidates(session, inc, window):
        try:
            c, o = _get(session, cand.id, user)
        except HTTPException:
            continue
        out.append(IncidentOut(**_out(session, c, o, user, names)))
    return out


@router.post("/{incident_id}/merge", response_model=IncidentDetail)
def merge(
    incident_id: PathId, body: MergeIn, session: SessionDep, user: StaffUser, clock: ClockDep, request: Request
) -> IncidentDetail:
    target, _ = _get(session, incident_id, user)
    sources = [_get(session, i, user)[0] for i in dict.fromkeys(body.incident_ids)]
    try:
        service.merge(session, target, sources, user, clock.now())
    except service.Conflict as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return get_incident(incident_id, session, user, request)


@router.post("/{incident_id}/split", response_model=IncidentDetail, status_code=201)
def split(
    incident_id: PathId, body: SplitIn, session: SessionDep, user: StaffUser, clock: ClockDep, request: Request
) -> IncidentDetail:
    """Move some alerts into a new incident with its own order; returns the new incident."""
    inc, _ = _get(session, incident_id, user)
    try:
        new, order = service.split(session, inc, body.alert_ids, clock.now())
    except service.Conflict as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    request.app.state.notifier.order(order)
    return get_incident(new.id, session, user, request)
