"""Announces stored alerts and order changes to the consoles (SSE), each to whom it concerns."""

from __future__ import annotations

import json

from central.alerts.broadcast import Accept, Audience, Broadcaster, sse_frame
from central.alerts.schemas import AlertOut
from central.auth.schemas import Role
from central.auth.service import Principal
from central.dispatch.models import WorkOrder


def accepts(user: Principal) -> Accept:
    """The broadcaster filter for ``user``'s stream: the same scope as the REST API's."""

    def accept(audience: Audience | None) -> bool:
        if audience is None or user.role in (Role.ADMIN, Role.DISPATCHER):
            return True
        if user.role is Role.OPERATOR:
            return audience.station == user.station_id
        return user.worker_id is not None and audience.worker_id == user.worker_id

    return accept


class Notifier:
    def __init__(self, broadcaster: Broadcaster) -> None:
        self._b = broadcaster

    @property
    def listening(self) -> bool:
        return self._b.listening

    def alert(self, alert: AlertOut, assignee_worker_id: str | None) -> None:
        if not self._b.listening:
            return
        frame = sse_frame("alert", alert.model_dump_json(), event_id=str(alert.id))
        self._b.publish_threadsafe(frame, Audience(alert.station, assignee_worker_id))

    def order(self, order: WorkOrder) -> None:
        if not self._b.listening:
            return
        body = {"id": order.id, "incident_id": order.incident_id, "state": order.state, "priority": order.priority,
                "station": order.station, "assignee_worker_id": order.assignee_worker_id,
                "escalation_level": order.escalation_level}  # fmt: skip
        frame = sse_frame("order", json.dumps(body, separators=(",", ":")))
        self._b.publish_threadsafe(frame, Audience(order.station, order.assignee_worker_id))
