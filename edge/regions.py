"""Detect where things move: the region around the motion (and the tracks it touches) instead of
the whole frame, as Frigate does. A car crossing a quiet 640x360 scene fills a fifth of it; the
detector runs on that crop, at the same scale as on the whole frame, so objects look the same size
to it. Tracks outside the region are not looked at, so they neither move nor age (``Tracker``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from edge.onnxshape import STRIDE
from edge.types import Detections

Box = tuple[float, float, float, float]  # normalised x1, y1, x2, y2

GROW = 2.0  # the region is the motion box grown to this many times its size
MIN_SIDE = 0.3  # of the frame, each side: context enough to recognise what moves
MAX_AREA = 0.5  # regions larger than this share of the frame in all: detect on the whole frame
# Separate regions per frame, at most: things moving apart (two cars at the two ends of a lot) are
# looked at where they are rather than in one box spanning both. Inference time goes with the
# pixels detected on (a 224x128 crop costs 27% of a 416x256 frame), not with the number of crops.
MAX_REGIONS = 4


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grown(motion: Box) -> Box:
    x1, y1, x2, y2 = motion
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw = max((x2 - x1) * GROW, MIN_SIDE) / 2
    hh = max((y2 - y1) * GROW, MIN_SIDE) / 2
    return (max(0.0, cx - hw), max(0.0, cy - hh), min(1.0, cx + hw), min(1.0, cy + hh))


def _union(a: Box, b: Box) -> Box:
    return (max(0.0, min(a[0], b[0])), max(0.0, min(a[1], b[1])), min(1.0, max(a[2], b[2])),
            min(1.0, max(a[3], b[3])))  # fmt: skip


def _area(r: Box) -> float:
    return (r[2] - r[0]) * (r[3] - r[1])


def motion_regions(moving: Sequence[Box], tracks: Iterable[Box] = ()) -> list[Box] | None:
    """The regions to detect in for the boxes of the separate ``moving`` things (None: the whole
    frame is cheaper or needed). Each box is grown; a track a region cuts is taken in whole (it
    would be seen in part); regions that overlap become one, so nothing is detected twice."""
    if not moving:
        return None
    held = list(tracks)
    regions = [_grown(m) for m in moving]
    changed = True
    while changed:  # ends: every change either grows a region inside the frame or merges two
        changed = False
        for i, r in enumerate(regions):
            for t in held:
                if _intersects(r, t):
                    u = _union(r, t)
                    changed, r = changed or u != r, u
            regions[i] = r
        merged: list[Box] = []
        for r in regions:
            for j, m in enumerate(merged):
                if _intersects(r, m):
                    merged[j], changed = _union(r, m), True
                    break
            else:
                merged.append(r)
        regions = merged
        if len(regions) == 1 and _area(regions[0]) > MAX_AREA:
            return None
    if len(regions) > MAX_REGIONS or sum(_area(r) for r in regions) > MAX_AREA:
        return None
    return regions


def crop_pixels(region: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """``region`` on a ``width`` x ``height`` image as (x, y, w, h), grown to multiples of the model's
    stride where the image allows: the model pads to them anyway, so the extra context is free."""
    x0, y0 = int(region[0] * width), int(region[1] * height)
    x1, y1 = min(width, math.ceil(region[2] * width)), min(height, math.ceil(region[3] * height))
    w = min(width, -(-(x1 - x0) // STRIDE) * STRIDE)
    h = min(height, -(-(y1 - y0) // STRIDE) * STRIDE)
    x0, y0 = min(x0, width - w), min(y0, height - h)
    return x0, y0, w, h


def inside(box: Box, region: Box, tol: float = 0.01) -> bool:
    """Whether ``box`` lies within ``region`` (``tol`` of the frame may stick out); the part of a
    predicted box beyond the frame's edge does not count."""
    return (
        max(box[0], 0.0) >= region[0] - tol
        and max(box[1], 0.0) >= region[1] - tol
        and min(box[2], 1.0) <= region[2] + tol
        and min(box[3], 1.0) <= region[3] + tol
    )


def to_frame(dets: Detections, region: Box, edge: float = 0.004) -> Detections:
    """Detections made on the ``region`` crop, in whole-frame coordinates. A box touching a side of
    the crop that is not the frame's own edge shows part of an object: it is dropped (the object is
    seen whole on the next whole-frame pass)."""
    if len(dets) == 0:
        return dets
    x0, y0, x1, y1 = region
    scale = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float32)
    xyxy = dets.xyxy_norm * scale + np.array([x0, y0, x0, y0], np.float32)
    cut = np.zeros(len(dets), bool)
    if x0 > 0.0:
        cut |= xyxy[:, 0] <= x0 + edge
    if y0 > 0.0:
        cut |= xyxy[:, 1] <= y0 + edge
    if x1 < 1.0:
        cut |= xyxy[:, 2] >= x1 - edge
    if y1 < 1.0:
        cut |= xyxy[:, 3] >= y1 - edge
    keep = ~cut
    return Detections(xyxy[keep], dets.score[keep], dets.class_id[keep])
