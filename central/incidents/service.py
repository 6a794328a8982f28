"""Grouping alerts into incidents (each with its work order), merging and splitting by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.alerts.models import Alert
from central.auth.service import Principal
from central.dispatch import service as orders
from central.dispatch.models import WorkOrder
from central.dispatch.routing import route
from central.dispatch.workflow import Action, State
from central.incidents.models import Incident, IncidentAlert


@dataclass(frozen=True)
class Grouping:
    inactivity_s: float
    merge_window_s: float
    auto_merge: bool


class Conflict(ValueError):
    pass


def incident_of_alert(session: Session, alert_id: int) -> Incident | None:
    link = session.get(IncidentAlert, alert_id)
    return session.get(Incident, link.incident_id) if link is not None else None


# Built once (every alert runs them): building a statement costs as much as running it.
_ORDER_OF = select(WorkOrder).where(WorkOrder.incident_id == bindparam("incident_id"))
_OPEN_FOR_CAMERA = (
    select(Incident)
    .where(Incident.station == bindparam("station"), Incident.camera == bindparam("camera"))
    .where(Incident.merged_into_id.is_(None))
    .where(Incident.last_ts >= bindparam("after"), Incident.first_ts <= bindparam("before"))
    .order_by(Incident.last_ts.desc())
    .limit(1)
)


def order_of(session: Session, incident_id: int) -> WorkOrder | None:
    return session.scalar(_ORDER_OF, {"incident_id": incident_id})


def _open_for_camera(session: Session, alert: Alert, g: Grouping) -> Incident | None:
    gap = timedelta(seconds=g.inactivity_s)
    params = {"station": alert.station, "camera": alert.camera, "after": alert.ts - gap, "before": alert.ts + gap}
    return session.scalar(_OPEN_FOR_CAMERA, params)


def merge_candidates(session: Session, incident: Incident, window_s: float) -> list[Incident]:
    """Other live incidents of the same grid and category within the merge window."""
    if incident.grid_id is None:
        return []
    w = timedelta(seconds=window_s)
    return list(
        session.scalars(
            select(Incident)
            .where(Incident.id != incident.id, Incident.merged_into_id.is_(None))
            .where(Incident.grid_id == incident.grid_id, Incident.category == incident.category)
            .where(Incident.last_ts >= incident.first_ts - w, Incident.first_ts <= incident.last_ts + w)
            .order_by(Incident.first_ts)
        )
    )


def _touch(incident: Incident, ts: datetime, added: int) -> None:
    incident.first_ts = min(incident.first_ts, ts)
    incident.last_ts = max(incident.last_ts, ts)
    incident.alert_count += added


def attach_alert(
    session: Session, alert: Alert, g: Grouping, now: datetime, new: bool = False
) -> tuple[Incident, WorkOrder | None]:
    """Put ``alert`` into an incident and commit; returns (incident, the new order if one was opened).

    Idempotent: an alert already in an incident returns that incident and no new order. ``new``:
    the caller has just stored the alert, so no incident can hold it yet (the lookup is skipped;
    should another thread group it meanwhile, the commit fails and its incident is returned).
    """
    if not new and (known := incident_of_alert(session, alert.id)) is not None:
        return known, None
    incident = _open_for_camera(session, alert, g)
    order = None
    if incident is None:
        # Routed only here: most alerts join their camera's open incident (a busy camera's next
        # person), and routing is five lookups of reference data that such an alert never uses.
        incident, order = _merge_or_open(session, alert, g, now)
    _touch(incident, alert.ts, 1)
    session.add(IncidentAlert(alert_id=alert.id, incident_id=incident.id))
    try:
        session.commit()
    except IntegrityError:  # another thread grouped this alert first
        session.rollback()
        known = incident_of_alert(session, alert.id)
        if known is None:
            raise
        return known, None
    return incident, order


def _merge_or_open(session: Session, alert: Alert, g: Grouping, now: datetime) -> tuple[Incident, WorkOrder | None]:
    """The incident of an alert that no open incident of its camera takes: with auto-merge, one of
    its grid and kind whose order is still open; else a new one, with its order (flushed, not
    committed)."""
    r = route(session, alert.station, alert.camera, alert.rule_kind, alert.rule, alert.ts)
    if g.auto_merge and r.grid_id is not None:
        probe = Incident(grid_id=r.grid_id, category=alert.rule_kind, first_ts=alert.ts, last_ts=alert.ts, id=-1)
        live = [i for i in merge_candidates(session, probe, g.merge_window_s) if _order_open(session, i.id)]
        if live:
            return live[0], None
    incident = Incident(
        station=alert.station, camera=alert.camera, grid_id=r.grid_id, category=alert.rule_kind, rule=alert.rule,
        first_ts=alert.ts, last_ts=alert.ts, alert_count=0, created_at=now,
    )  # fmt: skip
    session.add(incident)
    session.flush()
    return incident, orders.open_order(session, incident, r, now)


def _order_open(session: Session, incident_id: int) -> bool:
    o = order_of(session, incident_id)
    return o is not None and o.state not in (State.CLOSED.value, State.REJECTED.value)


def alerts_of(session: Session, incident_id: int) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert)
            .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
            .where(IncidentAlert.incident_id == incident_id)
            .order_by(Alert.ts, Alert.id)
        )
    )


def _recount(session: Session, incident: Incident) -> None:
    first, last, n = session.execute(
        select(func.min(Alert.ts), func.max(Alert.ts), func.count(Alert.id))
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident.id)
    ).one()
    incident.alert_count = n
    if first is not None:
        incident.first_ts, incident.last_ts = first, last


def merge(session: Session, target: Incident, sources: list[Incident], actor: Principal, now: datetime) -> Incident:
    """Move every alert of ``sources`` into ``target``; their orders are rejected as duplicates."""
    for src in sources:
        if src.id == target.id or src.merged_into_id is not None or target.merged_into_id is not None:
            raise Conflict(f"incident {src.id} cannot be merged into {target.id}")
        order = order_of(session, src.id)
        if order is not None and order.state not in (State.NEW.value, State.ACCEPTED.value, State.REJECTED.value):
            raise Conflict(f"incident {src.id}'s order is already {order.state}; merge only new or accepted ones")
    for src in sources:
        for link in session.scalars(select(IncidentAlert).where(IncidentAlert.incident_id == src.id)):
            link.incident_id = target.id
        src.merged_into_id = target.id
        src.alert_count = 0
        order = order_of(session, src.id)
        session.flush()
        if order is not None and order.state != State.REJECTED.value:
            inp = orders.ActionInput(Action.REJECT, note=f"merged into incident {target.id}", reason="duplicate")
            orders.transition(session, order, inp, actor, now)  # commits
    _recount(session, target)
    session.commit()
    return target


def split(session: Session, incident: Incident, alert_ids: list[int], now: datetime) -> tuple[Incident, WorkOrder]:
    """Move ``alert_ids`` out of ``incident`` into a new incident with its own routed order."""
    mine = {a.id: a for a in alerts_of(session, incident.id)}
    chosen = sorted(set(alert_ids))
    if not chosen or any(i not in mine for i in chosen):
        raise Conflict(f"alerts {chosen} are not all in incident {incident.id}")
    if len(chosen) == len(mine):
        raise Conflict("a split must leave at least one alert behind")
    first = mine[chosen[0]]
    new = Incident(
        station=incident.station, camera=incident.camera, grid_id=incident.grid_id, category=incident.category,
        rule=first.rule, first_ts=first.ts, last_ts=first.ts, alert_count=0, created_at=now,
    )  # fmt: skip
    session.add(new)
    session.flush()
    for i in chosen:
        link = session.get(IncidentAlert, i)
        assert link is not None
        link.incident_id = new.id
    session.flush()
    _recount(session, new)
    _recount(session, incident)
    r = route(session, new.station, new.camera, new.category, new.rule, new.first_ts)
    order = orders.open_order(session, new, r, now)
    session.commit()
    return new, order


def ungrouped_alerts(session: Session, received_before: datetime, limit: int = 200) -> list[Alert]:
    """Alerts that no incident holds (e.g. the hook failed); the scheduler groups them."""
    return list(
        session.scalars(
            select(Alert)
            .outerjoin(IncidentAlert, IncidentAlert.alert_id == Alert.id)
            .where(IncidentAlert.alert_id.is_(None), Alert.received_at <= received_before)
            .order_by(Alert.ts, Alert.id)
            .limit(limit)
        )
    )
