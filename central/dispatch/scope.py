"""Object-level visibility: which orders and alerts a principal may see."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, select

from central.alerts.models import Alert
from central.auth.schemas import Role
from central.auth.service import Principal
from central.dispatch.models import WorkOrder
from central.incidents.models import IncidentAlert


def sees_all(user: Principal) -> bool:
    return user.role in (Role.ADMIN, Role.DISPATCHER)


def order_visible(user: Principal, order: WorkOrder) -> bool:
    if sees_all(user):
        return True
    if user.role is Role.OPERATOR:
        return order.station == user.station_id
    return user.worker_id is not None and order.assignee_worker_id == user.worker_id


def order_filter(user: Principal) -> ColumnElement[bool] | None:
    """A WHERE clause on work_orders, or None for no restriction."""
    if sees_all(user):
        return None
    if user.role is Role.OPERATOR:
        return WorkOrder.station == user.station_id
    if user.worker_id is None:
        return false()
    return WorkOrder.assignee_worker_id == user.worker_id


def station_visible(user: Principal, station: str) -> bool:
    return sees_all(user) or (user.role is Role.OPERATOR and user.station_id == station)


def alert_filter(user: Principal) -> ColumnElement[bool] | None:
    """A WHERE clause on alerts: a worker sees the alerts of the orders assigned to them."""
    if sees_all(user):
        return None
    if user.role is Role.OPERATOR:
        return Alert.station == user.station_id
    if user.worker_id is None:
        return false()
    mine = (
        select(IncidentAlert.alert_id)
        .join(WorkOrder, WorkOrder.incident_id == IncidentAlert.incident_id)
        .where(WorkOrder.assignee_worker_id == user.worker_id)
    )
    return Alert.id.in_(mine)
