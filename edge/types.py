"""Typed data passed between edge stages. No I/O; imports nothing from edge/."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections of one frame, one array per field; boxes normalised to 0..1 (x1, y1, x2, y2)."""

    xyxy_norm: np.ndarray  # (N, 4) float32
    score: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32

    def __post_init__(self) -> None:
        n = len(self.score)
        if self.xyxy_norm.shape != (n, 4) or self.class_id.shape != (n,):
            raise ValueError(
                f"inconsistent detections: xyxy {self.xyxy_norm.shape}, score {self.score.shape}, "
                f"class_id {self.class_id.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.score)

    def filter(self, mask: np.ndarray) -> Detections:
        return Detections(self.xyxy_norm[mask], self.score[mask], self.class_id[mask])

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([d.xyxy_norm for d in parts]),
            np.concatenate([d.score for d in parts]),
            np.concatenate([d.class_id for d in parts]),
        )


@dataclass(frozen=True)
class Track:
    """A confirmed tracked object as seen in the current frame."""

    track_id: int
    class_id: int
    score: float
    xyxy_norm: tuple[float, float, float, float]
    hits: int
    age_frames: int

    @property
    def foot_norm(self) -> tuple[float, float]:
        """Bottom centre of the box: where a person stands or a vehicle touches the ground."""
        x1, _, x2, y2 = self.xyxy_norm
        return ((x1 + x2) / 2.0, y2)


class RuleKind(enum.StrEnum):
    INTRUSION = "intrusion"
    LINE_CROSSING = "line_crossing"
    LOITERING = "loitering"
    CROWD = "crowd"
    STATIONARY_VEHICLE = "stationary_vehicle"


class EventPhase(enum.StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


class CameraState(enum.StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"
    ENDED = "ended"  # a file source that reached its end (not looping)


@dataclass(frozen=True)
class CameraStatus:
    """What the agent reports about one camera (built on demand from its counters)."""

    camera: str
    state: CameraState
    fps_in: float
    fps_detected: float
    last_frame_ts: datetime | None
    frames_decoded: int
    frames_detected: int
    frames_skipped_static: int
    decode_errors: int
    open_errors: int
    reconnects: int
    last_error: str = ""


@dataclass(frozen=True)
class ClipRef:
    """An evidence clip written on the edge box."""

    path: str
    sha256: str
    size_bytes: int
    duration_s: float
    start_pts_s: float
    content_type: str
    event_offset_s: float = 0.0  # where the event it is attached to starts in the clip


@dataclass(frozen=True)
class Event:
    """An alert raised by a rule; converted to the wire schema only in publish.py.

    One situation keeps one ``event_id`` through its phases (start, update, end).
    """

    event_id: str
    station: str
    camera: str
    rule: str
    kind: RuleKind
    zone: str
    label: str
    score: float
    xyxy_norm: tuple[float, float, float, float]
    track_id: int
    pts_s: float
    ts: datetime
    zone_points_norm: tuple[tuple[float, float], ...] = field(default=())
    phase: EventPhase = EventPhase.START
    started_pts_s: float = 0.0
    line_norm: tuple[tuple[float, float], tuple[float, float]] | None = None
    count: int = 1  # objects involved (crowd size)
    direction: str = ""  # line crossing: "a_to_b" or "b_to_a"
    clip: ClipRef | None = None
