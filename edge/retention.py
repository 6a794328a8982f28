"""Retention of the edge box's evidence: the media dir (clips, requested clips) within a disk quota.

Oldest files go first. Never deleted: evidence the centre has not acknowledged yet - the outbox holds
it by a hard link (``st_nlink > 1``) or, where it had to copy, by its event id in the outbox's media
table - and files written in the last ``fresh_s`` (handed to the link, not yet committed there).
After each new clip the agent calls ``enforce`` keeping room for the next one (the largest clip
seen, at least 5 % of the quota or 8 MiB), so the folder stays within the quota as clips land. ``alarm`` says when the quota is mostly
taken by what cannot be deleted, or the file system itself is filling: the agent reports both to the
centre (``wire.link.StationProblem``) before anything runs out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HEADROOM_MIN = 8 * 2**20
HeldFn = Callable[[], set[str]]  # stems (event ids) of files the outbox still owes the centre


@dataclass
class RetentionStats:
    bytes: int = 0  # media dir total at the last sweep
    held_bytes: int = 0  # of which not deletable (unacknowledged, fresh)
    files: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    sweeps: int = 0
    largest_file: int = 0


def outbox_held(outbox_db: Path) -> HeldFn:
    """Event ids whose media the outbox still holds (a read-only connection of its own)."""

    def held() -> set[str]:
        if not outbox_db.is_file():
            return set()
        try:
            con = sqlite3.connect(f"file:{outbox_db}?mode=ro", uri=True, timeout=1.0)
            try:
                rows = con.execute("SELECT event_id FROM media WHERE event_id IS NOT NULL").fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            return set()
        return {r[0] for r in rows}

    return held


class MediaJanitor:
    def __init__(
        self, media_dir: Path, quota_bytes: int, alarm_pct: float = 90.0, held_fn: HeldFn | None = None,
        fresh_s: float = 0.0,
    ) -> None:  # fmt: skip
        if quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be > 0, got {quota_bytes}")
        self.media_dir = Path(media_dir)
        self.quota_bytes = quota_bytes
        self.alarm_pct = alarm_pct
        self.held_fn = held_fn
        self.fresh_s = fresh_s
        self.stats = RetentionStats()
        self._warned = False
        self._landed = 0  # bytes of clips written since the last sweep
        self._lock = threading.Lock()  # the evidence worker (per clip) and the agent's timer both sweep

    def enforce(self, keep: frozenset[str] = frozenset()) -> int:
        """Delete the oldest deletable files until the folder plus room for one more clip fits the
        quota; returns the bytes freed. ``keep``: paths that must stay (just written)."""
        with self._lock:
            return self._enforce(keep)

    def landed(self, path: str, size: int) -> int:
        """A clip was written: sweep only when the quota may be at stake (a full sweep walks the
        folder and reads the outbox; per clip, in a busy scene, it was a fifth of the agent's
        Python time). Between sweeps the running total counts what landed."""
        with self._lock:
            self._landed += size
            self.stats.largest_file = max(self.stats.largest_file, size)
            if self.stats.sweeps and self.stats.bytes + self._landed + self._headroom() <= self.quota_bytes:
                return 0
            return self._enforce(frozenset({path}))

    def _headroom(self) -> int:
        # Room for the next clip: the largest seen, at least 5 % of the quota or 8 MiB, at most half.
        return min(self.quota_bytes // 2, max(self.stats.largest_file, self.quota_bytes // 20, HEADROOM_MIN))

    def _enforce(self, keep: frozenset[str]) -> int:
        self._landed = 0  # the scan sees them
        files = self._scan()
        held = self.held_fn() if self.held_fn is not None else set()
        now = time.time()
        total = sum(f[1] for f in files)
        largest = max([self.stats.largest_file, *(f[1] for f in files)]) if files else self.stats.largest_file
        self.stats.largest_file = largest
        headroom = self._headroom()
        freed = 0
        gone: set[Path] = set()
        for mtime, size, nlink, path in sorted(files):
            if total + headroom <= self.quota_bytes:
                break
            if nlink > 1 or path.stem in held or str(path) in keep or now - mtime < self.fresh_s:
                continue
            try:
                path.unlink()
            except OSError:
                continue
            gone.add(path)
            total -= size
            freed += size
            self.stats.deleted_files += 1
            self.stats.deleted_bytes += size
        if freed:
            self._prune_dirs()
        left = [f for f in files if f[3] not in gone]
        self.stats.bytes = total
        self.stats.files = len(left)
        self.stats.held_bytes = sum(
            s for m, s, n, p in left if n > 1 or p.stem in held or str(p) in keep or now - m < self.fresh_s
        )
        self.stats.sweeps += 1
        if total > self.quota_bytes and not self._warned:
            self._warned = True
            log.warning("retention: media dir %s over its quota (%d > %d bytes): what is left is not yet "
                        "acknowledged by the centre, or just written", self.media_dir, total, self.quota_bytes)  # fmt: skip
        elif total <= self.quota_bytes:
            self._warned = False
        return freed

    def alarm(self) -> list[str]:
        """Problems worth telling the centre about (empty: fine)."""
        out = []
        q = self.stats
        if q.held_bytes >= self.quota_bytes * self.alarm_pct / 100:
            out.append(f"unacknowledged evidence takes {100 * q.held_bytes / self.quota_bytes:.0f} % of the "
                       f"media quota ({self.quota_bytes / 2**20:.0f} MiB); new clips will push it over")  # fmt: skip
        probe = self.media_dir if self.media_dir.exists() else self.media_dir.parent
        try:
            u = shutil.disk_usage(probe)
        except OSError:
            return out
        used_pct = 100.0 * (u.total - u.free) / u.total if u.total else 0.0
        if used_pct >= self.alarm_pct:
            out.append(f"disk of {probe} is {used_pct:.0f} % full ({u.free / 2**30:.1f} GiB free)")
        return out

    def _scan(self) -> list[tuple[float, int, int, Path]]:
        out: list[tuple[float, int, int, Path]] = []
        if not self.media_dir.is_dir():
            return out
        for dirpath, _dirs, names in os.walk(self.media_dir):
            for name in names:
                if name.startswith("."):
                    continue  # a clip being written (.part)
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, st.st_nlink, p))
        return out

    def _prune_dirs(self) -> None:
        for dirpath, _dirs, _names in sorted(os.walk(self.media_dir), key=lambda w: -len(w[0])):
            d = Path(dirpath)
            if d != self.media_dir:
                with contextlib.suppress(OSError):
                    d.rmdir()  # only when empty
