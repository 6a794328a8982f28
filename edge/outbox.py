"""The station's durable outbox: SQLite (WAL), one writer (the link thread).

Every alert, media chunk and command reply is committed here *before* it is published, and deleted
only when the centre acknowledges it on ``xl/v1/{station}/ack`` after its own database commit. A
process crash, a power cut or a broker restart therefore loses nothing that reached this table.

Quota policy (``quota_bytes``, counted over payload and media bytes still owed to the centre):
when a new item does not fit, the oldest whole media file (all its remaining chunks) is dropped
first; events and replies are dropped (oldest first) only when no media is left. A single item
larger than the quota is refused. Every drop is counted (``dropped_events``, ``dropped_media``,
persisted) and logged.

``journal`` keeps the id of every event ever raised here (not deleted by acks): what the chaos
harness counts as "raised".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import math
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.models import sha256_file
from wire.link import MEDIA_CHUNK_BYTES, MediaChunk, OutboxFigures

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,               -- event | chunk | reply
    topic TEXT NOT NULL,
    payload BLOB,                     -- NULL for chunks: read from the media file when sent
    media_id TEXT,
    chunk_index INTEGER,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_items_media ON items(media_id);
CREATE TABLE IF NOT EXISTS media (
    media_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    owned INTEGER NOT NULL,           -- 1: the outbox's own copy, deleted once delivered
    station TEXT NOT NULL,
    camera TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    event_id TEXT,
    event_ids TEXT,                   -- further events a shared clip serves, space-separated
    cmd_id TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunk_bytes INTEGER NOT NULL,
    count INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    event_id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxFull(Exception):
    """A single item is larger than the whole quota."""


@dataclass(frozen=True)
class Item:
    seq: int
    item_id: str
    kind: str
    topic: str
    payload: bytes | None
    media_id: str | None
    chunk_index: int | None
    size: int


def new_id() -> str:
    return uuid.uuid4().hex


class Outbox:
    """Not thread-safe: one owner thread (the link). ``synchronous=FULL``: a commit survives power loss."""

    def __init__(self, path: Path, quota_bytes: int, chunk_bytes: int = MEDIA_CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.media_dir = self.path.parent / f"{self.path.stem}.media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self.chunk_bytes = chunk_bytes
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        if "event_ids" not in {r[1] for r in self.db.execute("PRAGMA table_info(media)")}:
            self.db.execute("ALTER TABLE media ADD COLUMN event_ids TEXT")  # an outbox of an older agent
        self._bytes = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """One transaction (one fsync) for a batch of additions."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            self._bytes = self.db.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0]
            raise
        self.db.execute("COMMIT")

    # -- counters ----------------------------------------------------------------------------

    def _bump(self, name: str, n: int = 1) -> None:
        self.db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # -- adding (call inside tx()) ---------------------------------------------------------------

    def add_event(self, topic: str, payload: bytes, event_id: str, camera: str) -> str:
        item_id = new_id()
        self._make_room(len(payload))
        self._insert(item_id, "event", topic, payload, None, None, len(payload))
        self.db.execute(
            "INSERT OR IGNORE INTO journal(event_id, camera, created) VALUES (?, ?, ?)",
            (event_id, camera, time.time()),
        )
        return item_id

    def add_reply(self, topic: str, payload: bytes) -> str:
        item_id = new_id()
        self._make_room(len(payload))
        self._insert(item_id, "reply", topic, payload, None, None, len(payload))
        return item_id

    def add_media(
        self,
        *,
        media_id: str,
        topic: str,
        station: str,
        camera: str,
        kind: str,
        content_type: str,
        sha256: str,
        path: Path | None = None,
        data: bytes | None = None,
        event_id: str | None = None,
        cmd_id: str | None = None,
        event_ids: list[str] | None = None,
    ) -> None:
        """Queue a media file (``path``, hard-linked or copied into the outbox) or ``data`` bytes.

        The content is verified against ``sha256`` first; ValueError when it does not match.
        """
        ext = {"image/jpeg": ".jpg", "video/mp4": ".mp4"}.get(content_type, ".mkv")
        own = self.media_dir / f"{media_id}{ext}"
        if data is not None:
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError("media bytes do not match their sha256")
            tmp = own.with_suffix(".tmp")
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(own)
        elif path is not None:
            if sha256_file(Path(path)) != sha256:
                raise ValueError(f"{path}: content does not match its sha256")
            own.unlink(missing_ok=True)
            try:
                os.link(path, own)  # same file system: no copy, and the edge may delete its own
            except OSError:
                shutil.copyfile(path, own)
        else:
            raise ValueError("add_media needs path or data")
        size = own.stat().st_size
        if size == 0:
            own.unlink(missing_ok=True)
            raise ValueError("media is empty")
        try:
            self._make_room(size)
        except OutboxFull:
            own.unlink(missing_ok=True)
            raise
        count = math.ceil(size / self.chunk_bytes)
        self.db.execute(
            "INSERT INTO media(media_id, path, owned, station, camera, kind, content_type, event_id, "
            "event_ids, cmd_id, sha256, size, chunk_bytes, count, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (media_id, str(own), 1, station, camera, kind, content_type, event_id, " ".join(event_ids or ()),
             cmd_id, sha256, size, self.chunk_bytes, count, time.time()),
        )  # fmt: skip
        for i in range(count):
            n = min(self.chunk_bytes, size - i * self.chunk_bytes)
            self._insert(f"{media_id}.{i}", "chunk", topic, None, media_id, i, n)

    def _insert(
        self, item_id: str, kind: str, topic: str, payload: bytes | None, media_id: str | None,
        index: int | None, size: int,
    ) -> None:  # fmt: skip
        self.db.execute(
            "INSERT INTO items(item_id, kind, topic, payload, media_id, chunk_index, size, created) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (item_id, kind, topic, payload, media_id, index, size, time.time()),
        )
        self._bytes += size

    def _make_room(self, need: int) -> None:
        if need > self.quota_bytes:
            self._bump("refused_oversize")
            raise OutboxFull(f"item of {need} bytes exceeds the outbox quota of {self.quota_bytes}")
        while self._bytes + need > self.quota_bytes:
            row = self.db.execute("SELECT media_id FROM media ORDER BY created, rowid LIMIT 1").fetchone()
            if row is not None:
                log.warning("outbox: over quota, dropping media %s (media goes before events)", row[0])
                self._drop_media(row[0])
                self._bump("dropped_media")
                continue
            row = self.db.execute(
                "SELECT item_id, size FROM items WHERE kind != 'chunk' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            log.warning("outbox: over quota with no media left, dropping the oldest event/reply %s", row[0])
            self.db.execute("DELETE FROM items WHERE item_id = ?", (row[0],))
            self._bytes -= row[1]
            self._bump("dropped_events")

    def _drop_media(self, media_id: str) -> None:
        size = self.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM items WHERE media_id = ?", (media_id,)
        ).fetchone()[0]
        self.db.execute("DELETE FROM items WHERE media_id = ?", (media_id,))
        self._bytes -= size
        self._forget_media(media_id)

    def _forget_media(self, media_id: str) -> None:
        row = self.db.execute("SELECT path, owned FROM media WHERE media_id = ?", (media_id,)).fetchone()
        self.db.execute("DELETE FROM media WHERE media_id = ?", (media_id,))
        if row is not None and row[1]:
            Path(row[0]).unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------------

    def items_after(self, seq: int, limit: int, chunks: bool | None = None) -> list[Item]:
        """Items after ``seq`` in order; ``chunks`` True/False: only media chunks / only the rest."""
        where = "" if chunks is None else (" AND kind = 'chunk'" if chunks else " AND kind != 'chunk'")
        rows = self.db.execute(
            "SELECT seq, item_id, kind, topic, payload, media_id, chunk_index, size FROM items "
            f"WHERE seq > ?{where} ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [Item(*r) for r in rows]

    def get(self, item_ids: list[str]) -> list[Item]:
        if not item_ids:
            return []
        marks = ",".join("?" * len(item_ids))
        rows = self.db.execute(
            "SELECT seq, item_id, kind, topic, payload, media_id, chunk_index, size FROM items "
            f"WHERE item_id IN ({marks}) ORDER BY seq",
            item_ids,
        ).fetchall()
        return [Item(*r) for r in rows]

    def chunk_payload(self, item: Item) -> bytes | None:
        """The MediaChunk message of a chunk item, read from its file; None when the file is gone."""
        row = self.db.execute(
            "SELECT path, station, camera, kind, content_type, event_id, event_ids, cmd_id, sha256, size, "
            "chunk_bytes, count FROM media WHERE media_id = ?",
            (item.media_id,),
        ).fetchone()
        if row is None:
            return None
        path, station, camera, kind, ctype, event_id, more, cmd_id, sha, size, chunk_bytes, count = row
        index = int(item.chunk_index or 0)
        try:
            with open(path, "rb") as f:
                f.seek(index * chunk_bytes)
                data = f.read(chunk_bytes)
        except OSError:
            return None
        # Built from the row add_media validated: re-validating a 340 KB string per chunk was a
        # measurable share of the link thread's time in a busy scene.
        return MediaChunk.model_construct(
            media_id=item.media_id, station=station, camera=camera, kind=kind, content_type=ctype,
            event_id=event_id, event_ids=more.split() if more else [], cmd_id=cmd_id, sha256=sha, size_bytes=size, chunk_bytes=chunk_bytes,
            index=index, count=count, data_b64=base64.b64encode(data).decode("ascii"),
        ).to_json()  # fmt: skip

    # -- acknowledgement -----------------------------------------------------------------------

    def ack(self, item_ids: list[str]) -> int:
        """Delete acknowledged items (unknown ids are ignored: a repeated ack); returns how many went."""
        return self._remove(item_ids, dead=False)

    def reject(self, item_ids: list[str]) -> int:
        """The centre refused these for good: keep a dead letter, stop sending them."""
        return self._remove(item_ids, dead=True)

    def _remove(self, item_ids: list[str], dead: bool) -> int:
        items = self.get(item_ids)
        if not items:
            return 0
        with self.tx():
            media_ids = set()
            for it in items:
                self.db.execute("DELETE FROM items WHERE item_id = ?", (it.item_id,))
                self._bytes -= it.size
                if dead:
                    self.db.execute(
                        "INSERT OR IGNORE INTO dead(item_id, kind, topic, created) VALUES (?,?,?,?)",
                        (it.item_id, it.kind, it.topic, time.time()),
                    )
                    self._bump("dead_letters")
                if it.media_id:
                    media_ids.add(it.media_id)
            for m in media_ids:
                left = self.db.execute("SELECT 1 FROM items WHERE media_id = ? LIMIT 1", (m,)).fetchone()
                if left is None:
                    self._forget_media(m)
        return len(items)

    # -- figures ---------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        return self._bytes

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def figures(self) -> OutboxFigures:
        rows = dict(self.db.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall())
        oldest = self.db.execute("SELECT MIN(created) FROM items").fetchone()[0]
        return OutboxFigures(
            items=sum(rows.values()),
            events=rows.get("event", 0),
            media_chunks=rows.get("chunk", 0),
            bytes=self._bytes,
            quota_bytes=self.quota_bytes,
            oldest_age_s=round(max(0.0, time.time() - oldest), 3) if oldest else 0.0,
            dropped_events=self.counter("dropped_events"),
            dropped_media=self.counter("dropped_media"),
            dead_letters=self.counter("dead_letters"),
        )

    def journal(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT event_id FROM journal ORDER BY created")]
