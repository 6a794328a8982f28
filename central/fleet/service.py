"""Fleet state from status/stats messages, health alerts, and station commands."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet.models import FleetCamera, FleetStation, HealthAlert, StationCommand
from central.media.models import MediaItem
from wire.link import CommandReply, StationProblem, StationStats, StationStatus

log = logging.getLogger(__name__)

CAMERA_DOWN_STATES = ("offline", "reconnecting", "stalled")


def _station(session: Session, station: str) -> FleetStation:
    row = session.get(FleetStation, station)
    if row is None:
        row = FleetStation(station=station, state="unknown")
        session.add(row)
    return row


def _open_alert(session: Session, station: str, camera: str, kind: str) -> HealthAlert | None:
    return session.scalar(
        select(HealthAlert).where(
            HealthAlert.station == station,
            HealthAlert.camera == camera,
            HealthAlert.kind == kind,
            HealthAlert.cleared_at.is_(None),
        )
    )


def _raise(
    session: Session, station: str, camera: str, kind: str, detail: str, now: datetime
) -> HealthAlert | None:
    if _open_alert(session, station, camera, kind) is not None:
        return None
    alert = HealthAlert(station=station, camera=camera, kind=kind, detail=detail, raised_at=now)
    session.add(alert)
    log.warning("fleet: health alert %s for %s%s: %s", kind, station, f"/{camera}" if camera else "", detail)
    return alert


def _clear(session: Session, station: str, camera: str, kinds: tuple[str, ...], now: datetime) -> None:
    for kind in kinds:
        alert = _open_alert(session, station, camera, kind)
        if alert is not None:
            alert.cleared_at = now


def update_status(session: Session, msg: StationStatus, now: datetime | None = None) -> list[HealthAlert]:
    now = now or datetime.now(UTC)
    row = _station(session, msg.station)
    raised = []
    if row.state_ts is not None and msg.ts < row.state_ts:
        return raised  # older than what we know (a retained message replayed after a newer one)
    row.state, row.state_ts = msg.state, msg.ts
    if msg.state == "online":
        row.last_seen = now
        _clear(session, msg.station, "", ("offline", "silent"), now)
    elif a := _raise(
        session, msg.station, "", "offline", "station went offline (last will or shutdown)", now
    ):
        raised.append(a)
    session.commit()
    return raised


def update_stats(session: Session, msg: StationStats, now: datetime | None = None) -> list[HealthAlert]:
    now = now or datetime.now(UTC)
    row = _station(session, msg.station)
    row.last_seen, row.stats_ts = now, msg.ts
    if row.state != "online":
        row.state, row.state_ts = "online", msg.ts
    row.stats_interval_s, row.uptime_s = msg.interval_s, msg.uptime_s
    row.queue_depth, row.queue_dropped = msg.queue_depth, msg.queue_dropped
    o = msg.outbox
    row.outbox_items, row.outbox_bytes, row.outbox_oldest_age_s = o.items, o.bytes, o.oldest_age_s
    row.outbox_dropped_events, row.outbox_dropped_media = o.dropped_events, o.dropped_media
    _clear(session, msg.station, "", ("offline", "silent"), now)
    raised = []
    for c in msg.cameras:
        cam = session.get(FleetCamera, (msg.station, c.camera))
        if cam is None:
            cam = FleetCamera(station=msg.station, camera=c.camera)
            session.add(cam)
        cam.state, cam.fps_in, cam.fps_detected = c.state, c.fps_in, c.fps_detected
        cam.last_frame_ts, cam.frames_decoded = c.last_frame_ts, c.frames_decoded
        cam.decode_errors, cam.reconnects, cam.last_error = c.decode_errors, c.reconnects, c.last_error
        cam.updated_at = now
        if c.state in CAMERA_DOWN_STATES:
            if a := _raise(
                session, msg.station, c.camera, "camera_down", f"camera {c.state}: {c.last_error}", now
            ):
                raised.append(a)
        else:
            _clear(session, msg.station, c.camera, ("camera_down",), now)
    raised += _problems(session, msg, now)
    session.commit()
    return raised


# Health alert kinds for the box's own problems (wire.link.StationProblem.check).
PROBLEM_KINDS = tuple(StationProblem.model_fields["check"].annotation.__args__)


def _problems(session: Session, msg: StationStats, now: datetime) -> list[HealthAlert]:
    """One open health alert per kind of problem the station reports; cleared when it stops."""
    by_kind: dict[str, list[str]] = {}
    for p in msg.problems:
        by_kind.setdefault(p.check, []).append(f"{p.subject}: {p.detail}" if p.subject else p.detail)
    raised = []
    for kind, details in by_kind.items():
        if a := _raise(session, msg.station, "", kind, "; ".join(details)[:2000], now):
            raised.append(a)
    _clear(session, msg.station, "", tuple(k for k in PROBLEM_KINDS if k not in by_kind), now)
    return raised


def sweep_silent(session: Session, silent_after_s: float, now: datetime | None = None) -> list[HealthAlert]:
    """Raise a ``silent`` alert for every online station not heard from for ``silent_after_s``."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=silent_after_s)
    raised = []
    for row in session.scalars(select(FleetStation).where(FleetStation.state == "online")):
        if row.last_seen is not None and row.last_seen < cutoff:
            detail = f"no status or stats for {int((now - row.last_seen).total_seconds())} s"
            if a := _raise(session, row.station, "", "silent", detail, now):
                raised.append(a)
    session.commit()
    return raised


def alert_dict(a: HealthAlert) -> dict[str, Any]:
    return {
        "id": a.id, "station": a.station, "camera": a.camera, "kind": a.kind, "detail": a.detail,
        "raised_at": a.raised_at.isoformat(), "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
    }  # fmt: skip


def fleet_view(session: Session, silent_after_s: float, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    cams: dict[str, list[FleetCamera]] = {}
    for c in session.scalars(select(FleetCamera).order_by(FleetCamera.station, FleetCamera.camera)):
        cams.setdefault(c.station, []).append(c)
    open_alerts = list(session.scalars(select(HealthAlert).where(HealthAlert.cleared_at.is_(None))))
    stations = []
    for s in session.scalars(select(FleetStation).order_by(FleetStation.station)):
        silent = s.last_seen is not None and (now - s.last_seen).total_seconds() > silent_after_s
        stations.append({
            "station": s.station,
            "state": s.state,
            "online": s.state == "online" and not silent,
            "silent": silent,
            "last_seen": s.last_seen.isoformat() if s.last_seen else None,
            "state_ts": s.state_ts.isoformat() if s.state_ts else None,
            "uptime_s": s.uptime_s,
            "queue_depth": s.queue_depth,
            "queue_dropped": s.queue_dropped,
            "outbox": {
                "items": s.outbox_items, "bytes": s.outbox_bytes, "oldest_age_s": s.outbox_oldest_age_s,
                "dropped_events": s.outbox_dropped_events, "dropped_media": s.outbox_dropped_media,
            },
            "cameras": [
                {
                    "camera": c.camera, "state": c.state, "fps_in": c.fps_in, "fps_detected": c.fps_detected,
                    "last_frame_ts": c.last_frame_ts.isoformat() if c.last_frame_ts else None,
                    "frames_decoded": c.frames_decoded, "decode_errors": c.decode_errors,
                    "reconnects": c.reconnects, "last_error": c.last_error,
                    "updated_at": c.updated_at.isoformat() if c.updated_at else None,
                }
                for c in cams.get(s.station, [])
            ],
            "health_alerts": [alert_dict(a) for a in open_alerts if a.station == s.station],
        })  # fmt: skip
    return {"stations": stations, "open_health_alerts": len(open_alerts)}


# -- commands ---------------------------------------------------------------------------------------


def create_command(
    session: Session, cmd_id: str, station: str, camera: str, kind: str, seconds: float
) -> StationCommand:
    row = StationCommand(
        cmd_id=cmd_id, station=station, camera=camera, kind=kind, seconds=seconds, state="sent",
        requested_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(row)
    session.commit()
    return row


def record_reply(session: Session, reply: CommandReply) -> bool:
    """Returns False when the command is unknown or belongs to another station (nothing stored)."""
    row = session.get(StationCommand, reply.cmd_id)
    if row is None or row.station != reply.station:
        return False
    if row.state == "sent":
        row.state = "ok" if reply.ok else "failed"
        row.error, row.media_id, row.replied_at = reply.error, reply.media_id, datetime.now(UTC)
        session.commit()
    return True


def command_view(session: Session, row: StationCommand) -> dict[str, Any]:
    media = session.get(MediaItem, row.media_id) if row.media_id else None
    ready = media is not None and media.state == "complete"
    return {
        "cmd_id": row.cmd_id, "station": row.station, "camera": row.camera, "kind": row.kind,
        "seconds": row.seconds, "state": row.state, "error": row.error, "media_id": row.media_id,
        "media_state": media.state if media is not None else None,
        "media_url": f"/api/media/{row.media_id}" if ready else None,
        "requested_at": row.requested_at.isoformat(),
        "replied_at": row.replied_at.isoformat() if row.replied_at else None,
    }  # fmt: skip
