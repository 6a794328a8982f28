"""Work orders: open from an incident, transition (checked, audited, announced), SLA escalation."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.auth.schemas import Role
from central.auth.service import Principal
from central.dispatch.models import OrderEvent, WorkOrder
from central.dispatch.routing import Route
from central.dispatch.scope import order_visible
from central.dispatch.workflow import (
    GOOD_RATING,
    REJECT_REASONS,
    ROLE_ACTIONS,
    Action,
    State,
    apply,
    next_state,
    replay,
)
from central.dispatch.workflow import Snapshot as WorkflowSnapshot
from central.incidents.models import Incident
from central.stations.models import EscalationLevel, SlaPolicy, Worker
from central.webhooks.service import enqueue

SYSTEM = "system"
DEFAULT_SLA = (1800, 86400)


class Forbidden(PermissionError):
    pass


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class ActionInput:
    action: Action
    note: str = ""
    worker_id: str | None = None  # inform: defaults to the routed on-duty worker
    reason: str | None = None  # reject: false_alarm | duplicate
    rating: int | None = None  # rate: 1..5


def sla_for(session: Session, priority: int) -> tuple[int, int]:
    row = session.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority))
    return (row.ack_within_s, row.resolve_within_s) if row is not None else DEFAULT_SLA


def chain(session: Session) -> list[EscalationLevel]:
    return list(session.scalars(select(EscalationLevel).order_by(EscalationLevel.level)))


def _record(
    session: Session, order: WorkOrder, action: Action, frm: State | None, to: State, actor: str, note: str,
    data: dict[str, Any], now: datetime,
) -> OrderEvent:  # fmt: skip
    seq = (session.scalar(select(OrderEvent.seq).where(OrderEvent.order_id == order.id).order_by(OrderEvent.seq.desc()).limit(1)) or 0) + 1  # noqa: E501
    ev = OrderEvent(
        order_id=order.id, seq=seq, action=action.value, from_state=frm.value if frm else None, to_state=to.value,
        actor=actor, note=note, data=json.dumps(data, ensure_ascii=False), at=now,
    )  # fmt: skip
    session.add(ev)
    enqueue(
        session,
        action.value,
        {"order_id": order.id, "incident_id": order.incident_id, "station": order.station, "grid_id": order.grid_id,
         "category": order.category, "priority": order.priority, "state": to.value, "actor": actor, "note": note,
         "department_id": order.department_id, "assignee_worker_id": order.assignee_worker_id,
         "escalation_level": order.escalation_level, **data},
        now,
    )  # fmt: skip
    return ev


def open_order(session: Session, incident: Incident, route: Route, now: datetime) -> WorkOrder:
    """A new order for ``incident`` (flushed, not committed), with its SLA deadlines and first audit line."""
    ack_s, resolve_s = sla_for(session, route.priority)
    order = WorkOrder(
        incident_id=incident.id, station=incident.station, grid_id=route.grid_id, category=incident.category,
        state=State.NEW.value, priority=route.priority, department_id=route.department_id,
        routing_rule_id=route.rule_id, suggested_worker_id=route.worker_id, assignee_worker_id=None,
        escalation_level=0, ack_due_at=now + timedelta(seconds=ack_s), resolve_due_at=now + timedelta(seconds=resolve_s),
        ack_breached=False, resolve_breached=False, rating_code=secrets.token_hex(16), created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(order)
    session.flush()
    data = {"department_id": route.department_id, "priority": route.priority, "suggested_worker_id": route.worker_id,
            "routing_rule_id": route.rule_id, "level": 0}  # fmt: skip
    _record(session, order, Action.CREATE, None, State.NEW, SYSTEM, "", data, now)
    return order


def _check_permission(order: WorkOrder, user: Principal, action: Action) -> None:
    if action not in ROLE_ACTIONS[user.role]:
        raise Forbidden(f"role {user.role.value} may not {action.value} orders")
    if user.role is Role.WORKER and order.assignee_worker_id != user.worker_id:
        raise Forbidden("this order is not assigned to you")


def _action_data(session: Session, order: WorkOrder, inp: ActionInput) -> dict[str, Any]:
    a = inp.action
    if a is Action.INFORM:
        worker_id = inp.worker_id or order.suggested_worker_id
        if worker_id is None:
            raise BadRequest("no on-duty worker in this grid: name a worker_id")
        if session.get(Worker, worker_id) is None:
            raise BadRequest(f"worker {worker_id} does not exist")
        return {"worker_id": worker_id}
    if a is Action.REJECT:
        if inp.reason not in REJECT_REASONS:
            raise BadRequest(f"reject needs a reason: one of {', '.join(REJECT_REASONS)}")
        return {"reason": inp.reason}
    if a is Action.ESCALATE:
        top = max((lvl.level for lvl in chain(session)), default=0)
        return {"level": min(top, order.escalation_level + 1)}
    if a is Action.RATE:
        if inp.rating is None or not 1 <= inp.rating <= 5:
            raise BadRequest("rating must be 1..5")
        return {"rating": inp.rating}
    return {}


def transition(
    session: Session, order: WorkOrder, inp: ActionInput, actor: Principal | None, now: datetime
) -> OrderEvent:
    """Apply ``inp`` to ``order`` and commit; ``actor=None`` is the public (rating only).

    Raises Forbidden, IllegalTransition, BadRequest; a concurrent change raises StaleDataError.
    """
    if actor is None:
        if inp.action is not Action.RATE:
            raise Forbidden("only rating is open to the public")
    else:
        if inp.action is Action.RATE:
            raise Forbidden("ratings come from the public, with the order's rating code")
        _check_permission(order, actor, inp.action)
    frm = State(order.state)
    next_state(frm, inp.action, inp.rating)  # illegal -> IllegalTransition before looking at the data
    data = _action_data(session, order, inp)
    snap = apply(_snapshot(order), inp.action, data)
    order.state = snap.state.value
    order.assignee_worker_id = snap.assignee_worker_id
    order.escalation_level = snap.escalation_level
    order.rating = snap.rating
    order.reject_reason = snap.reject_reason
    order.updated_at = now
    if inp.action is Action.ACCEPT:
        order.acknowledged_at = now
    elif inp.action is Action.FEEDBACK:
        order.resolved_at = now
    elif inp.action in (Action.CLOSE, Action.REJECT):
        order.closed_at = now
    elif inp.action is Action.RATE and snap.state is State.DISPATCHED:
        order.resolved_at = order.closed_at = None  # reopened by a bad rating
    actor_label = actor.label if actor is not None else "public"
    note = inp.note if inp.action is not Action.RATE or (inp.rating or 0) >= GOOD_RATING else (inp.note or "bad rating: reopened")
    ev = _record(session, order, inp.action, frm, snap.state, actor_label, note, data, now)
    session.commit()
    return ev


def _snapshot(order: WorkOrder) -> WorkflowSnapshot:
    return WorkflowSnapshot(
        State(order.state), order.assignee_worker_id, order.escalation_level, order.rating, order.reject_reason
    )


def events(session: Session, order_id: int) -> list[OrderEvent]:
    return list(session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.seq)))


def replay_order(session: Session, order_id: int) -> WorkflowSnapshot:
    return replay((e.action, e.from_state, e.to_state, e.data) for e in events(session, order_id))


def get_visible(session: Session, order_id: int, user: Principal) -> WorkOrder:
    order = session.get(WorkOrder, order_id)
    if order is None or not order_visible(user, order):
        raise NotFound(f"order {order_id} not found")
    return order


OPEN_STATES = [s.value for s in State if s not in (State.CLOSED, State.REJECTED)]


def check_sla(session: Session, now: datetime) -> list[int]:
    """Escalate every order past a deadline one level up the chain; returns the orders escalated.

    Not accepted by its acknowledge deadline: escalates, and the deadline restarts at the next level
    (PagerDuty-style) until the chain ends. Not resolved by its resolve deadline: escalates once.
    """
    levels = chain(session)
    top = max((lvl.level for lvl in levels), default=0)
    names = {lvl.level: lvl.name for lvl in levels}
    escalated: list[int] = []
    ack_late = (WorkOrder.state == State.NEW.value) & (WorkOrder.ack_due_at <= now)
    overdue = session.scalars(
        select(WorkOrder)
        .where(WorkOrder.state.in_(OPEN_STATES))
        .where(
            (ack_late & (WorkOrder.ack_breached.is_(False) | (WorkOrder.escalation_level < top)))
            | ((WorkOrder.resolve_due_at <= now) & WorkOrder.resolve_breached.is_(False))
        )
        .order_by(WorkOrder.id)
    ).all()
    for order in overdue:
        if order.state == State.NEW.value and order.ack_due_at <= now:
            what = "acknowledge"
            ack_s, _ = sla_for(session, order.priority)
            order.ack_breached = True
            order.ack_due_at = now + timedelta(seconds=ack_s)  # the next level gets its own window
        else:
            what = "resolve"
            order.resolve_breached = True
        level = min(top, order.escalation_level + 1)
        order.escalation_level = level
        order.updated_at = now
        note = f"{what} deadline missed: escalated to {names.get(level, f'level {level}')}"
        state = State(order.state)
        _record(session, order, Action.SLA_ESCALATE, state, state, SYSTEM, note, {"level": level, "deadline": what}, now)
        escalated.append(order.id)
    session.commit()
    return escalated
