"""Incident API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from central.alerts.schemas import AlertOut
from central.deps import BodyId
from central.dispatch.schemas import OrderOut


class IncidentOut(BaseModel):
    id: int
    station: str
    camera: str
    camera_name: str | None = None
    grid_id: str | None
    grid_name: str | None = None
    category: str
    rule: str
    first_ts: datetime
    last_ts: datetime
    alert_count: int
    merged_into_id: int | None
    cover_alert_id: int | None = None
    order: OrderOut | None = None


class IncidentDetail(IncidentOut):
    alerts: list[AlertOut] = []


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident_ids: list[BodyId] = Field(min_length=1, max_length=50)


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_ids: list[BodyId] = Field(min_length=1, max_length=500)
