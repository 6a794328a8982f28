"""The alerts table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UtcDateTime


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        # Listing is newest first, optionally per station/camera.
        Index("ix_alerts_ts_id", "ts", "id"),
        Index("ix_alerts_station_camera_ts", "station", "camera", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The station's id for the event; unique so that an MQTT redelivery is stored once.
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    station: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    rule_kind: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int] = mapped_column(Integer)
    pts_s: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Relative to the media dir, so the media dir can move.
    snapshot_path: Mapped[str] = mapped_column(String(255))
    snapshot_sha256: Mapped[str] = mapped_column(String(64))
    snapshot_size: Mapped[int] = mapped_column(Integer)
    # Where the event starts in the alert's clip, in seconds from the clip's start (``ClipInfo.
    # event_offset_s`` of the message carrying the clip, normally the end): a clip shared by
    # overlapping events starts before most of them. None until such a message has arrived.
    clip_offset_s: Mapped[float | None] = mapped_column(Float, nullable=True)

    def __repr__(self) -> str:
        return f"Alert(id={self.id}, event_id={self.event_id!r}, {self.station}/{self.camera}, {self.rule})"
