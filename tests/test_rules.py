"""Zone geometry and the intrusion rule on hand-built tracks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.rules import FrameContext, IntrusionRule, Zone
from edge.types import RuleKind, Track

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
LABELS = ("person", "bicycle", "car")


def track(tid: int, foot_x: float, foot_y: float, cls: int = 0) -> Track:
    return Track(tid, cls, 0.9, (foot_x - 0.05, foot_y - 0.2, foot_x + 0.05, foot_y), hits=3, age_frames=3)


def ctx(i: int = 0) -> FrameContext:
    return FrameContext("st", "cam", i * 0.2, datetime.now(UTC))


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [(0.5, 0.5, True), (0.1, 0.5, False), (0.5, 0.9, False), (0.21, 0.79, True), (1.2, 0.5, False)],
)
def test_zone_contains(x, y, inside) -> None:
    assert Zone("z", SQUARE).contains(x, y) is inside


def test_concave_zone() -> None:
    l_shape = [(0, 0), (0.5, 0), (0.5, 0.5), (1, 0.5), (1, 1), (0, 1)]
    z = Zone("l", l_shape)
    assert z.contains(0.25, 0.25) and z.contains(0.75, 0.75) and not z.contains(0.75, 0.25)


def test_zone_needs_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        Zone("z", [(0, 0), (1, 1)])


def test_fires_once_per_track_after_min_frames() -> None:
    rule = IntrusionRule("r", Zone("z", SQUARE), [0], LABELS, min_frames=2)
    assert rule.update([track(1, 0.1, 0.5)], ctx(0)) == []  # outside
    assert rule.update([track(1, 0.3, 0.5)], ctx(1)) == []  # inside, 1 frame
    ev = rule.update([track(1, 0.35, 0.5)], ctx(2))
    assert (
        len(ev) == 1 and ev[0].kind is RuleKind.INTRUSION and ev[0].track_id == 1 and ev[0].label == "person"
    )
    assert ev[0].zone == "z" and ev[0].pts_s == pytest.approx(0.4)
    assert rule.update([track(1, 0.4, 0.5)], ctx(3)) == []  # already fired for this track
    # A second person entering fires on their own.
    rule.update([track(1, 0.4, 0.5), track(2, 0.5, 0.5)], ctx(4))
    assert [e.track_id for e in rule.update([track(2, 0.5, 0.5)], ctx(5))] == [2]


def test_class_filter_and_foot_point() -> None:
    rule = IntrusionRule("r", Zone("z", SQUARE), [0], LABELS, min_frames=1)
    assert rule.update([track(1, 0.5, 0.5, cls=2)], ctx()) == []  # a car: not watched
    # Head inside the zone but feet below it: standing outside, no alert.
    assert rule.update([track(2, 0.5, 0.95)], ctx()) == []


def test_leaving_resets_the_frame_count_and_dead_tracks_are_forgotten() -> None:
    rule = IntrusionRule("r", Zone("z", SQUARE), [0], LABELS, min_frames=2)
    rule.update([track(1, 0.5, 0.5)], ctx(0))
    rule.update([track(1, 0.9, 0.5)], ctx(1))  # out again before min_frames
    assert rule.update([track(1, 0.5, 0.5)], ctx(2)) == []
    assert len(rule.update([track(1, 0.5, 0.5)], ctx(3))) == 1
    rule.forget(set())
    assert rule._fired == set()
