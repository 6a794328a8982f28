"""`xl-edge replay --annotate OUT.mp4`: the frames the pipeline analysed, with what it saw drawn on
them, for an engineer tuning a camera's rules on a recorded clip (Frigate's debug view, DeepStream's
on-screen display): the config (zones, tripwires with their sides, motion masks), the tracked
objects (box, id, class, score, foot point), and a banner naming the rules whose events are open.

Runs in the replay only, off the agent's hot loop: each analysed frame is converted to BGR, drawn on
and encoded (H.264, at the camera's detect rate, at most 1280 px wide).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from edge.config import CameraConfig
from edge.evidence import BOX_COLOUR
from edge.setupview import SEEN_COLOUR, draw_setup, label
from edge.types import Event, EventPhase, Track

MAX_WIDTH = 1280
TRACK_COLOUR = SEEN_COLOUR  # cyan, as the installer's picture draws detections
ALERT_COLOUR = BOX_COLOUR  # red, as the event snapshots draw the alert's box
BANNER_PX = 28


class AnnotatedVideo:
    def __init__(self, path: Path, cam: CameraConfig, labels: Sequence[str]) -> None:
        self.path, self.cam, self.labels = path, cam, labels
        self.frames = 0
        self._open: dict[str, Event] = {}  # event id -> its latest phase
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._time_base = Fraction(1, 5)

    def write(
        self, frame: av.VideoFrame, pts_s: float, tracks: Sequence[Track], events: Sequence[Event]
    ) -> None:
        for ev in events:
            if ev.phase is EventPhase.END:
                self._open.pop(ev.event_id, None)
            else:
                self._open[ev.event_id] = ev
        w, h = frame.width, frame.height
        if w > MAX_WIDTH:
            w, h = MAX_WIDTH, round(h * MAX_WIDTH / w / 2) * 2
        img = frame.to_ndarray(format="bgr24", width=w, height=h)
        draw_setup(img, self.cam, grid=False)
        alerting = {ev.track_id for ev in self._open.values()}
        scale = max(0.45, w / 1600)
        for t in tracks:
            colour = ALERT_COLOUR if t.track_id in alerting else TRACK_COLOUR
            x1, y1, x2, y2 = t.xyxy_norm
            p1, p2 = (round(x1 * (w - 1)), round(y1 * (h - 1))), (round(x2 * (w - 1)), round(y2 * (h - 1)))
            # 3 px for the alerting ones: a thinner red line loses its colour to H.264's half-size chroma.
            cv2.rectangle(img, p1, p2, colour, 3 if t.track_id in alerting else 2)
            cv2.circle(img, ((p1[0] + p2[0]) // 2, p2[1]), 4, colour, -1)
            name = self.labels[t.class_id] if 0 <= t.class_id < len(self.labels) else str(t.class_id)
            label(img, f"#{t.track_id} {name} {t.score:.2f}", (p1[0] + 40, p1[1] - 8), scale, colour)
        self._banner(img, pts_s, scale)
        self._encode(img)

    def _banner(self, img: np.ndarray, pts_s: float, scale: float) -> None:
        """Top strip: the media time, and red with the open events' rules while any is open."""
        w = img.shape[1]
        rules = sorted({f"{ev.kind.value} {ev.rule}" for ev in self._open.values()})
        cv2.rectangle(img, (0, 0), (w - 1, BANNER_PX), ALERT_COLOUR if rules else (20, 20, 20), -1)
        text = f"t={pts_s:7.2f}s  " + ("ALERT: " + ", ".join(rules) if rules else "no open event")
        cv2.putText(
            img, text, (8, BANNER_PX - 9), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )

    def _encode(self, img: np.ndarray) -> None:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self.path), "w")
            rate = Fraction(self.cam.detect_fps).limit_denominator(1000)
            self._time_base = 1 / rate
            self._stream = self._out.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = (
                img.shape[1],
                img.shape[0],
                "yuv420p",
            )
            self._stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
        st = self._stream
        if (img.shape[1], img.shape[0]) != (st.width, st.height):  # the stream changed resolution
            img = cv2.resize(img, (st.width, st.height), interpolation=cv2.INTER_AREA)
        vf = av.VideoFrame.from_ndarray(img, format="bgr24")
        vf.pts, vf.time_base = self.frames, self._time_base
        self._out.mux(self._stream.encode(vf))
        self.frames += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.mux(self._stream.encode())
            self._out.close()
            self._out = None
