"""Tables of fleet health, health alerts and station commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UtcDateTime


class FleetStation(Base):
    __tablename__ = "fleet_stations"

    station: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="unknown")  # online | offline | unknown
    state_ts: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    stats_ts: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    stats_interval_s: Mapped[float] = mapped_column(Float, default=0.0)
    uptime_s: Mapped[float] = mapped_column(Float, default=0.0)
    queue_depth: Mapped[int] = mapped_column(Integer, default=0)
    queue_dropped: Mapped[int] = mapped_column(Integer, default=0)
    outbox_items: Mapped[int] = mapped_column(Integer, default=0)
    outbox_bytes: Mapped[int] = mapped_column(Integer, default=0)
    outbox_oldest_age_s: Mapped[float] = mapped_column(Float, default=0.0)
    outbox_dropped_events: Mapped[int] = mapped_column(Integer, default=0)
    outbox_dropped_media: Mapped[int] = mapped_column(Integer, default=0)


class FleetCamera(Base):
    __tablename__ = "fleet_cameras"

    station: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), default="unknown")
    fps_in: Mapped[float] = mapped_column(Float, default=0.0)
    fps_detected: Mapped[float] = mapped_column(Float, default=0.0)
    last_frame_ts: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    frames_decoded: Mapped[int] = mapped_column(Integer, default=0)
    decode_errors: Mapped[int] = mapped_column(Integer, default=0)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class HealthAlert(Base):
    """A station gone offline or silent, or a camera down; open while ``cleared_at`` is NULL."""

    __tablename__ = "health_alerts"
    __table_args__ = (Index("ix_health_open", "station", "camera", "kind", "cleared_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32))  # offline | silent | camera_down
    detail: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class StationCommand(Base):
    __tablename__ = "station_commands"

    cmd_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # snapshot | clip
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16), default="sent")  # sent | ok | failed
    error: Mapped[str] = mapped_column(Text, default="")
    media_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
