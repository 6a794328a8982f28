"""Reference data at the boundary (YAML files and the admin API). Unknown keys are errors."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,129}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Match = Annotated[str, StringConstraints(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")]
Hour = Annotated[int, Field(ge=0, le=23)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationIn(_In):
    name: Text
    town: Text


class GridIn(_In):
    name: Text
    town: Text
    village: Text
    zone_kind: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class CameraIn(_In):
    station_id: Id
    code: Id
    name: Text
    location: Text
    grid_id: Id | None = None


class DepartmentIn(_In):
    name: Text
    name_en: Text


class WorkerIn(_In):
    name: Text
    department_id: Id
    grid_id: Id | None = None
    on_duty: bool = False


class RoutingRuleIn(_In):
    position: int = Field(ge=0, le=10_000)
    category: Match = "*"
    rule: Match = "*"
    zone_kind: Match = "*"
    department_id: Id
    priority: int = Field(ge=1, le=4)


class PriorityAdjustmentIn(_In):
    zone_kind: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    hour_from: Hour | None = None
    hour_to: Hour | None = None
    delta: int = Field(ge=-3, le=3)

    @model_validator(mode="after")
    def _hours_together(self) -> PriorityAdjustmentIn:
        if (self.hour_from is None) != (self.hour_to is None):
            raise ValueError("hour_from and hour_to go together")
        if self.zone_kind is None and self.hour_from is None:
            raise ValueError("give a zone_kind, an hour range, or both")
        return self


class SlaPolicyIn(_In):
    priority: int = Field(ge=1, le=4)
    ack_within_s: int = Field(ge=1, le=30 * 86400)
    resolve_within_s: int = Field(ge=1, le=90 * 86400)


class EscalationLevelIn(_In):
    level: int = Field(ge=0, le=20)
    name: Text
    department_id: Id | None = None


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str


class StationOut(_Out, StationIn):
    pass


class GridOut(_Out, GridIn):
    pass


class CameraOut(_Out, CameraIn):
    pass


class DepartmentOut(_Out, DepartmentIn):
    pass


class WorkerOut(_Out, WorkerIn):
    pass


class RoutingRuleOut(_Out, RoutingRuleIn):
    pass


class PriorityAdjustmentOut(_Out):
    zone_kind: str | None
    hour_from: int | None
    hour_to: int | None
    delta: int


class SlaPolicyOut(_Out, SlaPolicyIn):
    pass


class EscalationLevelOut(_Out, EscalationLevelIn):
    pass
