"""Zones and rules. Geometry is precomputed in constructors; per-frame methods only look up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from edge.types import Event, RuleKind, Track

MASK_SIZE = 512  # zone masks are rasterised once at this resolution (normalised coordinates)


class Zone:
    """A polygon in normalised coordinates with an O(1) point test."""

    def __init__(self, zone_id: str, points_norm: Sequence[tuple[float, float]]) -> None:
        if len(points_norm) < 3:
            raise ValueError(f"zone {zone_id!r} needs at least 3 points, got {len(points_norm)}")
        self.zone_id = zone_id
        self.points_norm = tuple((float(x), float(y)) for x, y in points_norm)
        poly = np.round(np.array(self.points_norm, np.float64) * (MASK_SIZE - 1)).astype(np.int32)
        self._mask = np.zeros((MASK_SIZE, MASK_SIZE), np.uint8)
        cv2.fillPoly(self._mask, [poly], 1)

    def contains(self, x_norm: float, y_norm: float) -> bool:
        if not (0.0 <= x_norm <= 1.0 and 0.0 <= y_norm <= 1.0):
            return False
        return bool(self._mask[round(y_norm * (MASK_SIZE - 1)), round(x_norm * (MASK_SIZE - 1))])


@dataclass(frozen=True)
class FrameContext:
    station: str
    camera: str
    pts_s: float
    ts: datetime


class IntrusionRule:
    """Fires once per tracked object after it has been inside the zone for ``min_frames`` frames."""

    kind = RuleKind.INTRUSION

    def __init__(
        self, rule_id: str, zone: Zone, class_ids: Sequence[int], labels: Sequence[str], min_frames: int = 2
    ) -> None:
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        self.rule_id = rule_id
        self.zone = zone
        self.class_ids = frozenset(class_ids)
        self.labels = labels
        self.min_frames = min_frames
        self._inside: dict[int, int] = {}  # track id -> consecutive frames inside
        self._fired: set[int] = set()

    def update(self, tracks: Sequence[Track], ctx: FrameContext) -> list[Event]:
        events: list[Event] = []
        present: set[int] = set()
        for t in tracks:
            if t.class_id not in self.class_ids:
                continue
            present.add(t.track_id)
            if not self.zone.contains(*t.foot_norm):
                self._inside.pop(t.track_id, None)
                continue
            n = self._inside.get(t.track_id, 0) + 1
            self._inside[t.track_id] = n
            if n >= self.min_frames and t.track_id not in self._fired:
                self._fired.add(t.track_id)
                events.append(self._event(t, ctx))
        # Evict state of tracks no longer reported (dead or unseen this frame).
        for tid in list(self._inside):
            if tid not in present:
                del self._inside[tid]
        return events

    def forget(self, live_track_ids: set[int]) -> None:
        """Drop fired-once memory for tracks the tracker has evicted."""
        self._fired &= live_track_ids

    def _event(self, t: Track, ctx: FrameContext) -> Event:
        return Event(
            event_id=uuid.uuid4().hex,
            station=ctx.station,
            camera=ctx.camera,
            rule=self.rule_id,
            kind=self.kind,
            zone=self.zone.zone_id,
            label=self.labels[t.class_id],
            score=t.score,
            xyxy_norm=t.xyxy_norm,
            track_id=t.track_id,
            pts_s=ctx.pts_s,
            ts=ctx.ts,
            zone_points_norm=self.zone.points_norm,
        )
