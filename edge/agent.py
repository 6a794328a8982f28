"""The station agent: one thread per camera, one inference batcher, one evidence+publish worker."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from pathlib import Path

from edge.batch import InferenceBatcher
from edge.camera import CameraRunner, RecordTap
from edge.clips import ClipRecorder, write_clip
from edge.commands import CommandHandler, Jpeg, frame_jpeg
from edge.config import CameraConfig, StationConfig
from edge.detect import Detector, build_detector
from edge.events import EventDesk, EvidenceJob
from edge.evidence import EvidenceWriter
from edge.link import StationLink
from edge.models import resolve_model
from edge.pipeline import CameraPipeline
from edge.publish import to_message
from edge.sources import VideoSource
from edge.types import CameraState, CameraStatus, ClipRef
from wire.link import CameraHealth

log = logging.getLogger(__name__)
STATS_EVERY_S = 30.0


def make_detector(cfg: StationConfig) -> Detector:
    d = cfg.detector
    return build_detector(
        resolve_model(d.model),
        score_threshold=d.score_threshold,
        nms_iou=d.nms_iou,
        threads=d.threads,
        providers=d.providers,
    )


def make_source(cam: CameraConfig, realtime: bool, recorder: ClipRecorder | None) -> VideoSource:
    st = cam.stream
    return VideoSource(
        cam.source,
        cam.detect_fps,
        realtime=realtime,
        loop=cam.loop,
        open_timeout_s=st.open_timeout_s,
        read_timeout_s=st.read_timeout_s,
        watchdog_s=st.watchdog_s,
        transport=st.transport,
        # One stream for both: its packets feed the clip ring as they are demuxed.
        on_packet=recorder.push if recorder is not None and not cam.record_source else None,
    )


def make_desk(cfg: StationConfig, cam: CameraConfig, clips: bool) -> EventDesk:
    m = cfg.media
    recorder = ClipRecorder(m.pre_s, m.post_s, m.max_clip_s) if clips else None
    return EventDesk(m.snapshot_window_s, recorder, mono_clock=bool(cam.record_source))


class StationAgent:
    def __init__(self, cfg: StationConfig) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.detector = make_detector(cfg)
        self.batcher = InferenceBatcher(self.detector, cfg.detector.max_batch, cfg.detector.max_wait_ms)
        # Bounded: when evidence work falls behind, camera loops drop and count, never wait.
        self.evidence_q: queue.Queue[EvidenceJob] = queue.Queue(maxsize=256)
        self.evidence_dropped = 0
        self.writer = EvidenceWriter(Path(cfg.media.dir) if cfg.media.clips else None)
        self.runners: list[CameraRunner] = []
        self.taps: list[RecordTap] = []
        tz = cfg.station.timezone
        for cam in cfg.cameras:
            desk = make_desk(cfg, cam, cfg.media.clips)
            pipeline = CameraPipeline(cfg.station.id, cam, self.detector, self.batcher.slot(), desk, tz)
            source = make_source(cam, cam.realtime, desk.recorder)
            self.runners.append(CameraRunner(cam, pipeline, source, self._enqueue, self.stop))
            if cam.record_source and desk.recorder is not None:
                self.taps.append(RecordTap(cam, desk.recorder, self.stop))
        # Link to the centre (edge/link.py): durable outbox, acked delivery, stats, commands.
        cam_ids = [c.id for c in cfg.cameras]
        self.latest: dict[str, object] = {}  # camera -> last decoded frame, for live snapshots
        for r in self.runners:
            self._tap_latest(r.cam.id, r.source)
        self.link = StationLink(cfg.mqtt, cfg.outbox, cfg.station.id, cam_ids, self._link_stats)
        self.commands = CommandHandler(self.link, cfg.station.id, cam_ids, self._live_jpeg, self._recent_clip)
        self.link.on_command = self.commands.submit

    @property
    def pipelines(self) -> list[CameraPipeline]:
        return [r.pipeline for r in self.runners]

    def camera_status(self) -> list[CameraStatus]:
        """Per-camera state and rates, for the stats topic and the logs."""
        return [r.status() for r in self.runners]

    def run(self) -> None:
        self.commands.start()
        self.link.start()
        self.batcher.start()
        workers = [threading.Thread(target=self._evidence_worker, name="evidence", daemon=True)]
        cams = [threading.Thread(target=r.run, name=f"cam-{r.cam.id}", daemon=True) for r in self.runners]
        taps = [threading.Thread(target=t.run, name=f"rec-{t.cam.id}", daemon=True) for t in self.taps]
        for t in workers + cams + taps:
            t.start()
        log.info("station %s running %d camera(s)", self.cfg.station.id, len(cams))
        next_stats = time.monotonic() + STATS_EVERY_S
        while not self.stop.wait(0.5):
            if time.monotonic() >= next_stats:
                next_stats += STATS_EVERY_S
                self._log_stats()
            if not any(t.is_alive() for t in cams):
                log.info("all cameras finished")
                break
        self.stop.set()
        for t in cams:
            t.join(timeout=10.0)
        self.evidence_q.join()
        self.batcher.stop()
        self.commands.stop()
        self.link.stop()
        self._log_stats()

    def _enqueue(self, job: EvidenceJob) -> None:
        try:
            self.evidence_q.put_nowait(job)
        except queue.Full:
            self.evidence_dropped += 1

    def _evidence_worker(self) -> None:
        while True:
            try:
                job = self.evidence_q.get(timeout=0.5)
            except queue.Empty:
                if self.stop.is_set() and not any(r.state is CameraState.ONLINE for r in self.runners):
                    return
                continue
            try:
                event, snap = self.writer.process(job)
                # Hand-over to the link (bounded queue): the outbox commit happens on its thread.
                self.link.submit_event(to_message(event, snap))
                if event.clip is not None:
                    c = event.clip
                    self.link.submit_media_file(
                        c.path, c.sha256, camera=event.camera, kind="clip", content_type=c.content_type,
                        event_id=event.event_id,
                    )  # fmt: skip
            except Exception:
                log.exception("event %s could not be published", job.event.event_id)
            finally:
                self.evidence_q.task_done()

    def _log_stats(self) -> None:
        for st in self.camera_status():
            log.info(
                "camera %s: %s fps_in=%.1f fps_detected=%.1f decoded=%d detected=%d static=%d "
                "decode_errors=%d open_errors=%d reconnects=%d%s",
                st.camera,
                st.state.value,
                st.fps_in,
                st.fps_detected,
                st.frames_decoded,
                st.frames_detected,
                st.frames_skipped_static,
                st.decode_errors,
                st.open_errors,
                st.reconnects,
                f" last_error={st.last_error!r}" if st.last_error else "",
            )
        ps, bs, ob = self.link.counters, self.batcher.stats, self.link.figures()
        log.info(
            "link: published=%d acked=%d resent=%d refused=%d outbox=%d evidence_dropped=%d; "
            "inference: batches=%d images=%d max=%d",
            ps.published,
            ps.acked,
            ps.resent,
            ps.refused,
            ob.items,
            self.evidence_dropped,
            bs.batches,
            bs.images,
            bs.max_seen,
        )

    # -- link hooks (edge/link.py, edge/commands.py) --------------------------------------------

    def _tap_latest(self, cam_id: str, source: VideoSource) -> None:
        """Remember each camera's latest decoded frame (a reference; no copy, no lock)."""
        frames = source.frames

        def tapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            for df in frames(*args, **kwargs):
                self.latest[cam_id] = df
                yield df

        source.frames = tapped  # type: ignore[method-assign]

    def _recent_clip(self, cam_id: str, seconds: float) -> ClipRef | None:
        """A clip of the camera's last ``seconds`` (as much as its packet ring holds), written now."""
        for r in self.runners:
            rec = r.pipeline.desk.recorder
            if r.cam.id == cam_id and rec is not None:
                cut = rec.recent(uuid.uuid4().hex, seconds)
                return write_clip(cut, Path(self.cfg.media.dir) / "requested") if cut is not None else None
        return None

    def _live_jpeg(self, cam_id: str) -> Jpeg | None:
        df = self.latest.get(cam_id)
        return frame_jpeg(df.frame) if df is not None else None  # type: ignore[attr-defined]

    def _link_stats(self) -> tuple[list[CameraHealth], int, int]:
        cams = [
            CameraHealth(
                camera=st.camera,
                state=st.state.value,
                fps_in=st.fps_in,
                fps_detected=st.fps_detected,
                last_frame_ts=st.last_frame_ts,
                frames_decoded=st.frames_decoded,
                decode_errors=st.decode_errors,
                reconnects=st.reconnects,
                last_error=st.last_error[:500],
            )  # fmt: skip
            for st in self.camera_status()
        ]
        return cams, self.evidence_q.qsize(), self.evidence_dropped
