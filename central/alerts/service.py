"""Storing and querying alerts. Callers own the session; ``store_alert`` commits its own work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.alerts.models import Alert
from central.dispatch.models import WorkOrder
from central.files import CLIP_SUFFIX, h264_copy, write_atomic
from central.incidents.models import IncidentAlert
from wire import AlertMessage


class SnapshotError(ValueError):
    """The alert's snapshot is not valid base64 or does not match its sha256."""


def snapshot_relpath(msg: AlertMessage) -> Path:
    """``<yyyy-mm-dd>/<event_id>.jpg``, dated by capture time in UTC."""
    return Path(msg.ts.astimezone(UTC).strftime("%Y-%m-%d")) / f"{msg.event_id}.jpg"


# Built once: every message of an alert's life looks its event up, and building the statement
# anew each time cost more than running it (SQLAlchemy's expression and cache-key work).
_BY_EVENT_ID = select(Alert).where(Alert.event_id == bindparam("event_id"))


def get_by_event_id(session: Session, event_id: str) -> Alert | None:
    return session.scalar(_BY_EVENT_ID, {"event_id": event_id})


def store_alert(session: Session, msg: AlertMessage, media_dir: Path) -> tuple[Alert, bool]:
    """Store ``msg`` and its snapshot; returns (alert, created).

    Idempotent on ``event_id``: MQTT QoS 1 delivers at least once, so a redelivery returns the
    stored row with ``created=False`` and writes nothing. A later phase of a stored event is not a
    new alert either (``created=False``); it only brings what the first message could not: an
    update's better snapshot, and the clip's event offset of a message with ``clip`` (normally the
    end), saved in one UPDATE when it differs from the stored one. Raises ``SnapshotError`` on a bad
    snapshot, and on a later phase without one for an event not stored (nothing to show).
    """
    try:
        data = None if msg.snapshot is None else msg.snapshot.payload()
    except ValueError as exc:
        raise SnapshotError(str(exc)) from exc

    existing = get_by_event_id(session, msg.event_id)
    if existing is not None:
        _later_phase(session, existing, msg, data, media_dir)
        return existing, False
    if msg.snapshot is None or data is None:
        # A later phase without a frame, whose start never arrived: nothing to show an operator.
        raise SnapshotError(f"{msg.phase} of an unknown event carries no snapshot")

    rel = snapshot_relpath(msg)
    write_atomic(media_dir / rel, data)
    alert = Alert(
        event_id=msg.event_id,
        station=msg.station,
        camera=msg.camera,
        rule=msg.rule,
        rule_kind=msg.rule_kind,
        zone=msg.zone,
        label=msg.label,
        score=msg.score,
        x1=msg.box.x1,
        y1=msg.box.y1,
        x2=msg.box.x2,
        y2=msg.box.y2,
        track_id=msg.track_id,
        pts_s=msg.pts_s,
        ts=msg.ts,
        received_at=datetime.now(UTC),
        snapshot_path=rel.as_posix(),
        snapshot_sha256=msg.snapshot.sha256,
        snapshot_size=len(data),
        clip_offset_s=msg.clip.event_offset_s if msg.clip is not None else None,  # its start was lost
    )
    session.add(alert)
    try:
        session.commit()
    except IntegrityError:
        # Another writer (another instance of a shared group) stored the same event first, maybe
        # from another phase: what this message brings is applied like any later phase's.
        session.rollback()
        existing = get_by_event_id(session, msg.event_id)
        if existing is None:
            raise
        _later_phase(session, existing, msg, data, media_dir)
        return existing, False
    return alert, True


def _later_phase(session: Session, alert: Alert, msg: AlertMessage, data: bytes | None, media_dir: Path) -> None:
    """Apply a further message of a stored event, committing only when something changed (so a
    redelivery writes nothing): an update's better frame of the object (found within the station's
    snapshot window) replaces the snapshot; a message with ``clip`` sets where the event starts in
    it. Phases without a new frame carry no snapshot."""
    changed = False
    snap = msg.snapshot if msg.phase == "update" else None  # an end brings none (an old station's, the same)
    if snap is not None and data is not None and snap.sha256 != alert.snapshot_sha256:
        write_atomic(media_dir / alert.snapshot_path, data)
        alert.snapshot_sha256 = snap.sha256
        alert.snapshot_size = len(data)
        changed = True
    if msg.clip is not None and alert.clip_offset_s != msg.clip.event_offset_s:
        alert.clip_offset_s = msg.clip.event_offset_s
        changed = True
    if changed:
        session.commit()  # one UPDATE of the row


def list_alerts(
    session: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    station: str | None = None,
    camera: str | None = None,
    rule: str | None = None,
    states: Sequence[str] | None = None,
    before: Alert | None = None,
    visible: ColumnElement[bool] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Alert], int]:
    """A page of alerts, newest capture time first, and the total matching the filters.

    ``visible`` is the caller's scope (what the asking user may see), applied before anything else.
    ``states`` keeps alerts whose incident's work order is in one of them. ``before`` is a cursor:
    only alerts after it in the feed's order (older, or as old with a lower id), so that a console
    paging back while new alerts arrive neither skips nor repeats any; ``total`` ignores it.
    ``since`` and ``until`` keep the capture times in [since, until).
    """
    query = select(Alert)
    if visible is not None:
        query = query.where(visible)
    if since is not None:
        query = query.where(Alert.ts >= since)
    if until is not None:
        query = query.where(Alert.ts < until)
    if rule is not None:
        query = query.where((Alert.rule == rule) | (Alert.rule_kind == rule))
    if station is not None:
        query = query.where(Alert.station == station)
    if camera is not None:
        query = query.where(Alert.camera == camera)
    if states:
        in_state = (
            select(IncidentAlert.alert_id)
            .join(WorkOrder, WorkOrder.incident_id == IncidentAlert.incident_id)
            .where(WorkOrder.state.in_(list(states)))
        )
        query = query.where(Alert.id.in_(in_state))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if before is not None:
        query = query.where((Alert.ts < before.ts) | ((Alert.ts == before.ts) & (Alert.id < before.id)))
    rows = session.scalars(query.order_by(Alert.ts.desc(), Alert.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def get_alert(session: Session, alert_id: int) -> Alert | None:
    return session.get(Alert, alert_id)


def snapshot_file(alert: Alert, media_dir: Path) -> Path | None:
    """The snapshot's path on disk, or None when it is missing or would escape the media dir."""
    root = media_dir.resolve()
    path = (root / alert.snapshot_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def clip_file(alert: Alert, media_dir: Path, h264: bool = False) -> Path | None:
    """The alert's clip, stored beside its snapshot as ``<event_id>.mp4``, when one has arrived;
    ``h264``: its H.264 copy (``<event_id>.h264.mp4``), made when the clip is in another codec."""
    root = media_dir.resolve()
    clip = (root / alert.snapshot_path).with_suffix(CLIP_SUFFIX)
    path = (h264_copy(clip) if h264 else clip).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
