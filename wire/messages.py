"""Pydantic models of every MQTT payload. JSON on the wire, UTF-8."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the centre drops anything larger before parsing it
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Norm = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Box(_Strict):
    """Bounding box in normalised image coordinates (0..1), x1 < x2, y1 < y2."""

    x1: Norm
    y1: Norm
    x2: Norm
    y2: Norm

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners are not ordered (x1 <= x2, y1 <= y2)")
        return self


class MediaBlob(_Strict):
    """A small media item carried inline (base64), with its checksum."""

    content_type: Literal["image/jpeg"]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    width_px: int = Field(gt=0)
    height_px: int = Field(gt=0)
    data_b64: str = Field(max_length=MAX_SNAPSHOT_BYTES * 4 // 3 + 4)

    @classmethod
    def from_bytes(cls, data: bytes, width_px: int, height_px: int) -> MediaBlob:
        return cls(
            content_type="image/jpeg",
            sha256=hashlib.sha256(data).hexdigest(),
            width_px=width_px,
            height_px=height_px,
            data_b64=base64.b64encode(data).decode("ascii"),
        )

    def payload(self) -> bytes:
        """Decoded bytes, checked against ``sha256``; raises ValueError when they differ."""
        try:
            data = base64.b64decode(self.data_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"media is not valid base64: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError("media sha256 does not match its content")
        return data


class ClipInfo(_Strict):
    """An evidence clip kept on the station's edge box (fetched on demand; not carried inline)."""

    content_type: Literal["video/mp4", "video/x-matroska"]
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size_bytes: int = Field(ge=0)
    duration_s: float = Field(ge=0.0)
    start_pts_s: float = Field(description="media time of the clip's first frame")
    event_offset_s: float = Field(
        0.0, ge=0.0, description="where this alert's event starts in the clip, in seconds from its start "
        "(a clip shared by overlapping events starts before most of them): a player seeks here",
    )  # fmt: skip


class AlertMessage(_Strict):
    """One alert raised by a rule at a station (topic ``xl/v1/{station}/{camera}/event``)."""

    v: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    station: Id
    camera: Id
    rule: Id
    rule_kind: Literal["intrusion", "line_crossing", "loitering", "crowd", "stationary_vehicle"]
    zone: Id
    label: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    box: Box
    track_id: int = Field(ge=0)
    pts_s: float = Field(ge=0.0, description="media time of the frame, seconds from stream start")
    ts: datetime = Field(description="wall-clock UTC when the frame was captured")
    snapshot: MediaBlob | None = Field(
        None, description="required on start; a later phase carries one only when it brings a new frame "
        "(an update's better one): the centre keeps the last it stored, and an end resending it was a third "
        "of an alert's bytes",
    )  # fmt: skip
    # Optional (v1-compatible) lifecycle fields: one event_id goes start -> update* -> end.
    phase: Literal["start", "update", "end"] = "start"
    started_pts_s: float | None = Field(None, ge=0.0, description="media time when the event started")
    clip: ClipInfo | None = Field(None, description="evidence clip; normally on the end message")
    direction: Literal["a_to_b", "b_to_a"] | None = Field(None, description="line crossing direction")
    count: int | None = Field(None, ge=0, description="objects involved (crowd size)")

    @model_validator(mode="after")
    def _start_has_snapshot(self) -> AlertMessage:
        if self.phase == "start" and self.snapshot is None:
            raise ValueError("a start message must carry its snapshot")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def decode_alert(payload: bytes) -> AlertMessage:
    """Parse and validate an alert payload; raises ValueError (pydantic.ValidationError) when bad."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    msg = AlertMessage.model_validate_json(payload)
    if msg.ts.tzinfo is None:
        raise ValueError("ts must carry a timezone (UTC)")
    return msg
