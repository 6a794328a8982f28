"""An H.264 copy of each clip in another codec, so that every operator's browser plays it.

Stations remux their cameras' packets into clips without re-encoding them (``wire.mp4``). A camera
that records H.265, as most IP cameras' main streams do, so sends H.265 clips: Safari and Edge or
Chrome with a hardware decoder play them, Chromium and Firefox on Linux do not. The original stays
the evidence (its sha256 is the station's); the centre, a server rather than an edge box, encodes
one H.264 copy for viewing, on its own thread, oldest clip first, off the ingest path. The copy is
``<clip>.h264.mp4`` beside the clip and ``<snapshot>.h264.mp4`` beside each alert the clip is
linked to; the console offers both to the browser, which plays the first it can.

The work list is the database (``media_items.rendition`` is None until a clip is looked at), so a
restart loses nothing; several instances sharing a database claim each clip before working on it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from central.alerts.service import clip_file, get_by_event_id
from central.files import h264_copy, link_or_copy
from central.media.models import MediaItem
from central.media.service import events_of, media_file
from central.outage import DatabaseOutage, is_outage
from wire.mp4 import BROWSER_CODECS, H264Writer

log = logging.getLogger(__name__)

BATCH = 100
PENDING = (
    select(MediaItem.media_id, MediaItem.path)
    .where(
        MediaItem.kind == "clip",
        MediaItem.state == "complete",
        MediaItem.content_type == "video/mp4",
        MediaItem.rendition.is_(None),
    )
    .order_by(MediaItem.completed_at, MediaItem.media_id)
    .limit(BATCH)
)


def codec_of(path: Path) -> str | None:
    """The codec of a clip's video stream, read from its header (nothing decoded); None when unreadable."""
    try:
        with av.open(str(path)) as c:
            return c.streams.video[0].codec_context.name if c.streams.video else None
    except (av.error.FFmpegError, OSError):
        return None


@dataclass
class RenditionStats:
    made: int = 0  # H.264 copies written
    not_needed: int = 0  # clips already in H.264
    failed: int = 0  # clips that could not be decoded or encoded (the original stays)
    seconds: float = 0.0  # wall time spent encoding copies


def make_h264_copy(clip: Path, dst: Path) -> bool:
    """Write ``dst``, an H.264 copy of ``clip``; False (nothing written) when it is H.264 already.

    Written under a temporary name and renamed, so a reader never sees half a copy."""
    with av.open(str(clip)) as src:
        if not src.streams.video:
            raise ValueError(f"{clip.name}: no video stream")
        stream = src.streams.video[0]
        if stream.codec_context.name in BROWSER_CODECS:
            return False
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(name)  # own name: another instance may be copying the same clip
        try:
            frames = src.decode(stream)
            first = next(frames, None)
            if first is None:
                raise ValueError(f"{clip.name}: no frame decoded")
            cc = stream.codec_context
            with H264Writer(tmp, fps, cc.width, cc.height, rotation=first.rotation) as out:
                out.write(first)
                for frame in frames:
                    out.write(frame)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return True


class Renditions:
    """The copying thread: ``wake()`` after a clip completes; it also looks every ``poll_s``."""

    def __init__(
        self, sessions: sessionmaker[Session], media_dir: Path, poll_s: float = 5.0, outage: DatabaseOutage | None = None
    ) -> None:
        self._sessions = sessions
        self._outage = outage or DatabaseOutage()
        self._media_dir = media_dir
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = RenditionStats()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        with self._sessions() as session:  # claims of a run that died mid-copy: take them again
            session.execute(update(MediaItem).where(MediaItem.rendition == "working").values(rendition=None))
            session.commit()
        self._thread = threading.Thread(target=self._loop, name="xl-central-renditions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:
                if is_outage(exc):  # logged once for the whole outage (central/outage.py)
                    self._outage.failed("renditions", exc)
                else:
                    log.exception("renditions: round failed; next in %.0f s", self._poll_s)
                busy = False
            if not busy:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def run_once(self) -> bool:
        """Look at the oldest clips not yet looked at: mark those in H.264 at once, in one commit
        (most clips: the ingest shares the database), and copy the first other one. False when
        there was none."""
        with self._sessions() as session:
            rows = session.execute(PENDING).all()
            if not rows:
                return False
            plain = {m for m, path in rows if codec_of(self._media_dir / path) in BROWSER_CODECS}
            others = [m for m, _path in rows if m not in plain]
            if plain:
                marked = session.execute(
                    update(MediaItem)
                    .where(MediaItem.media_id.in_(plain), MediaItem.rendition.is_(None))
                    .values(rendition="none")
                )
                session.commit()
                self.stats.not_needed += marked.rowcount
            if not others:
                return True
            media_id = others[0]
            claimed = session.execute(
                update(MediaItem)
                .where(MediaItem.media_id == media_id, MediaItem.rendition.is_(None))
                .values(rendition="working")
            )
            session.commit()
            if claimed.rowcount != 1:
                return True  # another instance took it
            item = session.get(MediaItem, media_id)
            assert item is not None
            item.rendition = self._copy(session, item)
            session.commit()
        return True

    def _copy(self, session: Session, item: MediaItem) -> str:
        clip = media_file(item, self._media_dir)
        if clip is None:
            return "gone"
        session.rollback()  # no transaction held while copying (seconds); and a fresh read after it
        t0 = time.monotonic()
        try:
            made = make_h264_copy(clip, h264_copy(clip))
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            self.stats.failed += 1
            log.warning("renditions: no H.264 copy of clip %s (%s/%s): %s",
                        item.media_id, item.station, item.camera, exc)  # fmt: skip
            return "failed"
        if not made:  # read as unreadable above, and H.264 now
            self.stats.not_needed += 1
            return "none"
        if media_file(item, self._media_dir) is None:  # retention took the clip meanwhile
            h264_copy(clip).unlink(missing_ok=True)
            return "gone"
        self.stats.made += 1
        self.stats.seconds += time.monotonic() - t0
        for event_id in events_of(session, item):
            alert = get_by_event_id(session, event_id)
            beside = clip_file(alert, self._media_dir) if alert is not None else None
            if beside is not None and os.path.samefile(beside, clip):  # the clip linked is this one
                link_or_copy(h264_copy(clip), h264_copy(beside))
        return "ready"
