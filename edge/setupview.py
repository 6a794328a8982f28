"""The installer's picture of a camera (`xl-edge check --frames DIR`): one frame of its detect stream,
upright, with what its config means drawn on it. Normalised coordinates typed by hand are easy to get
wrong, and a tripwire's sides are easier to see than to work out: so the zones (and the rules that use
them), each tripwire with its A and B sides and the crossing that counts, the motion masks, and a
grid of normalised coordinates to read new points from. And what the detector finds on that frame, in
another colour, with the foot points the zone rules test: whether people at that distance are found
at all, and where their feet fall against the zones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.config import CameraConfig, LineCrossingRuleConfig
from edge.evidence import ZONE_COLOUR
from edge.geometry import side_points
from edge.types import Detections

MASK_COLOUR = (0, 0, 0)  # masked parts are dimmed to near black: motion there is ignored
GRID_COLOUR = (235, 235, 235)
SEEN_COLOUR = (255, 255, 0)  # BGR cyan: what the detector finds now, apart from the config's amber
TEXT_BG = (20, 20, 20)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label(img: np.ndarray, text: str, at: tuple[int, int], scale: float, colour=(255, 255, 255)) -> None:
    """Text centred on ``at`` over a dark box, kept inside the picture."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    h, w = img.shape[:2]
    x = min(max(0, at[0] - tw // 2 - 2), max(0, w - tw - 4))
    y = min(max(th + base + 2, at[1] + th // 2), h - 1)
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y + 1), TEXT_BG, -1)
    cv2.putText(img, text, (x + 2, y - base), FONT, scale, colour, 1, cv2.LINE_AA)


def _px(points: Sequence[Sequence[float]], w: int, h: int) -> np.ndarray:
    return np.round(np.array(points, np.float64) * [w - 1, h - 1]).astype(np.int32)


def _grid(img: np.ndarray, scale: float) -> None:
    h, w = img.shape[:2]
    lines = img.copy()
    for i in range(1, 10):
        x, y = round(i / 10 * (w - 1)), round(i / 10 * (h - 1))
        cv2.line(lines, (x, 0), (x, h - 1), GRID_COLOUR, 1)
        cv2.line(lines, (0, y), (w - 1, y), GRID_COLOUR, 1)
    cv2.addWeighted(lines, 0.35, img, 0.65, 0, dst=img)
    small = scale * 0.8
    for i in range(1, 10):
        label(img, f"{i / 10:.1f}", (round(i / 10 * (w - 1)), 8), small, GRID_COLOUR)
        label(img, f"{i / 10:.1f}", (14, round(i / 10 * (h - 1))), small, GRID_COLOUR)


def draw_setup(img: np.ndarray, cam: CameraConfig, grid: bool = True) -> np.ndarray:
    """Draws ``cam``'s masks, zones and tripwires (and the coordinate grid) on a BGR picture of its
    detect stream, in place."""
    h, w = img.shape[:2]
    scale = max(0.45, w / 1600)
    thick = max(2, w // 480)
    if grid:
        _grid(img, scale)
    if cam.motion.mask:
        shade = img.copy()
        polys = [_px(m, w, h) for m in cam.motion.mask]
        cv2.fillPoly(shade, polys, MASK_COLOUR)
        cv2.addWeighted(shade, 0.6, img, 0.4, 0, dst=img)
        for poly in polys:
            cv2.polylines(img, [poly], True, (200, 200, 200), 1, cv2.LINE_AA)
            cx, cy = poly.mean(axis=0)
            label(img, "motion mask", (round(cx), round(cy)), scale * 0.8)
    uses: dict[str, list[str]] = {}
    for r in cam.rules:
        zone = getattr(r, "zone", None)
        if zone is not None:
            uses.setdefault(zone, []).append(f"{r.kind.value} {r.id}")
    for z in cam.zones:
        poly = _px(z.points, w, h)
        fill = img.copy()
        cv2.fillPoly(fill, [poly], ZONE_COLOUR)
        cv2.addWeighted(fill, 0.22, img, 0.78, 0, dst=img)
        cv2.polylines(img, [poly], True, ZONE_COLOUR, thick, cv2.LINE_AA)
        for p in poly:
            cv2.circle(img, (int(p[0]), int(p[1])), thick + 2, ZONE_COLOUR, -1)
        cx, cy = poly.mean(axis=0)
        rules = ", ".join(uses.get(z.id, [])) or "no rule"
        label(img, f"zone {z.id}: {rules}", (round(cx), round(cy)), scale, ZONE_COLOUR)
    for r in cam.rules:
        if isinstance(r, LineCrossingRuleConfig):
            _tripwire(img, r, scale, thick)
    return img


def _tripwire(img: np.ndarray, rule: LineCrossingRuleConfig, scale: float, thick: int) -> None:
    h, w = img.shape[:2]
    (x1, y1), (x2, y2) = _px(rule.line, w, h)
    p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
    cv2.line(img, p1, p2, ZONE_COLOUR, thick + 1, cv2.LINE_AA)
    cv2.circle(img, p1, thick + 3, ZONE_COLOUR, -1)
    off = max(18.0, w / 25)
    a, b = side_points(p1, p2, off)
    # The crossing that raises an event: an arrow from the side it starts on to the side it ends on.
    if rule.direction in ("a_to_b", "both"):
        cv2.arrowedLine(img, a, b, ZONE_COLOUR, thick, cv2.LINE_AA, tipLength=0.25)
    if rule.direction in ("b_to_a", "both"):
        cv2.arrowedLine(img, b, a, ZONE_COLOUR, thick, cv2.LINE_AA, tipLength=0.25)
    a_far, b_far = side_points(p1, p2, off * 1.6)
    label(img, "A", a_far, scale * 1.2, ZONE_COLOUR)
    label(img, "B", b_far, scale * 1.2, ZONE_COLOUR)
    label(img, f"line {rule.id}: {rule.direction} (p1)", (p1[0], p1[1] - round(off / 2)), scale, ZONE_COLOUR)


def describe(dets: Detections, labels: Sequence[str], wanted: set[str]) -> str:
    """What the detector found ("2 person, 1 car"), the classes the camera's rules watch first."""
    counts: dict[str, int] = {}
    for c in dets.class_id:
        counts[labels[int(c)]] = counts.get(labels[int(c)], 0) + 1
    order = sorted(counts, key=lambda k: (k not in wanted, -counts[k], k))
    return ", ".join(f"{counts[k]} {k}" for k in order)


def draw_detections(img: np.ndarray, dets: Detections, labels: Sequence[str], wanted: set[str]) -> np.ndarray:
    """Each detection's box, class and score, and the foot point the zone rules test (bottom
    centre): whether people at that distance are found at all, and where their feet fall."""
    h, w = img.shape[:2]
    scale = max(0.4, w / 1800)
    thick = 2 if w < 1280 else 3
    for (x1, y1, x2, y2), score, c in zip(dets.xyxy_norm, dets.score, dets.class_id, strict=True):
        name = labels[int(c)]
        p1 = (round(float(x1) * (w - 1)), round(float(y1) * (h - 1)))
        p2 = (round(float(x2) * (w - 1)), round(float(y2) * (h - 1)))
        cv2.rectangle(img, p1, p2, SEEN_COLOUR, thick if name in wanted else 1)
        cv2.circle(img, ((p1[0] + p2[0]) // 2, p2[1]), thick + 2, SEEN_COLOUR, -1)
        label(img, f"{name} {float(score):.2f}", (p1[0] + 30, p1[1] - 8), scale, SEEN_COLOUR)
    return img


def write_jpeg(img: np.ndarray, path: Path, quality: int = 90) -> None:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    path.write_bytes(buf.tobytes())
