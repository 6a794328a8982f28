"""Rules: each one says, per frame, which situations are alarming; ``Situations`` turns that into
events with a stable id and a lifecycle (start, update, end). Time is media time (``pts_s``), so a
replay at full speed gives the same events as the live stream."""

from __future__ import annotations

import math
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from edge.geometry import Schedule, Tripwire, Zone
from edge.types import Event, EventPhase, RuleKind, Track

__all__ = [
    "CrowdRule",
    "FrameContext",
    "IntrusionRule",
    "LineCrossingRule",
    "LoiteringRule",
    "Rule",
    "Situations",
    "StationaryVehicleRule",
    "Zone",
]

UPDATE_EVERY_S = 10.0  # an open event reports an update this often
GONE_GRACE_S = 2.0  # per-track memory survives this long out of the zone (a step outside)


@dataclass(frozen=True)
class FrameContext:
    station: str
    camera: str
    pts_s: float
    ts: datetime


@dataclass
class Hit:
    """One alarming situation in this frame."""

    track: Track
    count: int = 1
    direction: str = ""


@dataclass
class _Open:
    event_id: str
    started_pts_s: float
    last_true_pts_s: float
    last_update_pts_s: float
    hit: Hit


@dataclass
class Situations:
    """Lifecycle bookkeeping of one rule: start when a key turns alarming, update every
    ``UPDATE_EVERY_S``, end when it has been quiet ``end_after_s``; nothing new starts within
    ``cooldown_s`` after an end (a key that turns alarming then stays silent while it lasts)."""

    rule: Rule
    end_after_s: float = 2.0
    cooldown_s: float = 0.0
    open: dict[Hashable, _Open] = field(default_factory=dict)
    suppressed: set[Hashable] = field(default_factory=set)
    fired: set[Hashable] = field(default_factory=set)
    last_end_pts_s: float = -math.inf

    def step(self, hits: dict[Hashable, Hit], ctx: FrameContext) -> list[Event]:
        events: list[Event] = []
        now = ctx.pts_s
        for key, hit in hits.items():
            o = self.open.get(key)
            if o is not None:
                o.last_true_pts_s = now
                o.hit = hit
                if now - o.last_update_pts_s >= UPDATE_EVERY_S:
                    o.last_update_pts_s = now
                    events.append(self.rule.event(o, EventPhase.UPDATE, ctx))
            elif key in self.suppressed or key in self.fired:
                continue
            elif now - self.last_end_pts_s < self.cooldown_s:
                self.suppressed.add(key)
            else:
                o = _Open(uuid.uuid4().hex, now, now, now, hit)
                self.open[key] = o
                self.fired.add(key)
                events.append(self.rule.event(o, EventPhase.START, ctx))
        self.suppressed &= hits.keys()
        for key in [
            k for k, o in self.open.items() if k not in hits and now - o.last_true_pts_s >= self.end_after_s
        ]:
            events.append(self.rule.event(self.open.pop(key), EventPhase.END, ctx))
            self.last_end_pts_s = now
        return events

    def close_all(self, ctx: FrameContext) -> list[Event]:
        events = [self.rule.event(o, EventPhase.END, ctx) for o in self.open.values()]
        if events:
            self.last_end_pts_s = ctx.pts_s
        self.open.clear()
        return events

    def forget(self, keep: set[Hashable]) -> None:
        """Drop one-shot memory of keys whose object is gone (open events end by themselves)."""
        self.fired &= keep
        self.suppressed &= keep


class Rule:
    """Base: class filter, schedule, lifecycle. Subclasses implement ``hits`` for one frame."""

    kind: RuleKind

    def __init__(
        self,
        rule_id: str,
        zone: Zone | None,
        class_ids: Sequence[int],
        labels: Sequence[str],
        *,
        schedule: Schedule | None = None,
        cooldown_s: float = 0.0,
        end_after_s: float = 2.0,
    ) -> None:
        if cooldown_s < 0 or end_after_s < 0:
            raise ValueError(f"rule {rule_id!r}: cooldown_s and end_after_s must be >= 0")
        self.rule_id = rule_id
        self.zone = zone
        self.class_ids = frozenset(class_ids)
        self.labels = labels
        self.schedule = schedule
        self.situations = Situations(self, end_after_s, cooldown_s)

    def update(self, tracks: Sequence[Track], ctx: FrameContext) -> list[Event]:
        if self.schedule is not None and not self.schedule.active(ctx.ts):
            return self.situations.close_all(ctx) if self.situations.open else []
        watched = [t for t in tracks if t.class_id in self.class_ids]
        return self.situations.step(self.hits(watched, ctx.pts_s), ctx)

    def finish(self, ctx: FrameContext) -> list[Event]:
        """End every open event (the stream ended)."""
        return self.situations.close_all(ctx)

    def forget(self, live_track_ids: set[int]) -> None:
        self.situations.forget(set(live_track_ids))

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        raise NotImplementedError

    def inside(self, t: Track) -> bool:
        return self.zone is None or self.zone.contains(*t.foot_norm)

    def event(self, o: _Open, phase: EventPhase, ctx: FrameContext) -> Event:
        t = o.hit.track
        return Event(
            event_id=o.event_id,
            station=ctx.station,
            camera=ctx.camera,
            rule=self.rule_id,
            kind=self.kind,
            zone=self.zone.zone_id if self.zone else self.rule_id,
            label=self.labels[t.class_id],
            score=t.score,
            xyxy_norm=t.xyxy_norm,
            track_id=t.track_id,
            pts_s=ctx.pts_s,
            ts=ctx.ts,
            zone_points_norm=self.zone.points_norm if self.zone else (),
            phase=phase,
            started_pts_s=o.started_pts_s,
            line_norm=self.line_norm(),
            count=o.hit.count,
            direction=o.hit.direction,
        )

    def line_norm(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        return None


class _PerTrackTimer:
    """Media time since which each track has met a condition; forgiving short gaps."""

    def __init__(self) -> None:
        self.since: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def mark(self, tid: int, now: float) -> float:
        if now - self.last.get(tid, -math.inf) > GONE_GRACE_S:
            self.since[tid] = now
        self.last[tid] = now
        return now - self.since[tid]

    def reset(self, tid: int) -> None:
        self.since.pop(tid, None)
        self.last.pop(tid, None)

    def forget(self, live: set[int]) -> None:
        for tid in [t for t in self.since if t not in live]:
            self.reset(tid)


class IntrusionRule(Rule):
    """Alarming while a tracked object has been inside the zone ``min_frames`` detected frames."""

    kind = RuleKind.INTRUSION

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids: Sequence[int],
        labels: Sequence[str],
        min_frames: int = 2,
        **kw,
    ) -> None:
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        super().__init__(rule_id, zone, class_ids, labels, **kw)
        self.min_frames = min_frames
        self._inside: dict[int, int] = {}  # track id -> consecutive frames inside

    @property
    def _fired(self) -> set[Hashable]:
        return self.situations.fired

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        out: dict[Hashable, Hit] = {}
        present = set()
        for t in tracks:
            present.add(t.track_id)
            if not self.inside(t):
                self._inside.pop(t.track_id, None)
                continue
            n = self._inside.get(t.track_id, 0) + 1
            self._inside[t.track_id] = n
            if n >= self.min_frames:
                out[t.track_id] = Hit(t)
        for tid in [k for k in self._inside if k not in present]:
            del self._inside[tid]
        return out


class LoiteringRule(Rule):
    """Alarming while a tracked object has stayed in the zone at least ``dwell_s`` (media time)."""

    kind = RuleKind.LOITERING

    def __init__(self, rule_id: str, zone: Zone, class_ids, labels, dwell_s: float = 30.0, **kw) -> None:
        if dwell_s <= 0:
            raise ValueError(f"dwell_s must be > 0, got {dwell_s}")
        super().__init__(rule_id, zone, class_ids, labels, **kw)
        self.dwell_s = dwell_s
        self.timer = _PerTrackTimer()

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        out: dict[Hashable, Hit] = {}
        for t in tracks:
            if self.inside(t) and self.timer.mark(t.track_id, pts_s) >= self.dwell_s:
                out[t.track_id] = Hit(t)
        return out

    def forget(self, live_track_ids: set[int]) -> None:
        super().forget(live_track_ids)
        self.timer.forget(live_track_ids)


class StationaryVehicleRule(Rule):
    """Alarming while a vehicle in the zone has stayed within ``max_move_norm`` box sizes of where
    it stopped for at least ``dwell_s``: a car driving through never qualifies."""

    kind = RuleKind.STATIONARY_VEHICLE

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids,
        labels,
        dwell_s: float = 60.0,
        max_move_norm: float = 0.25,
        **kw,
    ) -> None:
        if dwell_s <= 0 or max_move_norm <= 0:
            raise ValueError(f"dwell_s and max_move_norm must be > 0, got {dwell_s}, {max_move_norm}")
        super().__init__(rule_id, zone, class_ids, labels, **kw)
        self.dwell_s = dwell_s
        self.max_move_norm = max_move_norm
        self.timer = _PerTrackTimer()
        self._anchor: dict[int, tuple[float, float]] = {}

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        out: dict[Hashable, Hit] = {}
        for t in tracks:
            x1, y1, x2, y2 = t.xyxy_norm
            c = ((x1 + x2) / 2, (y1 + y2) / 2)
            size = max(math.hypot(x2 - x1, y2 - y1), 1e-3)
            a = self._anchor.get(t.track_id)
            if a is None or math.hypot(c[0] - a[0], c[1] - a[1]) > self.max_move_norm * size:
                self._anchor[t.track_id] = c  # it moved: start over from here
                self.timer.reset(t.track_id)
            if self.inside(t) and self.timer.mark(t.track_id, pts_s) >= self.dwell_s:
                out[t.track_id] = Hit(t)
        return out

    def forget(self, live_track_ids: set[int]) -> None:
        super().forget(live_track_ids)
        self.timer.forget(live_track_ids)
        for tid in [k for k in self._anchor if k not in live_track_ids]:
            del self._anchor[tid]


class CrowdRule(Rule):
    """Alarming while at least ``min_count`` watched objects stand in the zone for ``min_duration_s``."""

    kind = RuleKind.CROWD

    def __init__(
        self,
        rule_id: str,
        zone: Zone,
        class_ids,
        labels,
        min_count: int = 3,
        min_duration_s: float = 5.0,
        **kw,
    ) -> None:
        if min_count < 2 or min_duration_s < 0:
            raise ValueError(
                f"min_count must be >= 2 and min_duration_s >= 0, got {min_count}, {min_duration_s}"
            )
        super().__init__(rule_id, zone, class_ids, labels, **kw)
        self.min_count = min_count
        self.min_duration_s = min_duration_s
        self._since: float | None = None
        self._last_crowded = -math.inf

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        inside = [t for t in tracks if self.inside(t)]
        if len(inside) < self.min_count:
            if pts_s - self._last_crowded > GONE_GRACE_S:
                self._since = None
            return {}
        self._last_crowded = pts_s
        if self._since is None:
            self._since = pts_s
        if pts_s - self._since < self.min_duration_s:
            return {}
        box = (
            min(t.xyxy_norm[0] for t in inside),
            min(t.xyxy_norm[1] for t in inside),
            max(t.xyxy_norm[2] for t in inside),
            max(t.xyxy_norm[3] for t in inside),
        )
        best = max(inside, key=lambda t: t.score)
        group = Track(0, best.class_id, best.score, box, best.hits, best.age_frames)
        return {"crowd": Hit(group, count=len(inside))}

    def forget(self, live_track_ids: set[int]) -> None:
        self.situations.forget({"crowd"})


class LineCrossingRule(Rule):
    """Fires when a track's foot point crosses the tripwire in a watched direction (one event per
    crossing; it ends ``end_after_s`` later)."""

    kind = RuleKind.LINE_CROSSING

    def __init__(
        self, rule_id: str, line: Tripwire, class_ids, labels, direction: str = "both", **kw
    ) -> None:
        if direction not in ("a_to_b", "b_to_a", "both"):
            raise ValueError(f"direction must be a_to_b, b_to_a or both, got {direction!r}")
        super().__init__(rule_id, None, class_ids, labels, **kw)
        self.line = line
        self.direction = direction
        self._last: dict[int, tuple[float, float]] = {}  # last foot point off the line
        self._crossings: dict[int, int] = {}
        self.counts = {"a_to_b": 0, "b_to_a": 0}

    def hits(self, tracks: Sequence[Track], pts_s: float) -> dict[Hashable, Hit]:
        out: dict[Hashable, Hit] = {}
        for t in tracks:
            foot = t.foot_norm
            prev = self._last.get(t.track_id)
            if self.line.side(*foot) == 0:
                continue
            self._last[t.track_id] = foot
            if prev is None or not self.line.crossed(prev, foot):
                continue
            d = "a_to_b" if self.line.side(*prev) > 0 else "b_to_a"
            self.counts[d] += 1
            if self.direction in (d, "both"):
                n = self._crossings.get(t.track_id, 0) + 1
                self._crossings[t.track_id] = n
                out[(t.track_id, n)] = Hit(t, direction=d)
        return out

    def forget(self, live_track_ids: set[int]) -> None:
        for tid in [k for k in self._last if k not in live_track_ids]:
            self._last.pop(tid, None)
            self._crossings.pop(tid, None)
        self.situations.forget({k for k in self.situations.fired if k[0] in live_track_ids})  # type: ignore[index]

    def line_norm(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        return (self.line.p1, self.line.p2)
