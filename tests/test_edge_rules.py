"""Rules and the event lifecycle on hand-built tracks (media time in seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.geometry import Schedule, Tripwire, Zone
from edge.rules import (
    CrowdRule,
    FrameContext,
    IntrusionRule,
    LineCrossingRule,
    LoiteringRule,
    StationaryVehicleRule,
)
from edge.types import EventPhase, RuleKind, Track

LABELS = ("person", "bicycle", "car")
SQUARE = Zone("z", [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)])
NOON_UTC = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


def track(tid: int, foot_x: float, foot_y: float, cls: int = 0, w: float = 0.1, h: float = 0.2) -> Track:
    return Track(tid, cls, 0.9, (foot_x - w / 2, foot_y - h, foot_x + w / 2, foot_y), hits=3, age_frames=3)


def ctx(t: float, ts: datetime = NOON_UTC) -> FrameContext:
    return FrameContext("st", "cam", t, ts + timedelta(seconds=t))


def run(rule, frames: list[tuple[float, list[Track]]]) -> list:
    events = []
    for t, tracks in frames:
        events += rule.update(tracks, ctx(t))
    return events


@pytest.mark.parametrize(
    ("xs", "direction", "expected"),
    [
        ([0.2, 0.4, 0.6], "both", ["a_to_b"]),  # left to right over a line drawn top to bottom
        ([0.6, 0.4, 0.2], "both", ["b_to_a"]),
        ([0.2, 0.4, 0.6], "b_to_a", []),
        ([0.2, 0.6, 0.2, 0.6], "a_to_b", ["a_to_b", "a_to_b"]),  # back and forth: two crossings right
        ([0.2, 0.45, 0.49], "both", []),  # approaches but never crosses
    ],
)
def test_line_crossing_directions(xs, direction, expected) -> None:
    rule = LineCrossingRule("l", Tripwire((0.5, 0.1), (0.5, 0.9)), [0], LABELS, direction, end_after_s=0.5)
    events = run(rule, [(i * 1.0, [track(1, x, 0.5)]) for i, x in enumerate(xs)])
    assert [e.direction for e in events if e.phase is EventPhase.START] == expected
    assert all(e.kind is RuleKind.LINE_CROSSING and e.line_norm == ((0.5, 0.1), (0.5, 0.9)) for e in events)


def test_line_crossing_beyond_the_segment_does_not_count() -> None:
    rule = LineCrossingRule("l", Tripwire((0.5, 0.1), (0.5, 0.4)), [0], LABELS)
    assert run(rule, [(0.0, [track(1, 0.2, 0.8)]), (1.0, [track(1, 0.8, 0.8)])]) == []
    assert rule.counts == {"a_to_b": 0, "b_to_a": 0}


def test_loitering_fires_after_dwell_once_and_ends_after_leaving() -> None:
    rule = LoiteringRule("loiter", SQUARE, [0], LABELS, dwell_s=8.0, end_after_s=2.0)
    frames = [(t * 0.5, [track(7, 0.5, 0.5)]) for t in range(0, 25)]  # 0 .. 12 s inside
    frames += [(12.5 + t * 0.5, []) for t in range(0, 8)]  # gone
    events = run(rule, frames)
    phases = [(e.phase, e.pts_s) for e in events]
    assert phases[0] == (EventPhase.START, 8.0)
    assert phases[-1][0] is EventPhase.END and 14.0 <= phases[-1][1] <= 15.0
    assert len({e.event_id for e in events}) == 1  # one id through the lifecycle
    assert [p for p, _ in phases].count(EventPhase.START) == 1


def test_loitering_timer_survives_a_short_gap_but_not_leaving() -> None:
    rule = LoiteringRule("loiter", SQUARE, [0], LABELS, dwell_s=5.0)
    # Inside 0-3 s, unseen 3-4 s (detector miss), inside again: dwell counts from 0.
    frames = [(t, [track(1, 0.5, 0.5)]) for t in (0.0, 1.0, 2.0, 3.0)] + [
        (t, [track(1, 0.5, 0.5)]) for t in (4.5, 5.0)
    ]
    assert [e.pts_s for e in run(rule, frames)] == [5.0]
    rule2 = LoiteringRule("loiter", SQUARE, [0], LABELS, dwell_s=5.0)
    frames = [(t, [track(1, 0.5, 0.5)]) for t in (0.0, 1.0, 2.0)] + [
        (t, [track(1, 0.95, 0.5)]) for t in (3.0, 4.0, 5.5)
    ]
    frames += [(t, [track(1, 0.5, 0.5)]) for t in (6.0, 7.0, 8.0)]
    assert run(rule2, frames) == []  # left the zone for 3.5 s: the dwell starts over at 6 s


def test_cooldown_swallows_a_new_start_right_after_an_end() -> None:
    rule = IntrusionRule("i", SQUARE, [0], LABELS, min_frames=1, cooldown_s=10.0, end_after_s=1.0)
    frames = [(0.0, [track(1, 0.5, 0.5)]), (1.0, []), (2.0, [])]  # track 1 in, then gone: ends at 2.0
    frames += [(3.0, [track(2, 0.5, 0.5)]), (5.0, [track(2, 0.5, 0.5)]), (13.0, [track(2, 0.5, 0.5)])]
    frames += [(14.0, [track(3, 0.5, 0.5)])]  # after the cooldown a new object alerts again
    starts = [e for e in run(rule, frames) if e.phase is EventPhase.START]
    assert [e.track_id for e in starts] == [1, 3]


def test_schedule_night_only_window_wraps_midnight() -> None:
    night = Schedule(["19:00-06:00"], "Asia/Shanghai")
    local = [(23, True), (2, True), (6, False), (12, False), (19, True)]
    for hour, active in local:
        ts = datetime(2026, 6, 1, hour, 30, tzinfo=UTC) - timedelta(hours=8)
        assert Schedule(["19:00-06:00"], "Asia/Shanghai").active(ts) is active, hour
    rule = IntrusionRule("i", SQUARE, [0], LABELS, min_frames=1, schedule=night)
    assert rule.update([track(1, 0.5, 0.5)], ctx(0.0)) == []  # noon: off
    evening = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 21:00 local
    assert len(rule.update([track(1, 0.5, 0.5)], ctx(1.0, evening))) == 1


def test_crowd_needs_count_for_duration_and_reports_size() -> None:
    rule = CrowdRule("crowd", SQUARE, [0], LABELS, min_count=3, min_duration_s=4.0)
    three = [track(i, 0.3 + 0.1 * i, 0.5) for i in range(3)]
    frames = [(float(t), three[:2]) for t in range(3)]  # only two: nothing
    frames += [(3.0 + t, three) for t in range(6)]  # three from 3 s: alert at 7 s
    events = run(rule, frames)
    assert [(e.phase, e.pts_s, e.count) for e in events] == [(EventPhase.START, 7.0, 3)]
    x1, y1, x2, y2 = events[0].xyxy_norm
    assert x1 < 0.3 and x2 > 0.5  # the box covers the group


@pytest.mark.parametrize(
    ("step_norm", "fires"),
    [(0.0, True), (0.002, True), (0.05, False)],  # parked, jittering box, driving through
)
def test_stationary_vehicle(step_norm, fires) -> None:
    rule = StationaryVehicleRule("park", SQUARE, [2], LABELS, dwell_s=10.0, max_move_norm=0.25)
    frames = [(t * 0.5, [track(4, 0.3 + step_norm * t, 0.5, cls=2, w=0.2, h=0.1)]) for t in range(0, 25)]
    events = run(rule, frames)
    assert bool(events) is fires
    if fires:
        assert events[0].kind is RuleKind.STATIONARY_VEHICLE and events[0].pts_s == 10.0


def test_stationary_vehicle_ignores_people() -> None:
    rule = StationaryVehicleRule("park", SQUARE, [2], LABELS, dwell_s=1.0)
    assert run(rule, [(t, [track(1, 0.5, 0.5, cls=0)]) for t in range(5)]) == []
