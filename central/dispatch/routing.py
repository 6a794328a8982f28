"""Routing as data: category -> department, camera -> grid -> on-duty grid worker, else the department queue.

Priority = the matching rule's, plus every matching priority adjustment (grid zone kind, local hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.stations.models import Grid, PriorityAdjustment, RoutingRule, Worker
from central.stations.service import find_camera

LOCAL_TZ = timezone(timedelta(hours=8), "CST")  # Liyang: China Standard Time, no DST
FALLBACK_DEPARTMENT = "zhzx"
FALLBACK_PRIORITY = 4


@dataclass(frozen=True)
class Route:
    department_id: str
    priority: int
    grid_id: str | None
    worker_id: str | None
    rule_id: str | None


def _matches(pattern: str, value: str | None) -> bool:
    return pattern == "*" or pattern == value


def _in_hours(hour: int, start: int, end: int) -> bool:
    return start <= hour < end if start <= end else (hour >= start or hour < end)


def priority_for(session: Session, base: int, zone_kind: str | None, at: datetime) -> int:
    hour = at.astimezone(LOCAL_TZ).hour
    p = base
    for adj in session.scalars(select(PriorityAdjustment).order_by(PriorityAdjustment.id)):
        if adj.zone_kind is not None and adj.zone_kind != zone_kind:
            continue
        if adj.hour_from is not None and adj.hour_to is not None and not _in_hours(hour, adj.hour_from, adj.hour_to):
            continue
        p += adj.delta
    return min(4, max(1, p))


def on_duty_worker(session: Session, grid_id: str, department_id: str) -> str | None:
    """The grid's on-duty worker, preferring one of the routed department; None when nobody is on duty."""
    rows = session.scalars(
        select(Worker).where(Worker.grid_id == grid_id, Worker.on_duty.is_(True)).order_by(Worker.id)
    ).all()
    for w in rows:
        if w.department_id == department_id:
            return w.id
    return rows[0].id if rows else None


def route(session: Session, station: str, camera: str, category: str, rule: str, at: datetime) -> Route:
    cam = find_camera(session, station, camera)
    grid = session.get(Grid, cam.grid_id) if cam is not None and cam.grid_id else None
    zone_kind = grid.zone_kind if grid is not None else None
    chosen: RoutingRule | None = None
    for r in session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)):
        if _matches(r.category, category) and _matches(r.rule, rule) and _matches(r.zone_kind, zone_kind):
            chosen = r
            break
    department = chosen.department_id if chosen is not None else FALLBACK_DEPARTMENT
    base = chosen.priority if chosen is not None else FALLBACK_PRIORITY
    worker = on_duty_worker(session, grid.id, department) if grid is not None else None
    return Route(
        department_id=department,
        priority=priority_for(session, base, zone_kind, at),
        grid_id=grid.id if grid is not None else None,
        worker_id=worker,
        rule_id=chosen.id if chosen is not None else None,
    )
