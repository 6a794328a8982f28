"""Receipt of chunked media, assembly and sha256 check, evidence holds and retention.

Each chunk is written to its own file under ``<media_dir>/.partial/<media_id>/`` and recorded in
``media_chunks`` before it is acknowledged, so a transfer resumes after any failure (station,
broker or centre) with the chunks still missing, and several central instances sharing the media
dir and the database may each take some chunks of one file. When the last chunk is in, the file is
assembled, checked against the sha256 the station sent, and moved to
``<media_dir>/<yyyy-mm-dd>/<station>/<media_id>.<ext>``.

One media item may be evidence of several events: a clip shared by overlapping events of one camera
names the first in ``event_id`` and the others in ``event_ids``. ``media_events`` records every
event of an item (the first included), written with the item from whichever chunk arrives first;
every chunk of the item must name the same set of events (order and which one comes first aside),
or it is refused as inconsistent like any other disagreeing chunk. A complete MP4 clip is
hard-linked beside the snapshot of each of its events' alerts (of its own station and camera).

Retention (``sweep_retention``) deletes media files and alert snapshots older than the retention
age, except evidence of an event with a hold (``hold_evidence``): the incidents code holds the
evidence of every event attached to an open incident and releases it when the incident closes. A
shared clip stays while any one of its events is held.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import BindParameter, ColumnElement, bindparam, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.alerts.models import Alert
from central.alerts.service import get_by_event_id
from central.files import CLIP_SUFFIX, h264_copy, link_or_copy, write_atomic
from central.media.models import EvidenceHold, MediaChunkRow, MediaEvent, MediaItem
from wire.link import MediaChunk

log = logging.getLogger(__name__)

EXT = {"image/jpeg": "jpg", "video/mp4": "mp4", "video/x-matroska": "mkv"}
PARTIAL = ".partial"


class MediaError(ValueError):
    """A chunk that can never be stored (bad data, inconsistent with earlier chunks, bad sha256)."""


def _partial_dir(media_dir: Path, media_id: str) -> Path:
    return media_dir / PARTIAL / media_id


def chunk_events(c: MediaChunk) -> set[str]:
    """Every event the chunk's media is evidence of: ``event_id`` and the events sharing the clip."""
    return ({c.event_id} if c.event_id is not None else set()) | set(c.event_ids)


def _same_file(session: Session, item: MediaItem, c: MediaChunk) -> bool:
    return (item.station, item.camera, item.kind, item.sha256, item.size_bytes, item.chunk_bytes, item.count) == (
        c.station, c.camera, c.kind, c.sha256, c.size_bytes, c.chunk_bytes, c.count,
    ) and set(events_of(session, item)) == chunk_events(c)  # fmt: skip


def _get_or_create(session: Session, c: MediaChunk) -> MediaItem:
    item = session.get(MediaItem, c.media_id)
    if item is not None:
        return item
    item = MediaItem(
        media_id=c.media_id, station=c.station, camera=c.camera, kind=c.kind, content_type=c.content_type,
        event_id=c.event_id, cmd_id=c.cmd_id, sha256=c.sha256, size_bytes=c.size_bytes,
        chunk_bytes=c.chunk_bytes, count=c.count, received=0, state="partial", path="",
        created_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(item)
    session.add_all(MediaEvent(media_id=c.media_id, event_id=e) for e in sorted(chunk_events(c)))
    try:
        session.commit()
    except IntegrityError:  # another instance created it first
        session.rollback()
        item = session.get(MediaItem, c.media_id)
        if item is None:
            raise
    return item


def store_chunk(session: Session, c: MediaChunk, media_dir: Path) -> str:
    """Store one chunk; returns "stored", "duplicate" or "complete" (this chunk finished the file).

    Committed before it returns, so the caller may acknowledge. Raises MediaError for a chunk that
    can never be stored.
    """
    try:
        data = c.data()
    except ValueError as exc:
        raise MediaError(str(exc)) from exc
    item = _get_or_create(session, c)
    if not _same_file(session, item, c):
        raise MediaError(f"chunk disagrees with the earlier chunks of media {c.media_id}")
    if item.state == "complete":
        return "duplicate"
    if item.state == "corrupt":
        raise MediaError(f"media {c.media_id} failed its sha256 check")
    part = _partial_dir(media_dir, c.media_id) / f"{c.index:06d}"
    row = session.get(MediaChunkRow, (c.media_id, c.index))
    if row is not None and part.is_file():
        return "duplicate"
    write_atomic(part, data)
    if row is None:  # else only its file was lost: the row stands
        session.add(MediaChunkRow(media_id=c.media_id, index=c.index))
        session.flush()
    item.received = session.scalar(_CHUNKS_IN, {"media_id": c.media_id})
    session.commit()
    if item.received < item.count:
        return "stored"
    _assemble(session, item, media_dir)
    return "complete"


def _assemble(session: Session, item: MediaItem, media_dir: Path) -> None:
    pdir = _partial_dir(media_dir, item.media_id)
    rel = (
        Path(item.created_at.astimezone(UTC).strftime("%Y-%m-%d"))
        / item.station
        / (f"{item.media_id}.{EXT.get(item.content_type, 'bin')}")
    )
    final = media_dir / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for i in range(item.count):
                block = (pdir / f"{i:06d}").read_bytes()
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != item.sha256:
            Path(tmp).unlink(missing_ok=True)
            item.state = "corrupt"
            session.commit()
            shutil.rmtree(pdir, ignore_errors=True)
            raise MediaError(f"media {item.media_id}: assembled file does not match its sha256")
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    item.state = "complete"
    item.path = rel.as_posix()
    item.completed_at = datetime.now(UTC)
    session.execute(delete(MediaChunkRow).where(MediaChunkRow.media_id == item.media_id))
    session.commit()
    shutil.rmtree(pdir, ignore_errors=True)
    for event_id in events_of(session, item):
        place_clips_beside_alert(session, event_id, media_dir)


def events_of(session: Session, item: MediaItem) -> list[str]:
    """The events ``item`` is evidence of, its ``event_id`` first. Items stored before
    ``media_events`` existed have no rows there: their ``event_id`` alone."""
    rows = session.scalars(_EVENTS_OF, {"media_id": item.media_id})
    first = [item.event_id] if item.event_id is not None else []
    return first + sorted(set(rows) - set(first))


def events_by_media(session: Session, media_ids: list[str]) -> dict[str, list[str]]:
    """The ``media_events`` rows of these items, sorted per item (one query)."""
    out: dict[str, list[str]] = {}
    if media_ids:
        rows = session.execute(
            select(MediaEvent.media_id, MediaEvent.event_id)
            .where(MediaEvent.media_id.in_(media_ids))
            .order_by(MediaEvent.media_id, MediaEvent.event_id)
        )
        for media_id, event_id in rows:
            out.setdefault(media_id, []).append(event_id)
    return out


def serves(event_id: str | BindParameter[str]) -> ColumnElement[bool]:
    """Filter for the media items that are evidence of ``event_id`` (its own or a shared clip)."""
    shared = select(MediaEvent.media_id).where(MediaEvent.event_id == event_id)
    return or_(MediaItem.event_id == event_id, MediaItem.media_id.in_(shared))


# Built once: they run for every chunk or every alert, and building a statement costs about as
# much as running it.
_EVENTS_OF = select(MediaEvent.event_id).where(MediaEvent.media_id == bindparam("media_id"))
_CHUNKS_IN = select(func.count()).select_from(MediaChunkRow).where(MediaChunkRow.media_id == bindparam("media_id"))
_CLIPS_OF = (
    select(MediaItem)
    .where(
        serves(bindparam("event_id")),
        MediaItem.kind == "clip",
        MediaItem.state == "complete",
        MediaItem.content_type == "video/mp4",
    )
    .order_by(MediaItem.completed_at, MediaItem.media_id)
)


def media_held_by(session: Session, event_ids: Iterable[str]) -> set[str]:
    """Ids of the media items that are evidence of any of ``event_ids`` (through ``media_events``;
    check ``MediaItem.event_id`` too for items older than that table)."""
    ids = list(set(event_ids))
    found: set[str] = set()
    for i in range(0, len(ids), 500):  # bounded IN lists (SQLite's limit on bound parameters)
        found.update(
            session.scalars(select(MediaEvent.media_id).where(MediaEvent.event_id.in_(ids[i : i + 500])))
        )
    return found


def is_media_held(item: MediaItem, held_events: set[str], held_media: set[str]) -> bool:
    return (item.event_id is not None and item.event_id in held_events) or item.media_id in held_media


def place_clips_beside_alert(
    session: Session, event_id: str | None, media_dir: Path, alert: Alert | None = None
) -> None:
    """Hard-link a complete MP4 clip of ``event_id`` as ``<snapshot path>.mp4`` (where the alerts API
    looks for an alert's clip). Called for each of a clip's events when it completes and when an
    alert is stored, so the order in which they arrive does not matter. A clip shared by several
    events counts for each of them; the first clip linked beside an alert stays. Only a clip of the
    alert's own station and camera is linked (a station cannot attach evidence to others' alerts).
    ``alert``: the event's row where the caller holds it (ingest, just stored), saving its lookup."""
    if event_id is None:
        return
    if alert is None or alert.event_id != event_id:
        alert = get_by_event_id(session, event_id)
    if alert is None:
        return
    for item in session.scalars(_CLIPS_OF, {"event_id": event_id}):
        if (item.station, item.camera) != (alert.station, alert.camera):
            log.warning("media %s of %s/%s names event %s of %s/%s: not linked beside that alert",
                        item.media_id, item.station, item.camera, event_id, alert.station, alert.camera)  # fmt: skip
            continue
        src = media_file(item, media_dir)
        dst = (media_dir / alert.snapshot_path).with_suffix(CLIP_SUFFIX)
        if src is None or dst.exists():
            continue
        link_or_copy(src, dst)
        if h264_copy(src).is_file():  # made before the alert came in
            link_or_copy(h264_copy(src), h264_copy(dst))


def media_names(item: MediaItem, media_dir: Path) -> list[Path]:
    """The files of a stored item: the file itself and, for a clip, its H.264 copy (if made)."""
    if not item.path:
        return []
    path = media_dir / item.path
    return [path, h264_copy(path)] if item.kind == "clip" else [path]


def media_file(item: MediaItem, media_dir: Path) -> Path | None:
    if item.state != "complete" or not item.path:
        return None
    root = media_dir.resolve()
    path = (root / item.path).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


# -- evidence holds and retention ----------------------------------------------------------------


def hold_evidence(session: Session, event_id: str, reason: str = "open incident") -> None:
    """Protect the evidence (snapshot, clips) of ``event_id`` from retention until released."""
    if session.get(EvidenceHold, event_id) is None:
        session.add(EvidenceHold(event_id=event_id, reason=reason[:255], created_at=datetime.now(UTC)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def release_evidence(session: Session, event_id: str) -> None:
    session.execute(delete(EvidenceHold).where(EvidenceHold.event_id == event_id))
    session.commit()


def is_held(session: Session, event_id: str) -> bool:
    return session.get(EvidenceHold, event_id) is not None


def sweep_retention(session: Session, media_dir: Path, max_age_s: float, now: datetime | None = None) -> dict:
    """Delete evidence older than ``max_age_s`` unless held; returns counts of what went."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=max_age_s)
    held = set(session.scalars(select(EvidenceHold.event_id)))
    held_media = media_held_by(session, held)
    counts = {"media": 0, "snapshots": 0, "clips": 0, "partial": 0, "kept_held": 0}
    for item in session.scalars(
        select(MediaItem).where(MediaItem.state == "complete", MediaItem.completed_at < cutoff)
    ):
        if is_media_held(item, held, held_media):
            counts["kept_held"] += 1
            continue
        for p in media_names(item, media_dir):
            p.unlink(missing_ok=True)
        item.state, item.path = "expired", ""
        counts["media"] += 1
    for item in session.scalars(
        select(MediaItem).where(MediaItem.state.in_(("partial", "corrupt")), MediaItem.created_at < cutoff)
    ):
        if is_media_held(item, held, held_media):
            counts["kept_held"] += 1
            continue
        shutil.rmtree(_partial_dir(media_dir, item.media_id), ignore_errors=True)
        session.execute(delete(MediaChunkRow).where(MediaChunkRow.media_id == item.media_id))
        item.state = "expired"
        counts["partial"] += 1
    for alert in session.scalars(select(Alert).where(Alert.received_at < cutoff)):
        if alert.event_id in held:
            counts["kept_held"] += 1
            continue
        path = media_dir / alert.snapshot_path
        if path.is_file():
            path.unlink()
            counts["snapshots"] += 1
        clip = path.with_suffix(CLIP_SUFFIX)  # the clip's second name beside it (its bytes go with the last)
        if clip.is_file():
            clip.unlink()
            counts["clips"] += 1
        h264_copy(clip).unlink(missing_ok=True)
    session.commit()
    if counts["media"] or counts["snapshots"] or counts["clips"] or counts["partial"]:
        log.info("retention: deleted %s", counts)
    return counts
