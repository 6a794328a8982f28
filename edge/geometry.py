"""Zones, tripwires and schedules. Everything is precomputed in constructors; per-frame calls look up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import cv2
import numpy as np

MASK_SIZE = 512  # zone masks are rasterised once at this resolution (normalised coordinates)
WHOLE_FRAME = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


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


class Tripwire:
    """A directed segment p1 -> p2. Side A is on your right when you stand on p1 facing p2 (in the
    picture, y down): for a line drawn top to bottom, A is the left of the picture."""

    def __init__(self, p1: tuple[float, float], p2: tuple[float, float]) -> None:
        if p1 == p2:
            raise ValueError("a tripwire needs two different points")
        self.p1 = (float(p1[0]), float(p1[1]))
        self.p2 = (float(p2[0]), float(p2[1]))
        self._dx = self.p2[0] - self.p1[0]
        self._dy = self.p2[1] - self.p1[1]

    def side(self, x: float, y: float) -> int:
        """+1 on side A, -1 on side B, 0 on the line."""
        cross = self._dx * (y - self.p1[1]) - self._dy * (x - self.p1[0])
        return (cross > 0) - (cross < 0)

    def crossed(self, a: tuple[float, float], b: tuple[float, float]) -> bool:
        """Whether the move a -> b passes through the segment (not just its infinite extension)."""
        sa, sb = self.side(*a), self.side(*b)
        if sa == sb or sa == 0 or sb == 0:
            return False
        # The move's own line must separate p1 and p2.
        mx, my = b[0] - a[0], b[1] - a[1]
        c1 = mx * (self.p1[1] - a[1]) - my * (self.p1[0] - a[0])
        c2 = mx * (self.p2[1] - a[1]) - my * (self.p2[0] - a[0])
        return (c1 > 0) != (c2 > 0) or c1 == 0 or c2 == 0


def side_points(
    p1: tuple[int, int], p2: tuple[int, int], offset_px: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where to write "A" and "B": ``offset_px`` either side of the segment's middle, at right angles.

    Side A is on the right of someone on p1 facing p2 (``Tripwire`` above). In pixels, y down,
    that is the direction (-dy, dx); scaling x and y apart (normalised -> pixels) keeps the side."""
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    n = max(1e-9, float(np.hypot(dx, dy)))
    ux, uy = -dy / n * offset_px, dx / n * offset_px
    mx, my = (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2
    return (round(mx + ux), round(my + uy)), (round(mx - ux), round(my - uy))


def _parse_window(text: str) -> tuple[time, time]:
    start, end = text.split("-")
    h1, m1 = (int(v) for v in start.split(":"))
    h2, m2 = (int(v) for v in end.split(":"))
    return time(h1, m1), time(h2, m2)


class Schedule:
    """Local time windows ("19:00-06:00" wraps midnight); empty means always. Re-evaluated at most
    once a minute, so the per-frame cost is one comparison."""

    def __init__(self, windows: Sequence[str], timezone: str = "UTC") -> None:
        self.windows = [_parse_window(w) for w in windows]
        self.tz = ZoneInfo(timezone)
        self._valid_until: datetime | None = None
        self._active = True

    def active(self, ts: datetime) -> bool:
        if not self.windows:
            return True
        if (
            self._valid_until is not None
            and ts < self._valid_until
            and ts >= self._valid_until - timedelta(minutes=1)
        ):
            return self._active
        local = ts.astimezone(self.tz).time()
        self._active = any(
            (start <= local < end) if start <= end else (local >= start or local < end)
            for start, end in self.windows
        )
        self._valid_until = ts.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return self._active
