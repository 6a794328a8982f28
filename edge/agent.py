"""The station agent: one thread per camera, one evidence+publish worker, clean shutdown."""

from __future__ import annotations

import logging
import queue
import threading
import time

from edge.config import CameraConfig, StationConfig
from edge.detect import Detector, build_detector
from edge.errors import SourceError
from edge.evidence import render_snapshot
from edge.models import resolve_model
from edge.pipeline import CameraPipeline
from edge.publish import MqttPublisher, to_message
from edge.sources import DecodedFrame, VideoSource
from edge.types import Event

log = logging.getLogger(__name__)
RETRY_S = 5.0
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


class StationAgent:
    def __init__(self, cfg: StationConfig) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self.detector = make_detector(cfg)
        lock = threading.Lock()
        self.pipelines = [CameraPipeline(cfg.station.id, cam, self.detector, lock) for cam in cfg.cameras]
        self.sources = {
            cam.id: VideoSource(cam.source, cam.detect_fps, realtime=cam.realtime, loop=cam.loop)
            for cam in cfg.cameras
        }
        self.publisher = MqttPublisher(cfg.mqtt, cfg.station.id)
        # Bounded: when evidence work falls behind, the camera loop drops and counts, never waits.
        self.evidence_q: queue.Queue[tuple[Event, DecodedFrame]] = queue.Queue(maxsize=256)
        self.evidence_dropped = 0

    def run(self) -> None:
        self.publisher.start()
        threads = [threading.Thread(target=self._evidence_worker, name="evidence", daemon=True)]
        threads += [
            threading.Thread(target=self._camera_loop, args=(p,), name=f"cam-{p.cam.id}", daemon=True)
            for p in self.pipelines
        ]
        for t in threads:
            t.start()
        log.info("station %s running %d camera(s)", self.cfg.station.id, len(self.pipelines))
        next_stats = time.monotonic() + STATS_EVERY_S
        while not self.stop.wait(1.0):
            if time.monotonic() >= next_stats:
                next_stats += STATS_EVERY_S
                self._log_stats()
            if not any(t.is_alive() for t in threads[1:]):
                log.info("all cameras finished")
                break
        self.stop.set()
        self.evidence_q.join()
        self.publisher.stop()
        self._log_stats()

    def _camera_loop(self, pipeline: CameraPipeline) -> None:
        cam: CameraConfig = pipeline.cam
        source = self.sources[cam.id]
        while not self.stop.is_set():
            try:
                for df in source.frames():
                    if self.stop.is_set():
                        return
                    for ev in pipeline.process(df):
                        try:
                            self.evidence_q.put_nowait((ev, df))
                        except queue.Full:
                            self.evidence_dropped += 1
                if not cam.loop and not cam.is_url:
                    return
            except SourceError as exc:
                log.error("camera %s: %s (retrying in %.0f s)", cam.id, exc, RETRY_S)
            except Exception:
                log.exception("camera %s: pipeline failed (retrying in %.0f s)", cam.id, RETRY_S)
            self.stop.wait(RETRY_S)

    def _evidence_worker(self) -> None:
        while True:
            try:
                ev, df = self.evidence_q.get(timeout=0.5)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            try:
                self.publisher.publish(to_message(ev, render_snapshot(df.frame, ev)))
            except Exception:
                log.exception("event %s could not be published", ev.event_id)
            finally:
                self.evidence_q.task_done()

    def _log_stats(self) -> None:
        for p in self.pipelines:
            s = self.sources[p.cam.id].stats
            log.info(
                "camera %s: decoded=%d detected=%d events=%d decode_errors=%d",
                p.cam.id,
                s.frames_decoded,
                p.stats.frames,
                p.stats.events,
                s.decode_errors,
            )
        ps = self.publisher.stats
        log.info(
            "mqtt: queued=%d acked=%d refused=%d evidence_dropped=%d",
            ps.queued,
            ps.acked,
            ps.refused,
            self.evidence_dropped,
        )
