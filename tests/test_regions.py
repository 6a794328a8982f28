"""Detection on the region around motion: geometry, tracks outside it, and the same alerts on a clip."""

from __future__ import annotations

import numpy as np
import pytest

from edge.batch import DirectInference
from edge.config import load_station_config
from edge.factory import make_detector, make_source
from edge.pipeline import CameraPipeline
from edge.regions import MAX_AREA, MAX_REGIONS, crop_pixels, motion_regions, to_frame
from edge.track import Tracker
from tests.conftest import CLIPS, ROOT
from tests.test_tracker import dets


def motion_region(motion, tracks=()):  # type: ignore[no-untyped-def]
    regions = motion_regions([motion], tracks)
    assert regions is None or len(regions) == 1  # one moving thing: one region
    return None if regions is None else regions[0]


def test_region_grows_around_motion_and_takes_in_the_tracks_it_touches() -> None:
    r = motion_region((0.45, 0.45, 0.55, 0.55))
    assert r is not None and r[0] < 0.45 and r[2] > 0.55  # grown: context to recognise what moves
    assert (r[2] - r[0]) == pytest.approx(0.3) and (r[3] - r[1]) == pytest.approx(0.3)  # the minimum side
    r2 = motion_region((0.45, 0.45, 0.55, 0.55), tracks=[(0.55, 0.5, 0.7, 0.9), (0.9, 0.0, 1.0, 0.1)])
    assert r2 is not None and r2[2] == pytest.approx(0.7) and r2[3] == pytest.approx(0.9)  # touched: whole
    assert r2[0] == pytest.approx(r[0])  # the far track is not pulled in
    assert motion_region((0.1, 0.1, 0.8, 0.8)) is None  # most of the frame: detect on all of it
    big = motion_region((0.3, 0.3, 0.6, 0.6))
    assert big is None or (big[2] - big[0]) * (big[3] - big[1]) <= MAX_AREA


def test_things_moving_apart_get_regions_of_their_own_and_overlapping_ones_merge() -> None:
    left, right = (0.05, 0.1, 0.15, 0.3), (0.8, 0.6, 0.9, 0.8)
    regions = motion_regions([left, right])
    assert regions is not None and len(regions) == 2
    assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in regions) < 0.25  # one box over both: ~0.6
    assert regions[0][2] < 0.5 < regions[1][0]
    # Near each other, the grown regions overlap: one region, so nothing is detected twice.
    near = motion_regions([(0.4, 0.4, 0.45, 0.5), (0.5, 0.4, 0.55, 0.5)])
    assert near is not None and len(near) == 1 and near[0][0] < 0.4 and near[0][2] > 0.55
    # A track that joins two regions makes them one.
    joined = motion_regions([left, right], tracks=[(0.1, 0.2, 0.85, 0.7)])
    assert joined is None or len(joined) == 1
    # Many small things all over the frame: the whole frame is one pass, not many crops.
    spots = [(x, y, x + 0.02, y + 0.02) for x in (0.05, 0.35, 0.65, 0.9) for y in (0.05, 0.5, 0.9)]
    assert len(spots) > MAX_REGIONS and motion_regions(spots) is None
    assert motion_regions([]) is None


def test_crop_is_in_stride_multiples_inside_the_image() -> None:
    for region in [(0.4, 0.4, 0.6, 0.6), (0.9, 0.9, 1.0, 1.0), (0.0, 0.0, 0.05, 0.3)]:
        x, y, w, h = crop_pixels(region, 416, 234)
        assert x >= 0 and x + w <= 416 and y >= 0 and y + h <= 234
        assert w % 32 == 0 or x + w == 416 or w == 416
        assert h % 32 == 0 or y + h == 234 or h == 234
        # The crop covers the region asked for.
        assert x <= region[0] * 416 + 1 and x + w >= region[2] * 416 - 1


def test_boxes_come_back_in_frame_coordinates_and_cut_ones_are_dropped() -> None:
    region = (0.5, 0.25, 1.0, 0.75)  # touches the frame's right edge only
    d = to_frame(
        dets((0.2, 0.2, 0.6, 0.6, 0.9, 0), (0.0, 0.3, 0.3, 0.6, 0.9, 0), (0.7, 0.3, 1.0, 0.6, 0.9, 0)), region
    )
    np.testing.assert_allclose(d.xyxy_norm[0], [0.6, 0.35, 0.8, 0.55], atol=1e-6)
    # The box on the crop's left side (inside the frame) is part of an object: dropped. The one on
    # the right side is at the frame's own edge: kept.
    assert len(d) == 2 and d.xyxy_norm[1][2] == pytest.approx(1.0)


def test_tracks_outside_the_region_are_neither_aged_nor_lost() -> None:
    tr = Tracker(min_hits=1, max_missed=2)
    parked = (0.05, 0.6, 0.25, 0.8, 0.9, 2)
    walker = lambda i: (0.6 + 0.01 * i, 0.3, 0.65 + 0.01 * i, 0.6, 0.9, 0)  # noqa: E731
    first = tr.update(dets(parked, walker(0)), t_s=0.0)
    parked_id = next(t.track_id for t in first if t.class_id == 2)
    for i in range(1, 20):  # the region follows the walker; the parked car is never looked at
        out = tr.update(dets(walker(i)), t_s=i * 0.2, regions=[(0.5, 0.1, 0.9, 0.8)])
        assert parked_id in {t.track_id for t in out}  # still there, as last seen
    assert len({t.track_id for t in out}) == 2
    # A second region of the same frame takes it in: looked at and not found there, it ages.
    out = tr.update(dets(walker(20)), t_s=4.0, regions=[(0.5, 0.1, 0.9, 0.8), (0.0, 0.5, 0.3, 0.9)])
    assert parked_id not in {t.track_id for t in out} and parked_id in tr.live_ids()
    # On the whole frame it is looked for again: missing there, it ages and goes.
    for i in range(21, 25):
        out = tr.update(dets(walker(i)), t_s=i * 0.2)
    assert parked_id not in tr.live_ids()


def _replay(regions: bool) -> tuple[int, int, list[tuple[float, str]]]:
    cfg = load_station_config(ROOT / "configs" / "examples" / "indoor_loitering.yaml")
    cam = cfg.cameras[0]
    cam.source, cam.loop = str(CLIPS / "indoor_one_by_one.mp4"), False
    cam.motion.regions = regions
    det = make_detector(cfg)
    pl = CameraPipeline(cfg.station.id, cam, det, DirectInference(det))
    starts = []
    for df in make_source(cam, realtime=False, recorder=None).frames():
        for job in pl.analyse(pl.prepare(df)):
            if job.event.phase.value == "start":
                starts.append((round(job.event.pts_s, 1), job.event.rule))
    return pl.stats.regions, pl.stats.detected, starts


def test_regions_give_the_alerts_whole_frames_give() -> None:
    regions, detected, starts = _replay(True)
    _, detected_full, starts_full = _replay(False)
    assert regions > detected // 4  # a real share of the detections ran on crops
    assert len(starts) == len(starts_full) == 6
    for (t, rule), (t_full, rule_full) in zip(starts, starts_full, strict=True):
        assert rule == rule_full and abs(t - t_full) <= 1.0, (starts, starts_full)


def test_walkers_apart_are_detected_in_crops_of_their_own_with_the_alerts_of_whole_frames() -> None:
    """campus_line.yaml, first 30 s: walkers on both paths at once. Crops per walker cost fewer
    pixels than one region over all of them, and the tripwire sees the same crossings."""

    def run(regions: bool) -> tuple[int, int, int, list[tuple[float, str]]]:
        cfg = load_station_config(ROOT / "configs" / "examples" / "campus_line.yaml")
        cam = cfg.cameras[0]
        cam.source, cam.loop = str(CLIPS / "campus_pedestrians_vtest.avi"), False
        cam.motion.regions = regions
        det = make_detector(cfg)
        pixels = multi = 0

        class Counting(DirectInference):
            def infer_many(self, images):  # type: ignore[no-untyped-def]
                nonlocal pixels, multi
                pixels += sum(i.shape[0] * i.shape[1] for i in images)
                multi += len(images) > 1
                return super().infer_many(images)

            def infer(self, image):  # type: ignore[no-untyped-def]
                return self.infer_many([image])[0]

        pl = CameraPipeline(cfg.station.id, cam, det, Counting(det))
        starts = []
        for df in make_source(cam, realtime=False, recorder=None).frames():
            if df.pts_s > 30.0:
                break
            for job in pl.analyse(pl.prepare(df)):
                if job.event.phase.value == "start":
                    starts.append((job.event.pts_s, job.event.rule))
        return pixels, multi, pl.stats.regions, starts

    pixels, multi, regions, starts = run(True)
    pixels_full, multi_full, _, starts_full = run(False)
    assert multi > 10 and multi_full == 0  # frames detected on two or more crops
    assert pixels < 0.85 * pixels_full, (pixels, pixels_full)
    assert len(starts) == len(starts_full) >= 3, (starts, starts_full)
    for (t, rule), (t_full, rule_full) in zip(sorted(starts), sorted(starts_full), strict=True):
        assert rule == rule_full and abs(t - t_full) <= 1.0, (starts, starts_full)
