"""One camera, unattended: connect, run the pipeline, reconnect forever with capped exponential
backoff, and keep the counters that make up its status. Nothing here logs per frame."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av

from edge.clips import ClipRecorder
from edge.config import CameraConfig
from edge.errors import SourceError, redact
from edge.events import EvidenceJob
from edge.handoff import Handoff
from edge.pipeline import CameraPipeline, Prepared
from edge.sources import VideoSource, open_container
from edge.types import CameraState, CameraStatus

log = logging.getLogger(__name__)

# A camera loop that shows no sign of life for its phase's budget plus this is hung (the watchdog).
STALL_GRACE_S = 3.0

JobSink = Callable[[EvidenceJob], None]
# Decimated frames that may wait for analysis; more would only add latency to every alert.
ANALYSIS_BACKLOG = 2


@dataclass
class Backoff:
    """Capped exponential backoff: initial, 2x, 4x ... max; ``reset`` after a good connection."""

    initial_s: float = 1.0
    max_s: float = 60.0
    next_s: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")
        self.next_s = self.initial_s

    def take(self) -> float:
        delay = self.next_s
        self.next_s = min(self.max_s, self.next_s * 2.0)
        return delay

    def reset(self) -> None:
        self.next_s = self.initial_s


class CameraRunner:
    def __init__(
        self,
        cam: CameraConfig,
        pipeline: CameraPipeline,
        source: VideoSource,
        emit: JobSink,
        stop: threading.Event,
    ) -> None:
        self.cam = cam
        self.pipeline = pipeline
        self.source = source
        self.emit = emit
        self.stop = stop
        self.backoff = Backoff(cam.stream.backoff_initial_s, cam.stream.backoff_max_s)
        self.state = CameraState.STARTING
        self.open_errors = 0
        self.reconnects = 0
        self.last_error = ""
        self._prev = (time.monotonic(), 0, 0)
        self._logged_state = CameraState.STARTING
        # Heartbeat (written by this thread, read by the watchdog): the loop is alive while it beats
        # within ``beat_allow_s`` - a frame, a reconnect attempt or a backoff wait that ends on time.
        st = cam.stream
        self.frame_budget_s = st.open_timeout_s + max(st.read_timeout_s, st.watchdog_s) + STALL_GRACE_S
        self.beat_mono = time.monotonic()
        self.beat_allow_s = self.frame_budget_s
        self.analysis_busy_since = 0.0  # when the analysis thread took its current frame (0: idle)

    def stalled_s(self, now: float) -> float:
        """Seconds past this camera's heartbeat budget (<= 0: alive): its decode loop must beat, and
        its analysis thread must not sit on one frame longer than a frame budget."""
        decode = now - self.beat_mono - self.beat_allow_s
        busy = self.analysis_busy_since
        return max(decode, now - busy - self.frame_budget_s if busy else decode)

    def run(self) -> None:
        while not self.stop.is_set():
            self.beat_mono, self.beat_allow_s = time.monotonic(), self.frame_budget_s
            got_frames = self._connect_once()
            if self.state is CameraState.ENDED or self.stop.is_set():
                return
            if got_frames:
                self.backoff.reset()
            self._set_state(CameraState.OFFLINE)
            delay = self.backoff.take()
            self.beat_mono, self.beat_allow_s = time.monotonic(), delay + STALL_GRACE_S
            self.stop.wait(delay)
            self.reconnects += 1
            self._set_state(CameraState.RECONNECTING)

    def _set_state(self, state: CameraState) -> None:
        """One log line per change (a dead camera cycling offline/reconnecting logs once)."""
        self.state = state
        if state is not self._logged_state and state is not CameraState.RECONNECTING:
            self._logged_state = state
            log.info("camera %s: %s", self.cam.id, state.value,
                     extra={"camera": self.cam.id, "state": state.value})  # fmt: skip

    def _connect_once(self) -> bool:
        """One connection; returns whether it delivered frames. Never raises.

        This thread decodes (and gates); a second one per connection runs inference, tracker and
        rules, so that a slow detector costs dropped detect frames, never late decoding.
        """
        before = self.source.stats.frames_decoded
        # Only a file replayed faster than real time may make decoding wait for analysis.
        lossless = not (self.source.realtime or self.source.is_url)
        handoff: Handoff[Prepared] = Handoff(ANALYSIS_BACKLOG, lossless=lossless)
        analyst = threading.Thread(
            target=self._analyse, args=(handoff,), name=f"analyse-{self.cam.id}", daemon=True
        )
        analyst.start()
        ended = False
        try:
            for df in self.source.frames():
                self.beat_mono = df.mono_s
                if self.state is not CameraState.ONLINE:
                    self._set_state(CameraState.ONLINE)
                if handoff.put(self.pipeline.prepare(df)):
                    self.pipeline.stats.dropped += 1
                if self.stop.is_set():
                    return True
            ended = True  # a file reached its end (URLs raise instead)
        except SourceError as exc:
            self._failed(str(exc), before)
        except Exception as exc:  # a bug must cost a reconnect, never the agent
            log.exception("camera %s: pipeline failed", self.cam.id)
            self._failed(f"pipeline error: {exc!r}", before)
        finally:
            handoff.close()
            analyst.join()
        if ended:
            for job in self.pipeline.finish():
                self.emit(job)
            self._set_state(CameraState.ENDED)
        return self.source.stats.frames_decoded > before

    def _analyse(self, handoff: Handoff[Prepared]) -> None:
        failed = False
        while (prep := handoff.get()) is not None:
            self.analysis_busy_since = time.monotonic()
            try:
                for job in self.pipeline.analyse(prep):
                    self.emit(job)
            except Exception:
                if not failed:  # once per connection: a broken detector would repeat every frame
                    log.exception("camera %s: analysis failed", self.cam.id)
                failed = True
            self.analysis_busy_since = 0.0

    def _failed(self, message: str, frames_before: int) -> None:
        message = redact(message)  # a bug's repr may hold the URL too; this goes to the centre
        if self.source.stats.frames_decoded == frames_before:
            self.open_errors += 1
        if message != self.last_error:
            log.warning("camera %s: %s", self.cam.id, message)
        self.last_error = message

    def status(self) -> CameraStatus:
        """Counters as of now; fps are averaged since the previous call."""
        s, p = self.source.stats, self.pipeline.stats
        now = time.monotonic()
        t0, dec0, det0 = self._prev
        dt = max(now - t0, 1e-3)
        self._prev = (now, s.frames_decoded, p.detected)
        return CameraStatus(
            camera=self.cam.id,
            state=self.state,
            fps_in=round((s.frames_decoded - dec0) / dt, 2),
            fps_detected=round((p.detected - det0) / dt, 2),
            last_frame_ts=s.last_frame_ts,
            frames_decoded=s.frames_decoded,
            frames_detected=p.detected,
            frames_skipped_static=p.skipped_static,
            decode_errors=s.decode_errors,
            open_errors=self.open_errors,
            reconnects=self.reconnects,
            last_error=self.last_error,
        )


class RecordTap:
    """The record stream of a dual-stream camera: demuxed (never decoded) into the clip ring, on
    wall-clock time (the ring places the detect stream's events on the same clock).

    A stream reconnects on its own, forever. A file (a replay) is paced at real time like the
    detect file beside it, from the same ``start_s``, and loops or ends with it: unpaced, a file's
    packets all landed in the ring in one instant and no clip had a window to cut."""

    def __init__(self, cam: CameraConfig, recorder: ClipRecorder, stop: threading.Event) -> None:
        if not cam.record_source:
            raise ValueError(f"camera {cam.id!r} has no record_source")
        self.url = cam.record_source
        self.cam = cam
        self.recorder = recorder
        self.stop = stop
        self.backoff = Backoff(cam.stream.backoff_initial_s, cam.stream.backoff_max_s)
        self.is_file = "://" not in self.url
        self.packets = 0
        self.errors = 0  # connections that failed or dropped
        self.online = False
        self.last_error = ""

    def run(self) -> None:
        st = self.cam.stream
        passes = 0
        while not self.stop.is_set():
            try:
                container = open_container(self.url, st.open_timeout_s, st.read_timeout_s, st.transport,
                                           field="record_source")  # fmt: skip
                # Not closed here: packets in the clip ring refer to its stream until they leave.
                self._pump(container, seek_s=self.cam.start_s if self.is_file and passes == 0 else 0.0)
                passes += 1
                if self.stop.is_set():
                    return  # stopped, not dropped: nothing to report
                if self.is_file:
                    if self.cam.loop:
                        continue
                    return
                raise SourceError(f"{self.url}: stream ended")  # a live stream that ends has dropped
            except (SourceError, av.error.FFmpegError, OSError) as exc:
                self._failed(exc)
            finally:
                self.online = False
            self.stop.wait(self.backoff.take())

    def _pump(self, container: av.container.InputContainer, seek_s: float) -> None:
        stream = container.streams.video[0]
        tb = float(stream.time_base) if stream.time_base else 0.0
        if seek_s > 0 and tb:
            container.seek(int(seek_s / tb), stream=stream, backward=True)
        pace = self.is_file and self.cam.realtime and tb > 0
        wall0: float | None = None
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if pace:
                t = packet.dts if packet.dts is not None else packet.pts
                if t is not None:
                    if wall0 is None:
                        wall0 = time.monotonic() - t * tb
                    delay = wall0 + t * tb - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
            self.recorder.push(packet, time.monotonic())
            self.packets += 1
            if not self.online:
                self.online = True
                self.backoff.reset()
                if self.errors:
                    log.info("camera %s record stream back: %s", self.cam.id, redact(self.url))
            if self.stop.is_set():
                return

    def _failed(self, exc: Exception) -> None:
        self.last_error = redact(str(exc))
        if self.online or not self.errors:  # once per outage; retries are counted, not logged
            log.warning("camera %s record stream: %s (clips wait for it; retrying)", self.cam.id, self.last_error)
        else:
            log.debug("camera %s record stream: %s", self.cam.id, self.last_error)
        self.errors += 1
