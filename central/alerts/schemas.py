"""API shapes of alerts (distinct from the wire schema, which belongs to stations)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from central.alerts.models import Alert


class BoxOut(BaseModel):
    """Normalised image coordinates (0..1)."""

    x1: float
    y1: float
    x2: float
    y2: float


class AlertOut(BaseModel):
    id: int
    event_id: str
    station: str
    camera: str
    rule: str
    rule_kind: str
    zone: str
    label: str
    score: float
    box: BoxOut
    track_id: int
    pts_s: float
    ts: datetime
    received_at: datetime
    snapshot_url: str
    snapshot_sha256: str
    snapshot_size: int
    # Seconds from the clip's start to the event's start (a shared clip starts before most of its
    # events): where a player seeks. None until the station's end message has said it.
    clip_offset_s: float | None = None
    # Filled in where the alert's incident and order are known (lists, the console's stream).
    clip_url: str | None = None
    # The clip's H.264 copy, where the clip is in another codec (H.265) and the copy is made: for
    # browsers that cannot play the original (central/media/renditions.py).
    clip_h264_url: str | None = None
    incident_id: int | None = None
    order_id: int | None = None
    priority: int | None = None
    order_state: str | None = None

    @classmethod
    def from_row(cls, row: Alert, **extra: object) -> AlertOut:
        return cls(
            id=row.id,
            event_id=row.event_id,
            station=row.station,
            camera=row.camera,
            rule=row.rule,
            rule_kind=row.rule_kind,
            zone=row.zone,
            label=row.label,
            score=row.score,
            box=BoxOut(x1=row.x1, y1=row.y1, x2=row.x2, y2=row.y2),
            track_id=row.track_id,
            pts_s=row.pts_s,
            ts=row.ts,
            received_at=row.received_at,
            snapshot_url=f"/api/alerts/{row.id}/snapshot",
            snapshot_sha256=row.snapshot_sha256,
            snapshot_size=row.snapshot_size,
            clip_offset_s=row.clip_offset_s,
            **extra,  # type: ignore[arg-type]
        )


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int
