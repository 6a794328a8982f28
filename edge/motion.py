"""Motion gate for fixed cameras: skip inference on static frames (after Frigate's motion detector).

A grayscale frame about 100 px high (one swscale call from the decoder's YUV: only the luma plane is
scaled) is blurred and compared with a slowly updated background. Pixels that differ by more than
``threshold`` are motion, except under the camera's motion mask. When most of the frame changes at
once (lights, exposure, a camera that moved) the background is reset instead of reporting motion.
After motion, the changed pixels are grouped into blobs (``boxes_norm``: the separate things that
move), so that the detector can look at each of them rather than at one box spanning all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import av
import cv2
import numpy as np

from edge.regions import Box
from edge.scale import Downscaler

# Changed pixels this close (one pixel apart at ~100 px high) belong to one blob: the parts of a walker.
_JOIN = np.ones((3, 3), np.uint8)
MAX_BLOBS = 8  # more separate blobs than this: the detector looks at the whole frame anyway
MIN_BLOB_PX = 4  # changed pixels in a blob, fewer: grain or compression noise, left out of the boxes


@dataclass
class MotionStats:
    frames: int = 0
    motion_frames: int = 0
    recalibrations: int = 0


class MotionGate:
    """``moving(frame)`` says whether anything changed; all buffers are allocated once."""

    def __init__(
        self,
        frame_height_px: int = 100,
        threshold: int = 30,
        min_area_px: int = 12,
        alpha: float = 0.02,
        recalibrate_ratio: float = 0.8,
        mask_polygons_norm: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> None:
        if frame_height_px < 16:
            raise ValueError(f"frame_height_px must be >= 16, got {frame_height_px}")
        if not 0 < threshold < 256:
            raise ValueError(f"threshold must be in 1..255, got {threshold}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.height = frame_height_px
        self.threshold = float(threshold)
        self.min_area_px = min_area_px
        self.alpha = alpha
        self.recalibrate_ratio = recalibrate_ratio
        self.mask_polygons_norm = [list(p) for p in mask_polygons_norm]
        self.stats = MotionStats()
        self.box_norm: Box | None = None  # where the last motion was: around all of it
        self._boxes: list[Box] | None = []  # boxes_norm of the last frame (None: not worked out yet)
        self.width = 0
        self._bg: np.ndarray | None = None
        self._scale = Downscaler()

    def _allocate(self, src_w: int, src_h: int) -> None:
        # Even width keeps swscale happy; the aspect ratio follows the source.
        self.width = max(16, round(src_w * self.height / src_h) // 2 * 2)
        shape = (self.height, self.width)
        self._blur_u8 = np.zeros(shape, np.uint8)
        self._blur = np.zeros(shape, np.float32)
        self._diff = np.zeros(shape, np.float32)
        self._changed = np.zeros(shape, np.uint8)
        self._keep = np.ones(shape, np.uint8)  # 0 under the motion mask
        self._joined = np.zeros(shape, np.uint8)
        self._labels = np.zeros(shape, np.int32)
        for poly in self.mask_polygons_norm:
            pts = np.round(np.array(poly, np.float64) * [self.width - 1, self.height - 1]).astype(np.int32)
            cv2.fillPoly(self._keep, [pts], 0)
        self._bg = None
        self._src = (src_w, src_h)

    def moving(self, frame: av.VideoFrame) -> bool:
        if self._bg is None or (frame.width, frame.height) != self._src:
            self._allocate(frame.width, frame.height)
        gray = self._scale(frame, self.width, self.height, "gray")
        return self.moving_gray(gray)

    def moving_gray(self, gray: np.ndarray) -> bool:
        """The same test on an already small grayscale image (sized like the first one seen).

        After a True, ``box_norm`` is the box around every changed pixel (None: the whole frame)
        and ``boxes_norm`` the boxes of its blobs (empty: use ``box_norm``)."""
        self.box_norm = None
        self._boxes = []
        if self._bg is None:
            if gray.shape != (self.height, self.width):
                self.height = gray.shape[0]
                self._allocate(gray.shape[1], gray.shape[0])
            self._bg = cv2.GaussianBlur(gray, (5, 5), 0).astype(np.float32)
            self.stats.frames += 1
            return True  # the first frame is always worth a look
        self.stats.frames += 1
        blur = self._blur
        cv2.GaussianBlur(gray, (5, 5), 0, dst=self._blur_u8)
        np.copyto(blur, self._blur_u8, casting="unsafe")
        cv2.absdiff(blur, self._bg, dst=self._diff)
        np.greater(self._diff, self.threshold, out=self._changed.view(bool))
        self._changed &= self._keep
        changed = int(cv2.countNonZero(self._changed))
        if changed > self.recalibrate_ratio * self._changed.size:
            np.copyto(self._bg, blur)
            self.stats.recalibrations += 1
            return False
        # The background follows slow changes (light, shadows) but not a person walking through.
        cv2.accumulateWeighted(blur, self._bg, self.alpha)
        if changed >= self.min_area_px:
            self.stats.motion_frames += 1
            x, y, w, h = cv2.boundingRect(self._changed)
            self.box_norm = (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)
            self._boxes = None  # worked out when asked for: only frames detected on regions need them
            return True
        return False

    @property
    def boxes_norm(self) -> list[Box]:
        """Around each separate blob of the last frame's motion (MAX_BLOBS at most), noise left out;
        [] without motion, with more than MAX_BLOBS blobs, or when none stands out from the noise.
        Read on the thread that calls ``moving``, before its next call."""
        if self._boxes is None:
            self._boxes = self._blobs()
        return self._boxes

    def _blobs(self) -> list[Box]:
        cv2.dilate(self._changed, _JOIN, dst=self._joined)
        n, _, stats, _ = cv2.connectedComponentsWithStats(self._joined, self._labels, 8, cv2.CV_32S)
        if n - 1 > 4 * MAX_BLOBS:  # grain all over (or a flicker): not worth counting blob by blob
            return []
        # Pixels of each blob that really changed (the dilation only joined them).
        counts = np.bincount(self._labels[self._changed.view(bool)], minlength=n)
        keep = [i for i in range(1, n) if counts[i] >= MIN_BLOB_PX]
        if not keep or len(keep) > MAX_BLOBS:
            return []
        xywh = stats[keep, :4] / np.array([self.width, self.height, self.width, self.height], np.float64)
        return [(x, y, x + bw, y + bh) for x, y, bw, bh in xywh.tolist()]


@dataclass
class DetectSchedule:
    """Decides per decimated frame whether to run the detector (pure logic, media time)."""

    refresh_s: float = 1.0
    idle_refresh_s: float = 10.0
    last_detect_pts_s: float = -1e9

    def due(self, pts_s: float, motion: bool, tracking: bool) -> bool:
        since = pts_s - self.last_detect_pts_s
        run = motion or since >= self.idle_refresh_s or (tracking and since >= self.refresh_s)
        if run:
            self.last_detect_pts_s = pts_s
        return run
