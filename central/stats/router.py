"""``/api/stats``: chart data for staff, in their scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from central.auth.deps import StaffUser
from central.deps import ClockDep, SessionDep
from central.dispatch.scope import alert_filter, order_filter
from central.stats import service

router = APIRouter(prefix="/api/stats", tags=["stats"])
Days = Annotated[int, Query(ge=1, le=90)]


@router.get("/alerts-per-day")
def alerts_per_day(user: StaffUser, session: SessionDep, clock: ClockDep, days: Days = 14) -> dict[str, Any]:
    return service.alerts_per_day(session, clock.now(), days, alert_filter(user))


@router.get("/orders")
def orders(user: StaffUser, session: SessionDep, clock: ClockDep, days: Days = 14) -> dict[str, Any]:
    return service.orders_summary(session, clock.now(), days, order_filter(user))
