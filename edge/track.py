"""A small ByteTrack-style tracker: constant-velocity prediction, two-stage IoU association.

High-score detections are matched first; low-score ones only extend existing tracks (that is what
keeps a person tracked through a frame where the detector is unsure). Velocities are per second of
media time, so irregular updates (the motion gate skips static frames) predict correctly. Confirmed
tracks survive ``max_missed`` updates unseen (coasting on their velocity), tentative ones die on
their first miss, and a dead track is evicted with all its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.regions import Box, inside
from edge.types import Detections, Track


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU, each row and column used once, IoU >= threshold."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols])
    used_r: set[int] = set()
    used_c: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


MAX_SPEED_NORM_S = 0.5  # a box edge never moves faster than half the frame per second


@dataclass
class _TrackState:
    track_id: int
    class_id: int
    box: np.ndarray  # (4,) float32, box when last seen
    velocity: np.ndarray  # (4,) per second of media time
    score: float
    seen_t: float  # media time when last seen
    hits: int = 1
    missed: int = 0
    age: int = 1

    def predict(self, t: float) -> np.ndarray:
        return self.box + self.velocity * min(t - self.seen_t, 2.0)

    def update(self, box: np.ndarray, score: float, t: float) -> None:
        dt = t - self.seen_t
        if dt > 1e-6:
            step = np.clip((box - self.box) / dt, -MAX_SPEED_NORM_S, MAX_SPEED_NORM_S)
            # First step sets the velocity; later ones are smoothed so one noisy box cannot fling it.
            self.velocity = step if self.hits == 1 else 0.6 * self.velocity + 0.4 * step
        self.box = box.astype(np.float32)
        self.score = score
        self.seen_t = t
        self.hits += 1
        self.missed = 0


class Tracker:
    """Assigns stable ids to detections of one camera. Call ``update`` on every detected frame."""

    def __init__(
        self, iou_match: float = 0.3, high_score: float = 0.5, min_hits: int = 2, max_missed: int = 10
    ) -> None:
        if not 0.0 < iou_match < 1.0:
            raise ValueError(f"iou_match must be in (0, 1), got {iou_match}")
        if not 0.0 < high_score < 1.0:
            raise ValueError(f"high_score must be in (0, 1), got {high_score}")
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.iou_match = iou_match
        self.high_score = high_score
        self.min_hits = min_hits
        self.max_missed = max_missed
        self._tracks: list[_TrackState] = []
        self._next_id = 1
        self._steps = 0

    @property
    def live_count(self) -> int:
        return len(self._tracks)

    def predicted_boxes(self, t_s: float) -> list[Box]:
        """Where every held track is expected at media time ``t_s``."""
        return [tuple(map(float, tr.predict(t_s))) for tr in list(self._tracks)]  # type: ignore[misc]

    def live_ids(self) -> set[int]:
        """Ids of every track still held, confirmed or not; rules drop state of the others."""
        return {t.track_id for t in self._tracks}

    def update(
        self, dets: Detections, t_s: float | None = None, regions: Sequence[Box] | None = None
    ) -> list[Track]:
        """Advance every track to media time ``t_s`` (default: one step per call) and return the
        confirmed tracks seen in this frame.

        ``regions``: the detector looked only there (``edge.regions``). Tracks predicted outside
        them were not looked at: they are not matched, not aged, and stay as last seen."""
        self._steps += 1
        t = float(self._steps) if t_s is None else t_s
        for tr in self._tracks:
            tr.age += 1
        high = np.flatnonzero(dets.score >= self.high_score)
        low = np.flatnonzero(dets.score < self.high_score)
        looked = range(len(self._tracks))
        if regions is not None:
            looked = []
            for i, tr in enumerate(self._tracks):
                box = tuple(tr.predict(t))
                if any(inside(box, r) for r in regions):  # type: ignore[arg-type]
                    looked.append(i)
        # Confirmed tracks get the first pick of the confident detections (ByteTrack's order).
        confirmed = [i for i in looked if self._tracks[i].hits >= self.min_hits]
        tentative = [i for i in looked if self._tracks[i].hits < self.min_hits]
        confirmed, high_used = self._associate(confirmed, dets, high, t)
        confirmed, _ = self._associate(confirmed, dets, low, t)
        tentative, tent_used = self._associate(tentative, dets, high[~high_used], t)
        left = high[~high_used][~tent_used]
        # Do not spawn from low-score detections: they are the ones most likely false.
        self._spawn(dets, left, t)
        dead: set[int] = set(tentative)  # a tentative track missed once is dropped
        for ti in confirmed:
            tr = self._tracks[ti]
            tr.missed += 1
            if tr.missed > self.max_missed:
                dead.add(ti)
        if dead:
            self._tracks = [tr for i, tr in enumerate(self._tracks) if i not in dead]
        out = []
        for tr in self._tracks:
            if tr.missed == 0 and tr.hits >= self.min_hits:
                b = tr.box
                out.append(
                    Track(
                        track_id=tr.track_id,
                        class_id=tr.class_id,
                        score=tr.score,
                        xyxy_norm=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                        hits=tr.hits,
                        age_frames=tr.age,
                    )
                )
        return out

    def _associate(
        self, pool: list[int], dets: Detections, det_idx: np.ndarray, t: float
    ) -> tuple[list[int], np.ndarray]:
        """Match tracks in ``pool`` to detections ``det_idx``; returns unmatched tracks, used mask."""
        used = np.zeros(len(det_idx), bool)
        if not pool or det_idx.size == 0:
            return pool, used
        preds = np.stack([self._tracks[i].predict(t) for i in pool])
        iou = iou_matrix(preds, dets.xyxy_norm[det_idx])
        track_cls = np.array([self._tracks[i].class_id for i in pool])
        iou = np.where(track_cls[:, None] == dets.class_id[det_idx][None, :], iou, 0.0)
        matched_rows = set()
        for r, c in greedy_match(iou, self.iou_match):
            d = int(det_idx[c])
            self._tracks[pool[r]].update(dets.xyxy_norm[d], float(dets.score[d]), t)
            used[c] = True
            matched_rows.add(r)
        return [ti for k, ti in enumerate(pool) if k not in matched_rows], used

    def _spawn(self, dets: Detections, idx: np.ndarray, t: float) -> None:
        for d in idx:
            self._tracks.append(
                _TrackState(
                    track_id=self._next_id,
                    class_id=int(dets.class_id[d]),
                    box=dets.xyxy_norm[d].astype(np.float32).copy(),
                    velocity=np.zeros(4, np.float32),
                    score=float(dets.score[d]),
                    seen_t=t,
                )
            )
            self._next_id += 1
