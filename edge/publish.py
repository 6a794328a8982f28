"""Conversion of events to the wire schema (the link to the centre is edge/link.py)."""

from __future__ import annotations

from edge.evidence import Snapshot
from edge.types import Event
from wire import AlertMessage, Box, MediaBlob
from wire.messages import ClipInfo


def to_message(event: Event, snap: Snapshot | None) -> AlertMessage:
    """``snap`` None: a later phase with no new frame (the centre keeps the one it has)."""
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in event.xyxy_norm)
    return AlertMessage(
        event_id=event.event_id,
        station=event.station,
        camera=event.camera,
        rule=event.rule,
        rule_kind=event.kind.value,
        zone=event.zone,
        label=event.label,
        score=round(min(1.0, max(0.0, event.score)), 4),
        box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
        track_id=event.track_id,
        pts_s=round(event.pts_s, 3),
        ts=event.ts,
        snapshot=None if snap is None else MediaBlob.from_bytes(snap.jpeg, snap.width_px, snap.height_px),
        phase=event.phase.value,
        started_pts_s=round(max(0.0, event.started_pts_s), 3),
        clip=None
        if event.clip is None
        else ClipInfo(
            content_type=event.clip.content_type,
            path=event.clip.path,
            sha256=event.clip.sha256,
            size_bytes=event.clip.size_bytes,
            duration_s=event.clip.duration_s,
            start_pts_s=event.clip.start_pts_s,
            event_offset_s=event.clip.event_offset_s,
        ),
        direction=event.direction or None,
        count=event.count,
    )
