"""The work-order state machine, pure: states, actions, who may do what, and audit-log replay.

The six steps: accept (受理) -> verify (核实) or reject (false alarm / duplicate) -> inform (告知,
hand to the worker) -> escalate (上报) when needed -> act (处置) -> feedback (反馈) -> close (结案);
then the public rates it, and a bad rating reopens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from central.auth.schemas import Role


class State(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    VERIFIED = "verified"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    ESCALATED = "escalated"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Action(StrEnum):
    CREATE = "create"  # first audit line (system)
    ACCEPT = "accept"
    VERIFY = "verify"
    REJECT = "reject"
    INFORM = "inform"
    ESCALATE = "escalate"
    ACT = "act"
    FEEDBACK = "feedback"
    CLOSE = "close"
    RATE = "rate"  # public, after closing
    SLA_ESCALATE = "sla_escalate"  # system, on a missed deadline; state unchanged


TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.NEW, Action.ACCEPT): State.ACCEPTED,
    (State.NEW, Action.REJECT): State.REJECTED,
    (State.ACCEPTED, Action.REJECT): State.REJECTED,
    (State.ACCEPTED, Action.VERIFY): State.VERIFIED,
    (State.VERIFIED, Action.INFORM): State.DISPATCHED,
    (State.ESCALATED, Action.INFORM): State.DISPATCHED,
    (State.VERIFIED, Action.ESCALATE): State.ESCALATED,
    (State.DISPATCHED, Action.ESCALATE): State.ESCALATED,
    (State.IN_PROGRESS, Action.ESCALATE): State.ESCALATED,
    (State.DISPATCHED, Action.ACT): State.IN_PROGRESS,
    (State.IN_PROGRESS, Action.FEEDBACK): State.RESOLVED,
    (State.RESOLVED, Action.CLOSE): State.CLOSED,
    (State.CLOSED, Action.RATE): State.CLOSED,  # or DISPATCHED on a bad rating, see next_state
}

# What each role may do at all; object scope (own station, own order) is checked by the service.
STAFF_ACTIONS = frozenset({Action.ACCEPT, Action.VERIFY, Action.REJECT, Action.INFORM, Action.ESCALATE, Action.CLOSE})
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: STAFF_ACTIONS | {Action.ACT, Action.FEEDBACK},
    Role.DISPATCHER: STAFF_ACTIONS,
    Role.OPERATOR: STAFF_ACTIONS,
    Role.WORKER: frozenset({Action.ACT, Action.FEEDBACK, Action.ESCALATE, Action.CLOSE}),
}
USER_ACTIONS = [a for a in Action if a not in (Action.CREATE, Action.RATE, Action.SLA_ESCALATE)]
REJECT_REASONS = ("false_alarm", "duplicate")
GOOD_RATING = 3  # 1..5; below this the order reopens


class IllegalTransition(ValueError):
    pass


def next_state(state: State, action: Action, rating: int | None = None) -> State:
    """The state after ``action``; raises ``IllegalTransition`` when it is not allowed from ``state``."""
    target = TRANSITIONS.get((state, action))
    if target is None:
        raise IllegalTransition(f"cannot {action.value} an order that is {state.value}")
    if action is Action.RATE and rating is not None and rating < GOOD_RATING:
        return State.DISPATCHED
    return target


def allowed_actions(state: State, role: Role) -> list[Action]:
    return [a for a in USER_ACTIONS if (state, a) in TRANSITIONS and a in ROLE_ACTIONS[role]]


@dataclass(frozen=True)
class Snapshot:
    """What an order's audit log says about it."""

    state: State
    assignee_worker_id: str | None = None
    escalation_level: int = 0
    rating: int | None = None
    reject_reason: str | None = None


def apply(snap: Snapshot, action: Action, data: dict[str, Any]) -> Snapshot:
    """One audit-log line applied to ``snap``; raises ``IllegalTransition`` when it does not fit."""
    if action is Action.SLA_ESCALATE:
        return replace(snap, escalation_level=int(data["level"]))
    target = next_state(snap.state, action, data.get("rating"))
    out = replace(snap, state=target)
    if action is Action.INFORM:
        out = replace(out, assignee_worker_id=data["worker_id"])
    elif action is Action.ESCALATE:
        out = replace(out, escalation_level=int(data["level"]))
    elif action is Action.REJECT:
        out = replace(out, reject_reason=data["reason"])
    elif action is Action.RATE:
        out = replace(out, rating=data["rating"] if target is State.CLOSED else None)
    return out


def replay(events: Iterable[tuple[str, str | None, str, str]]) -> Snapshot:
    """Fold audit lines ``(action, from_state, to_state, data_json)`` from creation to now.

    Raises ``IllegalTransition`` when a line does not follow from the ones before it.
    """
    snap: Snapshot | None = None
    for action_s, from_s, to_s, data_s in events:
        action = Action(action_s)
        data = json.loads(data_s or "{}")
        if snap is None:
            if action is not Action.CREATE:
                raise IllegalTransition("the log does not start with 'create'")
            snap = Snapshot(State(to_s), escalation_level=int(data.get("level", 0)))
            continue
        if from_s != snap.state.value:
            raise IllegalTransition(f"{action_s} recorded from {from_s}, but the order was {snap.state.value}")
        snap = apply(snap, action, data)
        if snap.state.value != to_s:
            raise IllegalTransition(f"{action_s} recorded to {to_s}, but leads to {snap.state.value}")
    if snap is None:
        raise IllegalTransition("empty log")
    return snap
