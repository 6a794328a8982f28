"""PyAV sources: open a file or URL, decode, decimate to the detect rate, pace files at real time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import av

from edge.errors import SourceError

NETWORK_OPTIONS = {"rtsp_transport": "tcp", "stimeout": "5000000", "timeout": "5000000"}


@dataclass
class SourceStats:
    frames_decoded: int = 0
    frames_emitted: int = 0
    decode_errors: int = 0
    loops: int = 0


@dataclass(frozen=True)
class DecodedFrame:
    frame: av.VideoFrame
    pts_s: float
    ts: datetime


@dataclass
class VideoSource:
    """Decoded frames of one stream at ``detect_fps`` (None: every frame)."""

    url: str
    detect_fps: float | None = 5.0
    realtime: bool = True
    loop: bool = False
    open_timeout_s: float = 10.0
    stats: SourceStats = field(default_factory=SourceStats)

    def open(self) -> av.container.InputContainer:
        is_url = "://" in self.url
        if not is_url and not Path(self.url).is_file():
            raise SourceError(
                f"video file not found: {self.url}. Check the camera's `source` in the station config "
                f"(relative paths are resolved from the config file's folder); shared clips live in ../shared/clips."
            )
        options = NETWORK_OPTIONS if is_url else {}
        try:
            container = av.open(self.url, options=options, timeout=(self.open_timeout_s, self.open_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"cannot open {self.url}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.url} has no video stream")
        return container

    def frames(self) -> Iterator[DecodedFrame]:
        period = 1.0 / self.detect_fps if self.detect_fps else 0.0
        next_due = 0.0
        pts_offset = 0.0  # keeps media time increasing across loops
        wall0: float | None = None
        while True:
            container = self.open()
            last_pts = pts_offset
            try:
                stream = container.streams.video[0]
                tb = float(stream.time_base) if stream.time_base else 0.0
                rate = float(stream.average_rate or stream.guessed_rate or 25)
                first_pts: float | None = None
                for frame in self._decode(container, stream):
                    self.stats.frames_decoded += 1
                    raw = frame.pts * tb if frame.pts is not None and tb else self.stats.frames_decoded / rate
                    if first_pts is None:
                        first_pts = raw
                    pts_s = pts_offset + max(0.0, raw - first_pts)
                    last_pts = pts_s
                    if self.realtime:
                        now = time.monotonic()
                        if wall0 is None:
                            wall0 = now - pts_s
                        delay = wall0 + pts_s - now
                        if delay > 0:
                            time.sleep(delay)
                    if period and pts_s + 1e-6 < next_due:
                        continue
                    next_due = max(next_due + period, pts_s) if period else 0.0
                    self.stats.frames_emitted += 1
                    yield DecodedFrame(frame, pts_s, datetime.now(UTC))
                pts_offset = last_pts + 1.0 / rate
            finally:
                container.close()
            if not self.loop:
                return
            self.stats.loops += 1

    def _decode(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decode packet by packet so one corrupt packet costs one frame, not the stream."""
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                self.stats.decode_errors += 1
