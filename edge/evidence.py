"""Evidence for an event: a full-resolution JPEG snapshot with the zone (or tripwire) and box drawn."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from edge.clips import ClipCut, write_clip
from edge.events import EvidenceJob
from edge.geometry import side_points
from edge.types import ClipRef, Event, EventPhase

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
    if event.line_norm:
        (ax, ay), (bx, by) = event.line_norm
        pa = (round(ax * (w - 1)), round(ay * (h - 1)))
        pb = (round(bx * (w - 1)), round(by * (h - 1)))
        cv2.line(img, pa, pb, ZONE_COLOUR, max(2, w // 320))
        # The sides, not the end points: "A" used to be written at p1, which read as a point's name.
        for text, at in zip("AB", side_points(pa, pb, max(14.0, w / 40)), strict=True):
            cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, max(0.5, w / 1600), ZONE_COLOUR, 1)
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


@dataclass
class EvidenceStats:
    snapshots: int = 0
    clips: int = 0
    clip_errors: int = 0


class EvidenceWriter:
    """Turns evidence jobs into (event, snapshot) ready to publish; runs off the camera threads.

    A snapshot is sent once: later phases without a new frame carry none (the centre keeps it).
    """

    def __init__(self, media_dir: Path | None) -> None:
        self.media_dir = media_dir
        self.stats = EvidenceStats()
        self._shown: set[str] = set()  # open events whose snapshot was handed out
        # A shared clip is written for its first member's end and reused for the others:
        # clip name -> (its ref, members still to come).
        self._shared: dict[str, tuple[ClipRef | None, int]] = {}
        self.fresh_clip: ClipCut | None = None  # set by process() when it wrote the clip just now

    def process(self, job: EvidenceJob) -> tuple[Event, Snapshot | None]:
        """The event ready to publish and its snapshot: a new one when the job brings a frame (start,
        a better update), None for a later phase whose event's snapshot was already handed out (the
        centre keeps it), a placeholder where none was (its start was lost to an error)."""
        ev = job.event
        snap: Snapshot | None
        if job.frame is not None:
            shown = (
                ev
                if job.snap_box_norm is None
                else dataclasses.replace(ev, xyxy_norm=job.snap_box_norm, score=job.snap_score)
            )
            snap = render_snapshot(job.frame, shown)
            self._shown.add(ev.event_id)
            self.stats.snapshots += 1
        elif ev.phase is EventPhase.START or ev.event_id not in self._shown:
            snap = _placeholder()
        else:
            snap = None
        self.fresh_clip = None
        if job.clip is not None and self.media_dir is not None:
            ref = self._clip(job.clip, self.media_dir / ev.station / ev.camera / ev.ts.strftime("%Y%m%d"))
            if ref is not None:
                begin = job.clip.begin_of(ev.event_id)
                offset = 0.0 if begin is None else max(0.0, round(begin - ref.start_pts_s, 3))
                ev = dataclasses.replace(ev, clip=dataclasses.replace(ref, event_offset_s=offset))
        if ev.phase is EventPhase.END:
            self._shown.discard(ev.event_id)
        return ev, snap

    def _clip(self, cut: ClipCut, folder: Path) -> ClipRef | None:
        held = self._shared.pop(cut.event_id, None)
        if held is not None:  # written for an earlier member of this shared clip
            ref, left = held
            if left > 1:
                self._shared[cut.event_id] = (ref, left - 1)
            return ref
        try:
            ref = write_clip(cut, folder)
        except (av.error.FFmpegError, OSError, ValueError):
            self.stats.clip_errors += 1
            ref = None
        if ref is not None:
            self.stats.clips += 1
            self.fresh_clip = cut
        if len(cut.events) > 1:
            self._shared[cut.event_id] = (ref, len(cut.events) - 1)
        return ref


def _placeholder() -> Snapshot:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    return Snapshot(buf.tobytes(), 8, 8)
