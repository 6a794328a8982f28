"""The per-camera loop: decoded frame -> motion gate -> detector-sized image -> detect -> track ->
rules -> event desk (snapshot choice, clip window) -> evidence jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from av.video.frame import VideoFrame

from edge.config import (
    CameraConfig,
    CrowdRuleConfig,
    IntrusionRuleConfig,
    LineCrossingRuleConfig,
    LoiteringRuleConfig,
    RuleConfig,
    StationaryVehicleRuleConfig,
)
from edge.detect import Detector, Geometry
from edge.events import EventDesk, EvidenceJob
from edge.geometry import Schedule, Tripwire, Zone
from edge.motion import DetectSchedule, MotionGate
from edge.regions import Box, crop_pixels, motion_regions, to_frame
from edge.rules import (
    CrowdRule,
    FrameContext,
    IntrusionRule,
    LineCrossingRule,
    LoiteringRule,
    Rule,
    StationaryVehicleRule,
)
from edge.scale import Downscaler
from edge.sources import DecodedFrame
from edge.track import Tracker
from edge.types import Detections, Event, Track

_NO_PICTURE = VideoFrame(2, 2, "yuv420p")  # stands for the picture where only times are kept


@dataclass(frozen=True)
class Prepared:
    """A decimated frame after the decode-side half: ``images`` is set when it needs inference,
    either the whole frame (``regions`` None) or the crops of the parts where things move
    (``regions``, normalised, one per crop)."""

    frame: DecodedFrame
    images: tuple[np.ndarray, ...]
    moving: bool
    regions: tuple[Box, ...] | None = None


class Inference(Protocol):
    def infer(self, image: np.ndarray) -> Detections: ...

    def infer_many(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


@dataclass
class PipelineStats:
    frames: int = 0  # decimated frames seen
    detected: int = 0  # frames that went through the detector
    skipped_static: int = 0  # frames the motion gate spared
    regions: int = 0  # detected on the region around the motion only
    moving: int = 0  # frames the motion gate saw motion in (all frames without a gate)
    moving_detected: int = 0  # of those, frames that went through the detector
    dropped: int = 0  # decimated frames dropped because analysis fell behind (oldest first)
    detections: int = 0
    events: int = 0


def build_rule(rc: RuleConfig, zones: dict[str, Zone], detector: Detector, timezone: str) -> Rule:
    common = {
        "schedule": Schedule(rc.schedule, timezone) if rc.schedule else None,
        "cooldown_s": rc.cooldown_s,
        "end_after_s": rc.end_after_s,
    }
    ids, labels = detector.class_ids(rc.classes), detector.labels
    if isinstance(rc, IntrusionRuleConfig):
        return IntrusionRule(rc.id, zones[rc.zone], ids, labels, rc.min_frames, **common)
    if isinstance(rc, LoiteringRuleConfig):
        return LoiteringRule(rc.id, zones[rc.zone], ids, labels, rc.dwell_s, **common)
    if isinstance(rc, CrowdRuleConfig):
        return CrowdRule(rc.id, zones[rc.zone], ids, labels, rc.min_count, rc.min_duration_s, **common)
    if isinstance(rc, StationaryVehicleRuleConfig):
        return StationaryVehicleRule(
            rc.id, zones[rc.zone], ids, labels, rc.dwell_s, rc.max_move_norm, **common
        )
    if isinstance(rc, LineCrossingRuleConfig):
        return LineCrossingRule(rc.id, Tripwire(*rc.line), ids, labels, rc.direction, **common)
    raise TypeError(f"no rule for {type(rc).__name__}")


def _disjoint(
    crops: list[tuple[int, int, int, int]], width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Pixel crops (x, y, w, h) with any that overlap (after rounding to the model's stride) made
    one, so that no object is detected twice."""
    out = list(crops)
    i = 0
    while i < len(out):
        x, y, w, h = out[i]
        for j in range(i + 1, len(out)):
            u, v, p, q = out[j]
            if x < u + p and u < x + w and y < v + q and v < y + h:
                x0, y0 = min(x, u), min(y, v)
                x1, y1 = max(x + w, u + p), max(y + h, v + q)
                out[i] = crop_pixels((x0 / width, y0 / height, x1 / width, y1 / height), width, height)
                del out[j]
                i = -1  # the grown crop may now overlap one already passed
                break
        i += 1
    return out


class CameraPipeline:
    """Owns all per-camera state (gate, tracker, rules, desk), so one thread per camera needs no locks."""

    def __init__(
        self,
        station_id: str,
        cam: CameraConfig,
        detector: Detector,
        inference: Inference,
        desk: EventDesk | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.station_id = station_id
        self.cam = cam
        self.detector = detector
        self.inference = inference
        t = cam.tracker
        self.tracker = Tracker(t.iou_match, t.high_score, t.min_hits, t.max_missed)
        zones = {z.id: Zone(z.id, z.points) for z in cam.zones}
        self.rules = [build_rule(r, zones, detector, timezone) for r in cam.rules]
        self.desk = desk or EventDesk(snapshot_window_s=0.0)
        m = cam.motion
        self.gate: MotionGate | None = None
        if cam.profile == "fixed":
            self.gate = MotionGate(
                m.frame_height_px, m.threshold, m.min_area_px, m.alpha, m.recalibrate_ratio, m.mask
            )
        self.schedule = DetectSchedule(m.refresh_s, m.idle_refresh_s)
        self.stats = PipelineStats()
        self.tracks: Sequence[Track] = ()
        self._geo = Geometry(1, 1)
        self._scale = Downscaler()
        self._geo_src: tuple[int, int] = (0, 0)
        # The last analysed frame's times, for finish(). Its picture is not kept: a 1080p frame
        # held here is a decoder buffer (3 MB) that cannot be reused.
        self._last: DecodedFrame | None = None
        self._last_full_s = -1e9  # media time of the last whole-frame detection
        self.events: list[Event] = []

    def process(self, df: DecodedFrame) -> list[EvidenceJob]:
        """Both halves in one call (replay, tests): ``analyse(prepare(df))``."""
        return self.analyse(self.prepare(df))

    def prepare(self, df: DecodedFrame) -> Prepared:
        """Decode-side half, cheap: motion gate and, when due, the detector-sized image.

        Runs on the camera's decode thread so that decoding never waits for inference.
        """
        frame = df.frame
        self.stats.frames += 1
        due = moving = True
        if self.gate is not None:
            moving = self.gate.moving(frame)
            due = self.schedule.due(df.pts_s, moving, self.tracker.live_count > 0)
        if moving:
            self.stats.moving += 1
        if not due:
            return Prepared(df, (), moving)
        regions = self._regions(df.pts_s, moving)
        if (frame.width, frame.height) != self._geo_src:
            self._geo_src = (frame.width, frame.height)
            self._geo = self.detector.geometry(frame.width, frame.height, self.cam.detect_size)
        geo = self._geo
        # One swscale call straight to the detector's size and pixel format: no full-size BGR copy.
        small = self._scale(frame, geo.resized_w, geo.resized_h, "bgr24")
        if regions is None:
            self._last_full_s = df.pts_s
            return Prepared(df, (small,), moving)
        W, H = geo.resized_w, geo.resized_h
        crops = _disjoint([crop_pixels(r, W, H) for r in regions], W, H)
        self.stats.regions += 1
        return Prepared(
            df,
            tuple(small[y : y + h, x : x + w] for x, y, w, h in crops),
            moving,
            tuple((x / W, y / H, (x + w) / W, (y + h) / H) for x, y, w, h in crops),
        )

    def _regions(self, pts_s: float, moving: bool) -> list[Box] | None:
        """Where to detect on a due frame: around each thing that moves, or (None) on the whole
        frame - the first time, every ``refresh_s`` (what moves nowhere near the motion is still
        seen), and when the motion is large."""
        gate = self.gate
        if not (self.cam.motion.regions and moving and gate is not None and gate.box_norm is not None):
            return None
        if pts_s - self._last_full_s >= self.cam.motion.refresh_s:
            return None
        # Read from the decode thread while the analysis thread may be updating the tracker: a
        # box a frame old at worst, which only moves the region's edge (it is grown twofold).
        return motion_regions(gate.boxes_norm or [gate.box_norm], self.tracker.predicted_boxes(pts_s))

    def analyse(self, prep: Prepared) -> list[EvidenceJob]:
        """Analysis half: inference (when prepared for it), tracker, rules and the event desk."""
        df = prep.frame
        self._last = DecodedFrame(_NO_PICTURE, df.pts_s, df.ts, df.mono_s)
        due = bool(prep.images)
        if due:
            if prep.regions is None:
                dets = self.inference.infer(prep.images[0])
            else:
                parts = self.inference.infer_many(prep.images)
                dets = Detections.concat([to_frame(d, r) for d, r in zip(parts, prep.regions, strict=True)])
            self.tracks = self.tracker.update(dets, df.pts_s, prep.regions)
            self.stats.detected += 1
            self.stats.moving_detected += prep.moving
            self.stats.detections += len(dets)
        else:
            self.stats.skipped_static += 1  # nothing moved: the tracked objects stay where they were
        ctx = FrameContext(self.station_id, self.cam.id, df.pts_s, df.ts)
        events = []
        for rule in self.rules:
            events += rule.update(self.tracks, ctx)
        if due:
            live = self.tracker.live_ids()
            for rule in self.rules:
                rule.forget(live)
        self.stats.events += len(events)
        self.events = events  # the last frame's, for a replay's annotated video (edge/annotate.py)
        return self.desk.handle(events, df, self.tracks if due else ())

    def finish(self) -> list[EvidenceJob]:
        """The stream ended (or dropped): end open events and release their evidence."""
        if self._last is None:
            return self.desk.finish()
        df = self._last
        ctx = FrameContext(self.station_id, self.cam.id, df.pts_s, df.ts)
        events = []
        for rule in self.rules:
            events += rule.finish(ctx)
        self.stats.events += len(events)
        jobs = self.desk.handle(events, df, ())
        return jobs + self.desk.finish()

    def line_counts(self) -> dict[str, dict[str, int]]:
        return {r.rule_id: dict(r.counts) for r in self.rules if isinstance(r, LineCrossingRule)}
