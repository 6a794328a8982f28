"""Tables of received media, their chunks, and evidence holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.db import Base, UtcDateTime


class MediaItem(Base):
    __tablename__ = "media_items"
    __table_args__ = (Index("ix_media_event", "event_id"), Index("ix_media_cmd", "cmd_id"))

    media_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # snapshot | clip
    content_type: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cmd_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    chunk_bytes: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(
        String(16), default="partial"
    )  # partial | complete | corrupt | expired
    path: Mapped[str] = mapped_column(String(255), default="")  # relative to the media dir, once complete
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # A clip's H.264 copy for browsers (central.media.renditions): None until looked at, then working,
    # ready, none (already H.264), failed, or gone (the clip was deleted first).
    rendition: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)


class MediaEvent(Base):
    """Every event a media item is evidence of: the chunk's ``event_id`` and its ``event_ids`` (one
    clip shared by overlapping events of one camera). Written with the item, from its first chunk."""

    __tablename__ = "media_events"
    __table_args__ = (Index("ix_media_events_event", "event_id"),)

    media_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class MediaChunkRow(Base):
    __tablename__ = "media_chunks"

    media_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)


class EvidenceHold(Base):
    """Evidence of this event is never deleted by retention while the row exists (open incident)."""

    __tablename__ = "evidence_holds"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
