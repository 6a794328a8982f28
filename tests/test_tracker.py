"""Tracker logic on hand-built detection sequences."""

from __future__ import annotations

import numpy as np
import pytest

from edge.track import Tracker, greedy_match, iou_matrix
from edge.types import Detections


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    if not rows:
        return Detections.empty()
    a = np.array(rows, np.float32)
    return Detections(a[:, :4].copy(), a[:, 4].copy(), a[:, 5].astype(np.int32))


def walk(step: int, x0: float = 0.1, dx: float = 0.02, score: float = 0.9, cls: int = 0):
    x = x0 + step * dx
    return (x, 0.4, x + 0.08, 0.7, score, cls)


def test_a_walking_person_keeps_one_id() -> None:
    tr = Tracker(min_hits=2)
    ids = set()
    for i in range(20):
        out = tr.update(dets(walk(i)))
        if i == 0:
            assert out == []  # tentative until min_hits
        else:
            ids |= {t.track_id for t in out}
    assert len(ids) == 1


def test_survives_missed_frames_then_evicts() -> None:
    tr = Tracker(min_hits=1, max_missed=3)
    first = tr.update(dets(walk(0)))[0].track_id
    tr.update(dets(walk(1)))
    for _ in range(3):  # detector misses three frames
        assert tr.update(dets()) == []
    again = tr.update(dets(walk(5)))
    assert [t.track_id for t in again] == [first]
    for _ in range(4):
        tr.update(dets())
    assert tr.live_ids() == set()


def test_low_score_detection_extends_but_never_starts_a_track() -> None:
    tr = Tracker(min_hits=1, high_score=0.5)
    assert tr.update(dets(walk(0, score=0.4))) == []
    assert tr.live_ids() == set()
    tid = tr.update(dets(walk(1)))[0].track_id
    assert [t.track_id for t in tr.update(dets(walk(2, score=0.4)))] == [tid]


def test_two_people_crossing_keep_their_ids() -> None:
    tr = Tracker(min_hits=1)
    a0 = b0 = None
    for i in range(10):
        out = tr.update(dets(walk(i, x0=0.1, dx=0.03), walk(i, x0=0.7, dx=-0.03)))
        by_x = sorted(out, key=lambda t: t.xyxy_norm[0])
        if i == 0:
            a0, b0 = by_x[0].track_id, by_x[1].track_id
        if i < 4:  # before they meet, left is a, right is b
            assert [t.track_id for t in by_x] == [a0, b0]
    assert tr.live_ids() == {a0, b0}


def test_classes_do_not_swap() -> None:
    tr = Tracker(min_hits=1)
    pid = tr.update(dets(walk(0, cls=0)))[0].track_id
    out = tr.update(dets(walk(1, cls=2)))  # a car where the person was: a new object
    assert pid not in {t.track_id for t in out}


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"iou_match": 0}, "iou_match"), ({"min_hits": 0}, "min_hits"), ({"max_missed": -1}, "max_missed")],
)
def test_bad_arguments_are_named(kw, name) -> None:
    with pytest.raises(ValueError, match=name):
        Tracker(**kw)


def test_iou_and_matching() -> None:
    a = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    b = np.array([[0, 0, 1, 0.5], [2, 2, 3, 3]], np.float32)
    m = iou_matrix(a, b)
    assert m[0, 0] == pytest.approx(0.5) and m[1, 1] == pytest.approx(1.0) and m[0, 1] == 0
    assert sorted(greedy_match(m, 0.3)) == [(0, 0), (1, 1)]
    assert greedy_match(m, 0.6) == [(1, 1)]


def test_velocity_is_per_second_so_irregular_updates_still_match() -> None:
    # The motion gate skips frames: updates arrive at 0.2 s, then after 1.0 s gaps. A person walking
    # 0.1 of the frame per second must keep one id although a 1 s jump leaves the boxes barely touching.
    tr = Tracker(min_hits=1, iou_match=0.3)
    times = [0.0, 0.2, 0.4, 0.6, 1.6, 2.6, 3.6]
    ids = set()
    for t in times:
        x = 0.1 + 0.1 * t
        ids |= {k.track_id for k in tr.update(dets((x, 0.4, x + 0.06, 0.7, 0.9, 0)), t_s=t)}
    assert len(ids) == 1


def test_coasts_on_its_velocity_through_misses() -> None:
    tr = Tracker(min_hits=1, max_missed=5)
    tid = None
    for i in range(5):
        tid = tr.update(dets(walk(i, dx=0.04)), t_s=i * 0.2)[0].track_id
    for i in range(5, 8):  # three missed detections while walking on
        tr.update(dets(), t_s=i * 0.2)
    again = tr.update(dets(walk(8, dx=0.04)), t_s=8 * 0.2)
    assert [t.track_id for t in again] == [tid]


def test_a_tentative_track_dies_on_its_first_miss() -> None:
    tr = Tracker(min_hits=3, max_missed=10)
    tr.update(dets(walk(0)))
    tr.update(dets(walk(1)))
    assert len(tr.live_ids()) == 1
    tr.update(dets())
    assert tr.live_ids() == set()  # a flicker, not an object: its state is gone at once
