"""How far two detectors agree: the int8 build against fp32, a GPU port against onnxruntime.

Kept apart from the int8 tools so that a machine without PyAV (the GPU box) can use it."""

from __future__ import annotations

import numpy as np

from edge.track import iou_matrix
from edge.types import Detections


def match_fraction(ref: list[Detections], test: list[Detections], iou: float = 0.5) -> tuple[float, int]:
    """Fraction of reference detections found in ``test`` with the same class and IoU >= ``iou``."""
    found = total = 0
    for r, t in zip(ref, test, strict=True):
        total += len(r)
        if len(r) == 0 or len(t) == 0:
            continue
        m = iou_matrix(r.xyxy_norm, t.xyxy_norm)
        m = np.where(r.class_id[:, None] == t.class_id[None, :], m, 0.0)
        found += int((m.max(axis=1) >= iou).sum())
    return (found / total if total else 1.0), total
