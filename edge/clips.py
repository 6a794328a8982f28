"""Evidence clips: a ring of compressed packets per camera, cut by remuxing (no re-encode).

The ring keeps ``pre_s`` of packets (whole GOPs, so a clip can start on a keyframe) plus everything
an open event still needs; with a spool folder, what is older than ``ram_s`` waits on disk
(edge/spool.py), so a long event costs disk, not memory. When an event has ended and ``post_s``
more media has arrived, its packets are handed over as a ``ClipCut``; ``write_clip`` remuxes them
into an MP4 with ``+faststart`` (moov first, so a browser can start playing before the download
ends) and hashes the file.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import av

from edge.models import sha256_file
from edge.orient import file_turns
from edge.spool import Spool, Spooled
from edge.timeline import JUMP_S, Timeline, may_jump, stream_fps
from edge.types import ClipRef
from wire.mp4 import MP4_OPTIONS, REMUX_CODECS, H264Writer, sample_tag


@dataclass(frozen=True)
class _Pkt:
    packet: av.Packet | Spooled
    t_s: float
    key: bool


@dataclass
class _Pending:
    """One clip window; overlapping events of the camera share it (``members``: event -> end)."""

    start_s: float
    members: dict[str, float | None] = field(default_factory=dict)
    begun: dict[str, float] = field(default_factory=dict)  # member -> its start (ring time)
    opened_s: float = 0.0  # event time of the first member

    @property
    def end_s(self) -> float | None:
        """Known once every member has ended: the last end plus post_s."""
        ends = self.members.values()
        return None if any(e is None for e in ends) else max(ends, default=self.start_s)  # type: ignore[type-var]


@dataclass(frozen=True)
class ClipCut:
    event_id: str  # names the file: the first event of the clip
    packets: tuple[av.Packet | Spooled, ...]
    start_t_s: float  # ring time of the first packet (a keyframe at or before the window)
    truncated: bool = False
    from_t_s: float | None = None  # the window asked for starts here (a transcode trims to it)
    event_ids: tuple[str, ...] = ()  # every event this clip is evidence of (empty: event_id alone)
    begins: tuple[float, ...] = ()  # ring time each of ``events`` started (where a player should seek)
    # Ring time of each packet (empty: unknown). Where the stream's clock jumped inside the clip
    # (edge.timeline), they say how far apart the packets around the jump really are.
    times: tuple[float, ...] = ()

    def begin_of(self, event_id: str) -> float | None:
        return dict(zip(self.events, self.begins, strict=False)).get(event_id)

    @property
    def events(self) -> tuple[str, ...]:
        return self.event_ids or (self.event_id,)


@dataclass
class RingStats:
    packets: int = 0
    dropped: int = 0
    clips: int = 0


class ClipRecorder:
    """Thread-safe: packets may come from a record-stream thread, events from the camera thread.

    Events of the camera whose windows overlap share one clip (``share_s`` > 0): an event that
    starts while a clip is still open (a member still running, or within the post window of the
    last one) joins it, if that clip opened at most ``share_s`` earlier and serves fewer than
    ``share_max_events``. The clip then runs from the first member's pre window to the last
    member's post window; it is written and sent once and referenced by every member. In a busy
    scene this is the difference between one clip and ten near-identical ones per camera.
    """

    def __init__(
        self, pre_s: float = 5.0, post_s: float = 5.0, max_clip_s: float = 300.0, share_s: float = 0.0,
        share_max_events: int = 64, spool_dir: Path | None = None, ram_s: float = 20.0,
    ) -> None:  # fmt: skip
        if pre_s < 0 or post_s < 0 or max_clip_s <= 0 or share_s < 0 or share_max_events < 1 or ram_s <= 0:
            raise ValueError(
                f"pre_s, post_s, share_s must be >= 0, max_clip_s and ram_s > 0 and share_max_events >= 1, "
                f"got {pre_s}, {post_s}, {share_s}, {max_clip_s}, {ram_s}, {share_max_events}"
            )
        self.pre_s = pre_s
        self.post_s = post_s
        self.max_clip_s = max_clip_s
        self.share_s = share_s
        self.share_max_events = share_max_events
        self.stats = RingStats()
        self._ring: deque[_Pkt] = deque()
        self._keys: deque[float] = deque()  # times of the keyframes in the ring
        self._pending: dict[str, _Pending] = {}
        self._ready: list[ClipCut] = []
        self._newest = float("-inf")
        self._lock = threading.Lock()
        # Packets older than ram_s go to disk (None: all stay in memory); the ring's first
        # ``_spooled`` entries are on disk, the rest in memory.
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        self.ram_s = ram_s
        self._spooled = 0

    def push(self, packet: av.Packet, t_s: float) -> None:
        """Called per packet of the record stream (holds a reference; never copies the data)."""
        with self._lock:
            if t_s < self._newest - 1.0:  # the stream restarted (reconnect, loop): start afresh
                self._ring.clear()
                self._keys.clear()
                self._spooled = 0
                if self.spool is not None:
                    self.spool.release()
            key = bool(packet.is_keyframe)
            if not self._ring and not key:
                self.stats.dropped += 1
                return  # a clip must start on a keyframe
            self._ring.append(_Pkt(packet, t_s, key))
            self.stats.packets += 1
            self._newest = t_s
            if key:
                self._keys.append(t_s)
                self._trim()
            if self._pending:
                self._cut_due(force=False)

    def spool_pending(self, max_packets: int = 512) -> int:
        """Write packets older than ``ram_s`` to the spool; returns how many moved. Called by the
        agent's spool thread, never by the camera's: the writes happen outside the lock, so a slow
        disk delays the spool, not decoding. What the ring dropped or restarted meanwhile is skipped."""
        spool = self.spool
        if spool is None:
            return 0
        with self._lock:
            ring, before_s = self._ring, self._newest - self.ram_s
            todo = []
            for i in range(self._spooled, min(len(ring), self._spooled + max_packets)):
                if ring[i].t_s >= before_s:
                    break
                todo.append(ring[i])
        done = []
        for item in todo:
            rec = spool.put(item.packet)  # type: ignore[arg-type]  # past ``_spooled``: in memory
            if rec is None:
                break  # counted by the spool; these packets stay in memory for now
            done.append((item, rec))
        with self._lock:
            ring, j = self._ring, self._spooled
            for item, rec in done:
                if j < len(ring) and ring[j] is item:
                    ring[j] = _Pkt(rec, item.t_s, item.key)
                    j += 1
                # else: trimmed (or the stream restarted) while it was written: nothing to replace
            self._spooled = j
        return len(done)

    def held_bytes(self) -> tuple[int, int]:
        """(bytes in memory, bytes on disk) of the packets the ring holds now (walks the ring)."""
        with self._lock:
            ram = disk = 0
            for item in self._ring:
                if isinstance(item.packet, Spooled):
                    disk += item.packet.size
                else:
                    ram += item.packet.size
            return ram, disk

    def begin(self, event_id: str, t_s: float) -> None:
        with self._lock:
            p = self._open_clip(t_s)
            if p is None:
                p = _Pending(t_s - self.pre_s, opened_s=t_s)
            p.members[event_id] = None
            p.begun[event_id] = t_s
            self._pending[event_id] = p

    def end(self, event_id: str, t_s: float) -> None:
        with self._lock:
            p = self._pending.get(event_id)
            if p is not None:
                p.members[event_id] = t_s + self.post_s
                self._cut_due(force=False)

    def _open_clip(self, t_s: float) -> _Pending | None:
        """The clip an event starting at ``t_s`` joins: still open, young enough, not full."""
        if self.share_s <= 0:
            return None
        for p in self._pending.values():
            end = p.end_s
            if (
                (end is None or end >= t_s - self.pre_s)
                and t_s - p.opened_s <= self.share_s
                and len(p.members) < self.share_max_events
            ):
                return p
        return None

    def flush(self) -> None:
        """The stream ended: cut every pending clip with what there is."""
        with self._lock:
            self._cut_due(force=True)

    def take_ready(self) -> list[ClipCut]:
        with self._lock:
            out, self._ready = self._ready, []
            return out

    def recent(self, clip_id: str, seconds: float) -> ClipCut | None:
        """The last ``seconds`` of the ring (at most what it holds: ``pre_s`` plus open events),
        starting on a keyframe; for a dispatcher's "clip of the last N s" command. None when empty."""
        with self._lock:
            if not self._ring:
                return None
            since = self._newest - seconds
            start = 0
            for i, item in enumerate(self._ring):
                if item.t_s > since:
                    break
                if item.key:
                    start = i
            pkts = list(self._ring)[start:]
            return ClipCut(
                clip_id,
                tuple(x.packet for x in pkts),
                pkts[0].t_s,
                truncated=pkts[0].t_s > since,
                from_t_s=since,
                times=tuple(x.t_s for x in pkts),
            )

    def _trim(self) -> None:
        horizon = self._newest - self.pre_s
        for p in self._pending.values():
            horizon = min(horizon, p.start_s)
        horizon = max(horizon, self._newest - self.max_clip_s - self.pre_s)
        # Drop whole GOPs: only when the next keyframe is still at or before the horizon.
        while len(self._keys) >= 2 and self._keys[1] <= horizon:
            self._keys.popleft()
            while self._ring and self._ring[0].t_s < self._keys[0]:
                self._ring.popleft()
                if self._spooled:
                    self._spooled -= 1
                    if not self._spooled and self.spool is not None:
                        self.spool.release()

    def _cut_due(self, force: bool) -> None:
        done: set[int] = set()
        for p in list(self._pending.values()):
            if id(p) in done:
                continue
            done.add(id(p))
            end_s = p.end_s
            too_long = self._newest - p.start_s > self.max_clip_s + self.pre_s + self.post_s
            if force or too_long or (end_s is not None and self._newest >= end_s):
                for eid in p.members:
                    self._pending.pop(eid, None)
                self._ready.append(self._cut(p, truncated=too_long or (force and end_s is None)))

    def _cut(self, p: _Pending, truncated: bool) -> ClipCut:
        start = 0
        for i, item in enumerate(self._ring):
            if item.t_s > p.start_s:
                break
            if item.key:
                start = i
        end_s = p.end_s if p.end_s is not None else self._newest
        pkts = []
        for i, x in enumerate(self._ring):
            if i < start:
                continue
            if x.t_s > end_s:
                break
            pkts.append(x)
        self.stats.clips += 1
        t0 = pkts[0].t_s if pkts else p.start_s
        ids = tuple(p.members)
        return ClipCut(ids[0], tuple(x.packet for x in pkts), t0, truncated, from_t_s=p.start_s,
                       event_ids=ids if len(ids) > 1 else (), begins=tuple(p.begun[e] for e in ids),
                       times=tuple(x.t_s for x in pkts))  # fmt: skip


def write_clip(cut: ClipCut, folder: Path) -> ClipRef | None:
    """Remux the packets into ``folder/<event_id>.mp4`` (codecs a browser cannot play: transcoded).

    Timestamps are shifted to start at 0; the file is written under a temporary name and renamed,
    so a reader never sees a half-written clip. Returns None when there is nothing to write.
    """
    if not cut.packets:
        return None
    template = cut.packets[0].stream
    if template.codec_context.name not in REMUX_CODECS:
        # MPEG-4 part 2, MJPEG, MPEG-2 from old encoders and recorded files: transcoded once (off the
        # camera threads) to H.264, as an operator must be able to play every clip in the console.
        return _transcode_clip(cut, folder)
    if cut.packets[0].pts is None and template.codec_context.has_b_frames:
        # A raw elementary stream with B-frames: no presentation times to remux with (the decoder
        # puts its frames in order).
        return _transcode_clip(cut, folder)
    ext, fmt, ctype = "mp4", "mp4", "video/mp4"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{cut.event_id}.{ext}"
    tmp = folder / f".{cut.event_id}.part.{ext}"
    first = cut.packets[0]
    base = first.dts if first.dts is not None else (first.pts or 0)
    tb = first.time_base
    # The clip's own clock, carried across a jump of the stream's (the muxer refuses time going
    # back); the ring's times say whether a gap ahead is real (a stall of a live stream) or a jump.
    clock = Timeline(0.0, 1.0 / stream_fps(template), live=True)
    last_pts, last_dts = 0, -1
    first_pts: int | None = None
    with av.open(str(tmp), "w", format=fmt, options=MP4_OPTIONS) as out:
        ost = out.add_stream_from_template(template)
        same = itertools.takewhile(lambda p: p.stream is template, cut.packets)
        if (tag := sample_tag(template.codec_context.name, template.codec_context.extradata, map(bytes, same))):
            ost.codec_context.codec_tag = tag
        for i, src in enumerate(cut.packets):
            if src.stream is not template:
                break  # the stream reconnected mid-clip: its timestamps start over
            pkt = av.Packet(bytes(src))  # ring packets are shared between clips: never mutate them
            pts = src.pts if src.pts is not None else src.dts
            dts = src.dts if src.dts is not None else pts
            if dts is not None and tb:
                raw_s = float((dts - base) * tb)
                # Strictly increasing, as the muxer wants, where stamps were held (edge.timeline).
                dts_new = max(round(clock(raw_s, cut.times[i] if cut.times else raw_s) / tb), last_dts + 1)
                pts, dts = max(dts_new + (pts - dts), dts_new), dts_new  # type: ignore[operator]
                last_dts = dts_new
            else:
                pts, dts = (None if pts is None else pts - base), (None if dts is None else dts - base)
            pkt.pts, pkt.dts = pts, dts
            pkt.time_base = tb
            pkt.is_keyframe = src.is_keyframe
            pkt.stream = ost
            out.mux(pkt)
            if pts is not None:
                last_pts = max(last_pts, pts + (src.duration or 0))
                first_pts = pts if first_pts is None else min(first_pts, pts)
    tmp.replace(final)
    duration_s = float((last_pts - (first_pts or 0)) * tb) if tb else 0.0
    return ClipRef(
        path=str(final),
        sha256=sha256_file(final),
        size_bytes=final.stat().st_size,
        duration_s=round(duration_s, 3),
        start_pts_s=round(cut.start_t_s, 3),
        content_type=ctype,
    )


def _packet_rate(packets: tuple[av.Packet | Spooled, ...], stream: av.VideoStream) -> float | None:
    """Frames per second by the packets' own times: the stream's stated rate can be wrong (an MJPEG
    camera over HTTP states none, and its demuxer invents 25)."""
    stamps = [p.dts if p.dts is not None else p.pts for p in packets if p.stream is stream]
    stamps = [t for t in stamps if t is not None]
    if len(stamps) < 2 or not packets[0].time_base:
        return None
    # Steps between packets, less the jumps of the stream's clock (edge.timeline).
    tb = packets[0].time_base
    steps = [d for a, b in zip(stamps, stamps[1:], strict=False) if 0 <= (d := float((b - a) * tb)) <= JUMP_S]
    span = sum(steps)
    return len(steps) / span if span > 0 else None


def _transcode_clip(cut: ClipCut, folder: Path) -> ClipRef | None:
    """Decode the ring's packets and encode them once as H.264 MP4 (faststart) for the browser.

    Decoding anyway, it starts the clip at the window asked for, not at the keyframe before it
    (old encoders put keyframes many seconds apart)."""
    template = cut.packets[0].stream
    src = template.codec_context
    dec = av.CodecContext.create(src.name, "r")
    dec.width, dec.height = src.width, src.height  # codecs without headers (MS-MPEG4) need them
    if src.extradata:
        dec.extradata = src.extradata
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{cut.event_id}.mp4"
    tmp = folder / f".{cut.event_id}.part.mp4"
    tb = cut.packets[0].time_base
    base = next((p.pts for p in cut.packets if p.pts is not None), 0)
    fps = _packet_rate(cut.packets, template) or stream_fps(template)
    # A decoder made apart from its container never sees the display matrix (edge.orient), so a
    # sideways file's is read from the file, as players must show the clip turned as the source.
    where = template.container.name
    turns = 0 if "://" in where else (file_turns(where) or 0)
    k = 0  # frames decoded
    # The frames' times, carried across a jump of the stream's clock.
    clock = Timeline(0.0, 1.0 / fps, ahead=may_jump(template.container))
    clock(0.0, 0.0)  # ``base``: the first packet's
    last_s = 0.0
    first_s: float | None = None
    trim_s = cut.from_t_s if cut.from_t_s is not None else cut.start_t_s
    with H264Writer(tmp, fps, src.width, src.height, rotation=turns * 90) as out:
        for p in cut.packets:
            if p.stream is not template:
                break  # the stream reconnected mid-clip
            pkt = av.Packet(bytes(p))  # ring packets are shared between clips: never mutate them
            pkt.pts, pkt.dts, pkt.time_base = p.pts, p.dts, p.time_base
            try:
                frames = dec.decode(pkt)
            except av.error.FFmpegError:
                continue
            for f in frames:
                k += 1
                t = cut.start_t_s + (
                    clock(float((f.pts - base) * tb), 0.0) if f.pts is not None and tb else (k - 1) / fps
                )
                if t < trim_s - 1e-3:
                    continue
                first_s = t if first_s is None else first_s
                last_s = max(last_s, t + 1.0 / fps)
                out.write(f)
        n = out.frames
    if n == 0:
        tmp.unlink(missing_ok=True)
        return None
    tmp.replace(final)
    return ClipRef(
        path=str(final),
        sha256=sha256_file(final),
        size_bytes=final.stat().st_size,
        duration_s=round(last_s - (first_s or 0.0), 3),
        start_pts_s=round(first_s if first_s is not None else cut.start_t_s, 3),
        content_type="video/mp4",
    )
