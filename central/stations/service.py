"""Loading reference data from YAML and the generic admin CRUD over it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db import Base
from central.stations import models as m
from central.stations import schemas as s

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of reference row: its table, input and output schemas, YAML file, load order."""

    name: str
    model: type[Base]
    schema_in: type[BaseModel]
    schema_out: type[BaseModel]


# Load order respects foreign keys.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("stations", m.Station, s.StationIn, s.StationOut),
        Kind("grids", m.Grid, s.GridIn, s.GridOut),
        Kind("departments", m.Department, s.DepartmentIn, s.DepartmentOut),
        Kind("cameras", m.Camera, s.CameraIn, s.CameraOut),
        Kind("workers", m.Worker, s.WorkerIn, s.WorkerOut),
        Kind("routing_rules", m.RoutingRule, s.RoutingRuleIn, s.RoutingRuleOut),
        Kind("priority_adjustments", m.PriorityAdjustment, s.PriorityAdjustmentIn, s.PriorityAdjustmentOut),
        Kind("sla_policies", m.SlaPolicy, s.SlaPolicyIn, s.SlaPolicyOut),
        Kind("escalation_levels", m.EscalationLevel, s.EscalationLevelIn, s.EscalationLevelOut),
    )
}


class ReferenceError(ValueError):
    """A reference file is malformed; the message names the file and the entry."""


class Conflict(ValueError):
    """The change would break a reference (a row in use, or a missing target)."""


def camera_id(station: str, camera: str) -> str:
    return f"{station}:{camera}"


def _read(path: Path, kind: Kind) -> list[tuple[str, BaseModel]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReferenceError(f"{path}: {exc}") from exc
    entries = doc.get(kind.name) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ReferenceError(f"{path}: expected a top-level '{kind.name}:' list")
    out: list[tuple[str, BaseModel]] = []
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict) or "id" not in raw:
            raise ReferenceError(f"{path}: {kind.name}[{i}] needs an 'id'")
        body = {k: v for k, v in raw.items() if k != "id"}
        try:
            out.append((str(raw["id"]), kind.schema_in.model_validate(body)))
        except ValidationError as exc:
            raise ReferenceError(f"{path}: {kind.name}[{i}] ({raw['id']}): {exc}") from exc
    return out


def load_reference(session: Session, directory: Path) -> dict[str, int]:
    """Insert every row of ``directory/<kind>.yaml`` whose id is not in the database yet.

    Rows already present are left as they are: the database is the source of truth once an admin
    has edited it. Returns how many rows of each kind were added.
    """
    added: dict[str, int] = {}
    for kind in KINDS.values():
        path = directory / f"{kind.name}.yaml"
        if not path.is_file():
            continue
        entries = _read(path, kind)
        existing = set(session.scalars(select(kind.model.id)))  # type: ignore[attr-defined]
        n = 0
        for row_id, data in entries:
            if row_id not in existing:
                session.add(kind.model(id=row_id, **data.model_dump()))
                n += 1
        session.flush()
        added[kind.name] = n
    session.commit()
    if any(added.values()):
        log.info("reference data loaded from %s: %s", directory, added)
    return added


def list_rows(session: Session, kind: Kind) -> list[Any]:
    return list(session.scalars(select(kind.model).order_by(kind.model.id)))  # type: ignore[attr-defined]


def get_row(session: Session, kind: Kind, row_id: str) -> Any | None:
    return session.get(kind.model, row_id)


def upsert_row(session: Session, kind: Kind, row_id: str, data: BaseModel) -> tuple[Any, bool]:
    """Create or replace the row ``row_id``; returns (row, created)."""
    values = data.model_dump()
    if kind.name == "cameras" and row_id != camera_id(values["station_id"], values["code"]):
        raise Conflict(f"a camera's id is '<station_id>:<code>', here {camera_id(values['station_id'], values['code'])!r}")
    row = session.get(kind.model, row_id)
    created = row is None
    if row is None:
        row = kind.model(id=row_id, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{kind.name} {row_id}: refers to a missing row or duplicates a unique value") from exc
    return row, created


def delete_row(session: Session, kind: Kind, row_id: str) -> bool:
    row = session.get(kind.model, row_id)
    if row is None:
        return False
    session.delete(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{kind.name} {row_id} is still referenced") from exc
    return True


def find_camera(session: Session, station: str, camera: str) -> m.Camera | None:
    return session.get(m.Camera, camera_id(station, camera))
