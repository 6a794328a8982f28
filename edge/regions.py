"""Detect where things move: the region around the motion (and the tracks it touches) instead of
the whole frame, as Frigate does. A car crossing a quiet 640x360 scene fills a fifth of it; the
detector runs on that crop, at the same scale as on the whole frame, so objects look the same size
to it. Tracks outside the region are not looked at, so they neither move nor age (``Tracker``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from edge.onnxshape import STRIDE
from edge.types import Detections

Box = tuple[float, float, float, float]  # normalised x1, y1, x2, y2

GROW = 2.0  # the region is the motion box grown to this many times its size
MIN_SIDE = 0.3  # of the frame, each side: context enough to recognise what moves
MAX_AREA = 0.5  # a region larger than this share of the frame: detect on the whole frame


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def motion_region(motion: Box, tracks: Iterable[Box] = ()) -> Box | None:
    """The region to detect in for ``motion`` (None: the whole frame is cheaper or needed)."""
    x1, y1, x2, y2 = motion
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw = max((x2 - x1) * GROW, MIN_SIDE) / 2
    hh = max((y2 - y1) * GROW, MIN_SIDE) / 2
    r = (max(0.0, cx - hw), max(0.0, cy - hh), min(1.0, cx + hw), min(1.0, cy + hh))
    # A track the region cuts would be seen in part: take it in whole (one pass is enough).
    for t in tracks:
        if _intersects(r, t):
            r = (min(r[0], t[0]), min(r[1], t[1]), max(r[2], t[2]), max(r[3], t[3]))
    r = (max(0.0, r[0]), max(0.0, r[1]), min(1.0, r[2]), min(1.0, r[3]))
    if (r[2] - r[0]) * (r[3] - r[1]) > MAX_AREA:
        return None
    return r


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
