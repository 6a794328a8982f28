"""Packets of a long event wait on disk, not in memory.

The clip ring holds every packet an open event still needs: up to ``max_clip_s`` (300 s, 150 MB
of a 4 Mbit/s camera) while, say, a car stays parked in a zone. Packets older than the recorder's
``ram_s`` are written to an anonymous file (by the agent's spool thread, outside the ring's lock:
never on a camera's thread) and replaced in the ring by a ``Spooled`` record that reads them back
when the clip is written. ``Spooled`` has the attributes of ``av.Packet`` that clip
writing uses (``bytes()`` gives the data), so a clip mixes both kinds freely.

Files are created unlinked (``tempfile.TemporaryFile``): the disk space goes back to the system when
the last record of a segment is dropped, also after a crash; nothing is left to clean up.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

SEGMENT_BYTES = 64 * 2**20  # a new file after this much: old segments go as the ring moves on


class _Segment:
    """One append-only file; written by the agent's spool thread, read by the evidence writer."""

    def __init__(self, folder: Path) -> None:
        # Closed (its space freed) when the last record that reads it is dropped, not at a block's end.
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
        self.fd = self._file.fileno()
        self.size = 0

    def append(self, data: bytes | memoryview) -> int:
        at = self.size
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.size)
            self.size += n
            view = view[n:]
        return at

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)


@dataclass(frozen=True, slots=True)
class Spooled:
    """A packet on disk, with what clip writing reads of an ``av.Packet``."""

    segment: _Segment
    offset: int
    size: int
    pts: int | None
    dts: int | None
    duration: int | None
    time_base: Fraction | None
    is_keyframe: bool
    stream: av.video.stream.VideoStream

    def __bytes__(self) -> bytes:
        return self.segment.read(self.offset, self.size)


@dataclass
class SpoolStats:
    packets: int = 0
    bytes: int = 0
    errors: int = 0  # writes that failed (disk full, read-only): those packets stayed in memory


class Spool:
    """Segment files in ``folder``; ``put`` never raises (a failure keeps the packet in memory)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.stats = SpoolStats()
        self._segment: _Segment | None = None

    def release(self) -> None:
        """Nothing in the ring is on disk any more: let the current file go (with its last reader)."""
        self._segment = None

    def put(self, packet: av.Packet) -> Spooled | None:
        data = memoryview(packet)
        try:
            seg = self._segment
            if seg is None or seg.size + len(data) > SEGMENT_BYTES:
                self.folder.mkdir(parents=True, exist_ok=True)
                seg = self._segment = _Segment(self.folder)
            offset = seg.append(data)
        except OSError:
            self.stats.errors += 1
            self._segment = None  # try a fresh file next time
            return None
        self.stats.packets += 1
        self.stats.bytes += len(data)
        return Spooled(
            seg, offset, len(data), packet.pts, packet.dts, packet.duration, packet.time_base,
            bool(packet.is_keyframe), packet.stream,
        )  # fmt: skip
