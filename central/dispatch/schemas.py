"""Work-order API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from central.auth.schemas import Role
from central.auth.service import Principal
from central.dispatch.models import OrderEvent, WorkOrder
from central.dispatch.workflow import Action, State, allowed_actions

Note = Annotated[str, StringConstraints(max_length=2000)]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["accept", "verify", "reject", "inform", "escalate", "act", "feedback", "close"]
    note: Note = ""
    worker_id: str | None = Field(default=None, min_length=1, max_length=64, description="inform: the worker")
    reason: Literal["false_alarm", "duplicate"] | None = Field(default=None, description="reject: why")


class PublicOrderOut(BaseModel):
    """What the rating page shows a member of the public who holds the case slip's code: no
    pictures, people or places finer than the town."""

    order_id: int
    category: str
    town: str | None
    state: State
    created_at: datetime
    closed_at: datetime | None
    rating: int | None
    can_rate: bool


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5, description="1..5; below 3 reopens the order")
    note: Note = ""


class OrderOut(BaseModel):
    id: int
    incident_id: int
    station: str
    grid_id: str | None
    category: str
    state: State
    priority: int
    department_id: str
    routing_rule_id: str | None
    suggested_worker_id: str | None
    assignee_worker_id: str | None
    escalation_level: int
    escalation_name: str | None = None
    ack_due_at: datetime
    resolve_due_at: datetime
    ack_breached: bool
    resolve_breached: bool
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reject_reason: str | None
    rating: int | None
    rating_code: str | None = Field(default=None, description="staff only: give it to the public to rate")
    created_at: datetime
    updated_at: datetime
    allowed_actions: list[Action]

    @classmethod
    def of(cls, row: WorkOrder, user: Principal, level_names: dict[int, str] | None = None) -> OrderOut:
        staff = user.role is not Role.WORKER
        return cls(
            id=row.id, incident_id=row.incident_id, station=row.station, grid_id=row.grid_id, category=row.category,
            state=State(row.state), priority=row.priority, department_id=row.department_id,
            routing_rule_id=row.routing_rule_id, suggested_worker_id=row.suggested_worker_id,
            assignee_worker_id=row.assignee_worker_id, escalation_level=row.escalation_level,
            escalation_name=(level_names or {}).get(row.escalation_level), ack_due_at=row.ack_due_at,
            resolve_due_at=row.resolve_due_at, ack_breached=row.ack_breached, resolve_breached=row.resolve_breached,
            acknowledged_at=row.acknowledged_at, resolved_at=row.resolved_at, closed_at=row.closed_at,
            reject_reason=row.reject_reason, rating=row.rating, rating_code=row.rating_code if staff else None,
            created_at=row.created_at, updated_at=row.updated_at,
            allowed_actions=_allowed(row, user),
        )  # fmt: skip


def _allowed(row: WorkOrder, user: Principal) -> list[Action]:
    if user.role is Role.WORKER and row.assignee_worker_id != user.worker_id:
        return []
    return allowed_actions(State(row.state), user.role)


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    action: str
    from_state: str | None
    to_state: str
    actor: str
    note: str
    data: str
    at: datetime

    @classmethod
    def of(cls, row: OrderEvent) -> EventOut:
        return cls.model_validate(row)


class SlaCheckOut(BaseModel):
    escalated: list[int]
