"""PyAV sources: open a file or URL, demux, decode, decimate to the detect rate, pace files at real time.

One ``VideoSource.frames()`` call is one connection: it ends at the end of a file, and raises
``SourceError`` for anything that needs a reconnect (open failure, read timeout, no frame for
``watchdog_s``). Reconnecting with backoff is the caller's job (``edge.camera.CameraRunner``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from edge.decodeslots import DecodeSlots
from edge.errors import SourceError, redact
from edge.hwdecode import HwDecode, create_decoder, to_host
from edge.meters import LAG_BUCKETS_S, Histogram
from edge.orient import Upright, file_turns
from edge.timeline import RAW_FORMATS, Timeline, may_jump, stream_fps

PacketSink = Callable[[av.Packet, float], None]  # (packet, pts_s on the source's media timeline)

US = 1_000_000
# Largest frame decoded a detect period at a time (``VideoSource.bursts``). Measured on a 2-core
# Zen 3, CPU per frame in bursts of five against one at a time: 720p -14%, 640x360 -23%; 1080p
# within noise. On a Zen 4, 1080p -4.5%, which the whole agent's count did not show, for a lag p99 at
# the bench's 0.5 s limit: not worth it.
BURST_MAX_PIXELS = 1280 * 720
# Demuxers that invent timestamps: MJPEG over HTTP (multipart/x-mixed-replace, the cheap IP
# camera's stream) is stamped at 25 fps whatever the camera sends, so a 10 fps camera's media time
# ran at 0.4 of real time (dwell times, cooldowns and detect rates with it). Their packets are
# stamped with their arrival time instead, in milliseconds; they are read as they come, never in
# bursts, or the time read would be the time of the burst.
ARRIVAL_STAMPED = frozenset({"mpjpeg"})
MS = Fraction(1, 1000)

log = logging.getLogger(__name__)


def network_options(url: str, transport: str = "tcp", read_timeout_s: float = 10.0) -> dict[str, str]:
    """FFmpeg protocol options per URL scheme: transport and socket timeouts (microseconds)."""
    scheme = url.split("://", 1)[0].lower()
    us = str(int(read_timeout_s * US))
    if scheme in ("rtsp", "rtsps"):
        return {"rtsp_transport": transport, "timeout": us}
    if scheme in ("rtmp", "rtmps"):
        return {"rw_timeout": us}
    if scheme in ("http", "https"):
        return {"rw_timeout": us}
    if scheme in ("udp", "rtp", "srt"):
        # ``timeout`` is in microseconds for udp; overruns drop packets rather than fail the stream.
        return {"timeout": us, "overrun_nonfatal": "1", "fifo_size": "50000"}
    return {"rw_timeout": us}


@dataclass
class SourceStats:
    """Counters written by the camera thread only; read (without locks) by status reports."""

    frames_decoded: int = 0
    frames_emitted: int = 0
    decode_errors: int = 0
    loops: int = 0
    time_jumps: int = 0  # the stream's clock jumped and media time was carried across (edge.timeline)
    # (when, frames decoded by then) at the last detect frame, set together. Frames may come in
    # bursts that end with a detect frame (``VideoSource.bursts``): the input rate between two of
    # these marks is exact, where one taken mid-burst would be off by up to a burst.
    due_mark: tuple[float, int] = (0.0, 0)
    last_frame_ts: datetime | None = None
    # How late each decoded frame was against its real-time due time (paced files only): a
    # pipeline that cannot keep up shows here first.
    lag_s: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS_S))
    hw_decoding: bool = False  # the current connection decodes on the device that `hw` names
    hw_fallbacks: int = 0  # connections that asked for a hardware decoder and decoded in software
    hw_error: str = ""  # why, the last time


def input_fps(mark0: tuple[float, int], mark1: tuple[float, int]) -> float:
    """Frames decoded per second between two ``SourceStats.due_mark`` readings: exact, where
    counting over a window is off by a frame (by a burst where frames come in bursts)."""
    (t0, n0), (t1, n1) = mark0, mark1
    return (n1 - n0) / max(t1 - t0, 1e-3)


@dataclass(frozen=True)
class DecodedFrame:
    frame: av.VideoFrame
    pts_s: float
    ts: datetime
    mono_s: float = 0.0


@dataclass
class VideoSource:
    """Decoded frames of one stream at ``detect_fps`` (None: every frame)."""

    url: str
    detect_fps: float | None = 5.0
    realtime: bool = True
    loop: bool = False
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    watchdog_s: float = 20.0
    transport: str = "tcp"
    on_packet: PacketSink | None = None
    start_s: float = 0.0  # files: seek this far in before the first pass (the nearest keyframe before)
    hw: HwDecode | None = None  # decode on this device where it opens (edge.hwdecode)
    decode_slots: DecodeSlots | None = None  # shared by the station's cameras (edge.decodeslots)
    stats: SourceStats = field(default_factory=SourceStats)
    # Media time keeps increasing across loops and reconnects, so rules never see time go back.
    _timeline_s: float = 0.0
    _timeline_mono: float | None = None
    # Quarter turns that show a file's picture upright (edge.orient), read once; streams: 0.
    _turns: int | None = None

    @property
    def is_url(self) -> bool:
        return "://" in self.url

    @property
    def bursts(self) -> bool:
        """Whether frames are decoded a detect period at a time rather than each as it comes.

        A thread that sleeps between frames decodes each one with cold caches: on a 2-core Zen 3,
        a 640x360 frame took 2.03 ms of CPU (wake-up included) against 1.70 in bursts of three
        and 1.37 flat out. Waking when the detect frame is due and decoding the period's frames
        together costs the due frame no latency (it is the last of its burst) and leaves the
        others at most a period late, which nothing reads (clips are cut from packets).

        Paced files always can. A stream can where the kernel holds what arrives meanwhile: TCP
        (RTSP over TCP, HTTP, RTMP). Over UDP a sleeping reader could lose datagrams. Frames over
        ``BURST_MAX_PIXELS`` are decoded one at a time whatever the source. Not paced (a replay),
        nothing sleeps: a recording served over HTTP is read as fast as it comes.
        """
        if not self.realtime:
            return False
        if not self.is_url:
            return True
        scheme = self.url.split("://", 1)[0].lower()
        if scheme in ("rtsp", "rtsps"):
            return self.transport == "tcp"
        return scheme in ("http", "https", "rtmp", "rtmps", "tcp")

    def open(self) -> av.container.InputContainer:
        return open_container(
            self.url, self.open_timeout_s, self.read_timeout_s, self.transport, need_video=True
        )

    def frames(self) -> Iterator[DecodedFrame]:
        period = 1.0 / self.detect_fps if self.detect_fps else 0.0
        pts_offset = self._timeline_s
        if self._timeline_mono is not None and self.is_url:
            pts_offset += time.monotonic() - self._timeline_mono  # the time spent disconnected
        next_due = pts_offset
        wall0: float | None = None
        pace = self.realtime and not self.is_url
        burst = bool(period) and self.bursts
        host = VideoReformatter()  # copies a hardware decoder's due frames to memory
        upright = self._upright()
        while True:
            container = self.open()
            last_pts = pts_offset
            try:
                stream = container.streams.video[0]
                arrival = self.is_url and container.format.name in ARRIVAL_STAMPED
                tb = float(MS) if arrival else float(stream.time_base) if stream.time_base else 0.0
                if self.start_s > 0 and not self.is_url and self.stats.loops == 0 and tb:
                    container.seek(int(self.start_s / tb), stream=stream, backward=True)
                rate = stream_fps(stream)
                ahead = self.is_url or may_jump(container)
                clock = Timeline(pts_offset, 1.0 / rate, live=self.is_url, ahead=ahead)
                n_local = jumps = 0
                for frame in self._decode(container, stream, tb, clock, arrival):
                    now = time.monotonic()
                    n_local += 1
                    self.stats.frames_decoded += 1
                    raw = frame.pts * tb if frame.pts is not None and tb else n_local / rate
                    pts_s = clock(raw, now)
                    if clock.jumps != jumps:  # said once a pass: a broken clock may jump at every frame
                        if not jumps:
                            log.warning("%s: timestamps jumped %+.1f s at media time %.1f s (an encoder "
                                        "restart, or recordings joined end to end); media time carries on",
                                        redact(self.url), clock.last_jump_s, pts_s)  # fmt: skip
                        self.stats.time_jumps += clock.jumps - jumps
                        jumps = clock.jumps
                    last_pts = pts_s
                    self._timeline_s, self._timeline_mono = pts_s, now
                    if pace:
                        if wall0 is None:
                            wall0 = now - pts_s
                        delay = wall0 + pts_s - now
                        if delay > 0:
                            time.sleep(delay)
                        self.stats.lag_s.observe(max(0.0, -delay))
                    if period and pts_s + 1e-6 < next_due:
                        continue
                    next_due = max(next_due + period, pts_s) if period else 0.0
                    self.stats.frames_emitted += 1
                    self.stats.due_mark = (now, self.stats.frames_decoded)
                    ts = datetime.now(UTC)
                    self.stats.last_frame_ts = ts
                    picture = self._to_host(frame, host)
                    if upright is not None:
                        picture = upright(picture)
                    yield DecodedFrame(picture, pts_s, ts, now)
                    if burst and not arrival and frame.width * frame.height <= BURST_MAX_PIXELS:
                        # Wake once per detect period, when its frame is due, and decode what came
                        # since in one go (see ``bursts``). Files: the due frame's capture time on
                        # the replay clock; streams: a period after this due frame arrived.
                        wake = wall0 + next_due if pace and wall0 is not None else now + period
                        delay = min(wake - time.monotonic(), period)
                        if delay > 0:
                            time.sleep(delay)
                pts_offset = last_pts + 1.0 / rate
            finally:
                if self.on_packet is None:
                    container.close()
                # else: packets kept by the clip ring refer to this container's stream; the
                # container is freed (and closed) when the last of them leaves the ring.
            if self.is_url:
                # A live stream that "ends" has dropped: the caller reconnects.
                raise SourceError(f"{self.url}: stream ended")
            if not self.loop:
                return
            self.stats.loops += 1

    def _upright(self) -> Upright | None:
        """What turns a sideways recording's due frames upright (None: nothing to turn). Live
        streams (RTSP, RTMP, HTTP-FLV/TS) carry no display matrix; files from phones and body-cams do."""
        if self._turns is None:
            self._turns = 0 if self.is_url else file_turns(self.url)  # None: asked again next time
            if self._turns:
                log.info("%s: recorded sideways (display matrix): frames turned upright, %d degrees counter-clockwise",
                         self.url, self._turns * 90)  # fmt: skip
        return Upright(self._turns) if self._turns else None

    def _to_host(self, frame: av.VideoFrame, host: VideoReformatter) -> av.VideoFrame:
        """A hardware decoder's frame copied to memory (the due ones only come here). Where the copy
        fails the source decodes in software from its next connection on, rather than going dark."""
        if self.hw is None:
            return frame
        try:
            return to_host(frame, host)
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            self._hw_fallback(f"{self.hw.device_type} frames cannot be copied to memory ({exc}): decoding in software")
            self.hw = None
            raise SourceError(f"{self.url}: hardware frame copy failed; reconnecting in software") from exc

    def _hw_fallback(self, why: str) -> None:
        self.stats.hw_fallbacks += 1
        if why != self.stats.hw_error:  # once per cause, not once per reconnect
            explicit = self.hw is None or self.hw.explicit
            log.log(logging.WARNING if explicit else logging.INFO, "%s: %s", self.url, why)
        self.stats.hw_error = why

    def _decode(
        self, container: av.container.InputContainer, stream: av.VideoStream, tb: float,
        frames_clock: Timeline, arrival: bool = False,
    ) -> Iterator[av.VideoFrame]:
        """Demux and decode packet by packet so one corrupt packet costs one frame, not the stream.
        ``arrival``: stamp each packet with its arrival time (``ARRIVAL_STAMPED``). ``frames_clock``:
        the frames' timeline, which the clip ring's follows in kind."""
        sink = self.on_packet
        last_frame = arrived0 = time.monotonic()
        last_ms = -1
        # The next decode time of an unstamped packet of a raw elementary stream, in ``tb`` units.
        # (Elsewhere such a packet is left out of the ring: over RTSP the first one comes so.)
        untimed = 0 if container.format.name in RAW_FORMATS else None
        # The ring's times: from the same start, carried across jumps as the frames' are.
        c, step_s = frames_clock, frames_clock.step_s
        ring_clock = Timeline(c.start_s, step_s, live=c.live, ahead=c.ahead)
        # Packets kept by a sink outlive the pass: decode with a context they do not keep alive.
        own = sink is not None or self.hw is not None  # a hardware decoder is asked for at creation
        decoder = own_decoder(stream, self.hw, self._hw_fallback) if own else stream.codec_context
        self.stats.hw_decoding = self.hw is not None and decoder.is_hwaccel
        slots = None if self.stats.hw_decoding else self.decode_slots  # a device decoder mostly waits
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.ExitError as exc:  # the interrupt callback: read timeout
                raise SourceError(f"{self.url}: no data for {self.read_timeout_s:.0f} s ({exc})") from exc
            except (av.error.FFmpegError, OSError) as exc:
                if self.is_url:
                    raise SourceError(f"{self.url}: read failed: {exc}") from exc
                self.stats.decode_errors += 1  # a damaged file: keep what was readable
                return
            if arrival:
                last_ms = max(last_ms + 1, round((time.monotonic() - arrived0) * 1000))
                packet.pts = packet.dts = last_ms
                packet.time_base = MS
            elif untimed is not None and packet.dts is None and packet.pts is None and packet.size and tb:
                # A raw elementary stream (edge.timeline.RAW_FORMATS): decode times one after
                # another by duration, for the clip ring. Not pts: with B-frames, the order shown
                # is not the order sent (frames are timed by count at the codec's rate instead).
                packet.dts = untimed
                untimed += packet.duration or round(step_s / tb)
            # Decode order (dts) keeps the ring monotonic, so a clip is one contiguous slice.
            stamp = packet.dts if packet.dts is not None else packet.pts
            if sink is not None and packet.size and stamp is not None and tb:
                sink(packet, ring_clock(stamp * tb, time.monotonic()))
            try:
                if slots is None:
                    frames = decoder.decode(packet)
                else:
                    with slots:  # held for the decode alone: never across a network read
                        frames = decoder.decode(packet)
            except (av.error.InvalidDataError, av.error.FFmpegError):
                self.stats.decode_errors += 1
                frames = []
            if frames:
                last_frame = time.monotonic()
                yield from frames
            elif time.monotonic() - last_frame > self.watchdog_s:
                raise SourceError(f"{self.url}: no decodable frame for {self.watchdog_s:.0f} s")


def own_decoder(
    stream: av.VideoStream, hw: HwDecode | None = None, on_fallback: Callable[[str], None] | None = None
) -> av.CodecContext:
    """A decoder of the stream's codec that the container does not own, on ``hw``'s device where it
    opens (else in software, and ``on_fallback`` is told why).

    The clip ring keeps packets, and through them their container, for ``pre_s`` and any open event
    after a pass ends (a file's loop, a camera's reconnect). Decoding through the container's own
    codec context kept that pass's decoder and its frame pool (~11 MB at 1080p) alive as long: two
    decoders per camera for a while after every reconnect. This one goes with the pass.
    """
    src = stream.codec_context
    try:
        dec, why = create_decoder(src.codec, hw)
        if why and on_fallback is not None:
            on_fallback(why)
        dec.width, dec.height = src.width, src.height  # codecs without headers (MS-MPEG4) need them
        if src.extradata:
            dec.extradata = src.extradata
        dec.codec_tag = src.codec_tag
        dec.thread_type, dec.thread_count = src.thread_type, src.thread_count
        return dec
    except (av.error.FFmpegError, ValueError, AttributeError):
        return src  # decode through the container, as before


def open_container(
    url: str, open_timeout_s: float, read_timeout_s: float, transport: str = "tcp", need_video: bool = True,
    field: str = "source",
) -> av.container.InputContainer:
    """Open a file or URL with timeouts; raises SourceError with a message a user can act on
    (``field``: the camera setting that named it)."""
    is_url = "://" in url
    if not is_url and not Path(url).is_file():
        raise SourceError(
            f"video file not found: {url}. Check the camera's `{field}` in the station config "
            f"(relative paths are resolved from the config file's folder); shared clips live in ../shared/clips."
        )
    options = network_options(url, transport, read_timeout_s) if is_url else {}
    try:
        container = av.open(url, options=options, timeout=(open_timeout_s, read_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {url}: {exc}") from exc
    if need_video and not container.streams.video:
        container.close()
        raise SourceError(f"{url} has no video stream")
    return container
