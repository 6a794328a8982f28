"""Evidence for an event: a full-resolution JPEG snapshot with the zone and the box drawn."""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

from edge.types import Event

JPEG_QUALITY = 85
ZONE_COLOUR = (0, 200, 255)  # BGR amber
BOX_COLOUR = (40, 40, 230)  # BGR red


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    width_px: int
    height_px: int


def render_snapshot(frame: av.VideoFrame, event: Event) -> Snapshot:
    """The only place a full-resolution BGR image is made: once per event, off the hot loop."""
    img = frame.to_ndarray(format="bgr24")
    return draw_snapshot(img, event)


def draw_snapshot(img: np.ndarray, event: Event) -> Snapshot:
    h, w = img.shape[:2]
    scale = np.array([w - 1, h - 1], np.float64)
    if event.zone_points_norm:
        poly = np.round(np.array(event.zone_points_norm) * scale).astype(np.int32)
        overlay = img.copy()
        cv2.fillPoly(overlay, [poly], ZONE_COLOUR)
        cv2.addWeighted(overlay, 0.18, img, 0.82, 0, dst=img)
        cv2.polylines(img, [poly], True, ZONE_COLOUR, max(1, w // 640))
    x1, y1, x2, y2 = event.xyxy_norm
    p1 = (round(x1 * (w - 1)), round(y1 * (h - 1)))
    p2 = (round(x2 * (w - 1)), round(y2 * (h - 1)))
    thick = max(2, w // 480)
    cv2.rectangle(img, p1, p2, BOX_COLOUR, thick)
    text = f"{event.label} {event.score:.2f} #{event.track_id}"
    font_scale = max(0.5, w / 1600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    ty = max(th + base, p1[1])
    cv2.rectangle(img, (p1[0], ty - th - base), (p1[0] + tw + 4, ty), BOX_COLOUR, -1)
    cv2.putText(img, text, (p1[0] + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return Snapshot(buf.tobytes(), w, h)
