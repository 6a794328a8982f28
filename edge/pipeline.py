"""The per-camera loop: decoded frame -> detector-sized image -> detect -> track -> rules -> events."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge.config import CameraConfig
from edge.detect import Detector, Geometry
from edge.rules import FrameContext, IntrusionRule, Zone
from edge.sources import DecodedFrame
from edge.track import Tracker
from edge.types import Event

EventSink = Callable[[Event, DecodedFrame], None]


@dataclass
class PipelineStats:
    frames: int = 0
    detections: int = 0
    events: int = 0


class CameraPipeline:
    """Owns all per-camera state (tracker, rules), so one thread per camera needs no locks."""

    def __init__(
        self, station_id: str, cam: CameraConfig, detector: Detector, detector_lock: threading.Lock
    ) -> None:
        self.station_id = station_id
        self.cam = cam
        self.detector = detector
        self._lock = detector_lock
        t = cam.tracker
        self.tracker = Tracker(t.iou_match, t.high_score, t.min_hits, t.max_missed)
        zones = {z.id: Zone(z.id, z.points) for z in cam.zones}
        self.rules = [
            IntrusionRule(r.id, zones[r.zone], detector.class_ids(r.classes), detector.labels, r.min_frames)
            for r in cam.rules
        ]
        self.stats = PipelineStats()
        self._geo: Geometry | None = None
        self._geo_src: tuple[int, int] = (0, 0)

    def process(self, df: DecodedFrame) -> list[Event]:
        frame = df.frame
        if (frame.width, frame.height) != self._geo_src:
            self._geo_src = (frame.width, frame.height)
            self._geo = self.detector.geometry(frame.width, frame.height)
        geo = self._geo
        # One swscale call straight to the detector's size and pixel format: no full-size BGR copy.
        small = frame.reformat(width=geo.resized_w, height=geo.resized_h, format="bgr24").to_ndarray()
        with self._lock:
            dets = self.detector.infer([small])[0]
        tracks = self.tracker.update(dets)
        ctx = FrameContext(self.station_id, self.cam.id, df.pts_s, df.ts)
        events: list[Event] = []
        live = self.tracker.live_ids()
        for rule in self.rules:
            events += rule.update(tracks, ctx)
            rule.forget(live)
        self.stats.frames += 1
        self.stats.detections += len(dets)
        self.stats.events += len(events)
        return events
