"""Evidence at the centre within a disk quota (``XL_CENTRAL_MEDIA_QUOTA_MB``), oldest first.

Builds on ``central.media.service``: the age sweep (``sweep_retention``) and the evidence holds. Here
evidence of an *open incident* is held too - an alert in an incident that was not merged away and
whose work order is not closed or rejected (or that has no order yet) - besides explicit holds.
What goes: complete media files (clips, requested snapshots and clips) and alert snapshots (with
the clip hard-linked beside them), oldest first, until the media dir fits the quota.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.alerts.models import Alert
from central.dispatch.models import WorkOrder
from central.dispatch.workflow import State
from central.files import CLIP_SUFFIX, h264_copy
from central.incidents.models import Incident, IncidentAlert
from central.media.models import EvidenceHold, MediaItem
from central.media.service import is_media_held, media_held_by, media_names

log = logging.getLogger(__name__)

CLOSED = (State.CLOSED.value, State.REJECTED.value)


@dataclass
class QuotaStats:
    bytes: int = 0
    held_bytes: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    sweeps: int = 0
    over: bool = False  # still over the quota after the last sweep (logged once)


def held_events(session: Session) -> set[str]:
    """Event ids whose evidence must stay: explicit holds and every alert of an open incident."""
    held = set(session.scalars(select(EvidenceHold.event_id)))
    closed = select(WorkOrder.incident_id).where(WorkOrder.state.in_(CLOSED))
    rows = session.scalars(
        select(Alert.event_id)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .join(Incident, Incident.id == IncidentAlert.incident_id)
        .where(Incident.merged_into_id.is_(None), Incident.id.not_in(closed))
    )
    return held | set(rows)


def dir_bytes(root: Path) -> int:
    """Bytes under ``root``, each inode once (clips are hard-linked beside their alert's snapshot)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            try:
                st = (Path(dirpath) / n).stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _size(p: Path) -> int:
    try:
        st = p.stat()
    except OSError:
        return 0
    return st.st_size if st.st_nlink <= 1 else 0  # a second name: freed only with the last one


def sweep_quota(
    session: Session, media_dir: Path, quota_bytes: int, stats: QuotaStats | None = None
) -> QuotaStats:
    """Delete the oldest evidence not held until the media dir fits ``quota_bytes``."""
    stats = stats or QuotaStats()
    stats.sweeps += 1
    total = dir_bytes(media_dir)
    held = held_events(session)
    held_media: set[str] = set()
    candidates: list[tuple[object, str, object]] = []
    if total > quota_bytes:
        held_media = media_held_by(session, held)  # shared clips: held while any of their events is
        for item in session.scalars(select(MediaItem).where(MediaItem.state == "complete")):
            candidates.append((item.completed_at or item.created_at, "media", item))
        for alert in session.scalars(select(Alert)):
            if (media_dir / alert.snapshot_path).is_file():
                candidates.append((alert.received_at, "snapshot", alert))
        candidates.sort(key=lambda c: c[0])  # type: ignore[arg-type,return-value]
    held_bytes = 0
    for _when, kind, obj in candidates:
        if total <= quota_bytes:
            break
        if kind == "media":
            item: MediaItem = obj  # type: ignore[assignment]
            if is_media_held(item, held, held_media):
                held_bytes += item.size_bytes
                continue
            paths = media_names(item, media_dir)
        else:
            alert: Alert = obj  # type: ignore[assignment]
            if alert.event_id in held:
                continue
            snap = media_dir / alert.snapshot_path
            clip = snap.with_suffix(CLIP_SUFFIX)
            paths = [snap, clip, h264_copy(clip)]
        freed = 0
        for p in paths:
            size = _size(p)
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            freed += size
            stats.deleted_files += 1
        if kind == "media":
            item.state, item.path = "expired", ""
        total -= freed
        stats.deleted_bytes += freed
    session.commit()
    stats.bytes = total
    stats.held_bytes = held_bytes
    if total > quota_bytes and not stats.over:
        log.warning("retention: media %d bytes over the quota of %d: the rest is evidence of open incidents",
                    total - quota_bytes, quota_bytes)  # fmt: skip
    stats.over = total > quota_bytes
    if stats.deleted_files:
        log.debug("retention: %d files deleted so far to keep the quota", stats.deleted_files)
    return stats
