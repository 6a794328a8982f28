"""Reference tables. Every row is keyed by a readable string id so YAML, URLs and logs agree."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    town: Mapped[str] = mapped_column(String(64))


class Grid(Base):
    __tablename__ = "grids"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    town: Mapped[str] = mapped_column(String(64))
    village: Mapped[str] = mapped_column(String(64))
    # village, town_centre, school, river, road, market, depot: priority adjustments key on it.
    zone_kind: Mapped[str] = mapped_column(String(32))


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("station_id", "code", name="uq_cameras_station_code"),)
    # "<station>:<camera>", the camera's id as stations publish it, prefixed by its station.
    id: Mapped[str] = mapped_column(String(130), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(128))
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), nullable=True)


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128))


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), nullable=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)


class RoutingRule(Base):
    """First match by ``position`` wins; ``*`` matches anything."""

    __tablename__ = "routing_rules"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))  # the alert's rule_kind
    rule: Mapped[str] = mapped_column(String(64))  # the station rule id
    zone_kind: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    priority: Mapped[int] = mapped_column(Integer)  # 1 (most urgent) .. 4


class PriorityAdjustment(Base):
    """Adds ``delta`` (negative = more urgent) when the grid's zone kind and/or local hour match."""

    __tablename__ = "priority_adjustments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hour_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hour_to: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delta: Mapped[int] = mapped_column(Integer)


class SlaPolicy(Base):
    __tablename__ = "sla_policies"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)  # "P1".."P4"
    priority: Mapped[int] = mapped_column(Integer, unique=True)
    ack_within_s: Mapped[int] = mapped_column(Integer)
    resolve_within_s: Mapped[int] = mapped_column(Integer)


class EscalationLevel(Base):
    """The chain a missed deadline climbs: level 0 is where an order starts."""

    __tablename__ = "escalation_levels"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)  # "L0".."Ln"
    level: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(128))
    department_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
