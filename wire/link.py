"""Pydantic models of the link payloads beside the alert: media, status, stats, acks, commands.

JSON on the wire, UTF-8, unknown fields refused (``extra="forbid"``), every model versioned by ``v``.
Items that travel through the station's outbox (alerts, media chunks, replies) carry the outbox item
id in the MQTT 5 ``CorrelationData`` property; the centre echoes it in ``LinkAck.ids`` after its
database commit, and only then does the station delete the item.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from wire.messages import MAX_MESSAGE_BYTES

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# Outbox item ids (CorrelationData): 1..80 chars of [A-Za-z0-9_.:-].
ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Text = Annotated[str, StringConstraints(max_length=500)]

MEDIA_CHUNK_BYTES = 256 * 1024  # raw bytes per media chunk (base64 makes ~350 KB messages)
MAX_MEDIA_BYTES = 1024 * 1024 * 1024  # one clip or snapshot, whole
MAX_ACK_IDS = 1000
MAX_SHARED_EVENTS = 64  # events one shared clip may serve (edge: media.share_max_events)
MEDIA_TYPES = ("image/jpeg", "video/mp4", "video/x-matroska")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class MediaChunk(_Strict):
    """One chunk of a media file (snapshot or clip), topic ``xl/v1/{station}/{camera}/media``.

    Chunks of one file share ``media_id``, ``sha256`` (of the whole file), ``size_bytes`` and
    ``chunk_bytes``; chunk ``index`` holds bytes ``[index * chunk_bytes, ...)``. The centre stores
    each chunk on its own, so a transfer resumes where it stopped, and verifies the whole file's
    sha256 when the last one arrives.
    """

    v: Literal[1] = 1
    media_id: Hex32
    station: Id
    camera: Id
    kind: Literal["snapshot", "clip"]
    content_type: Literal["image/jpeg", "video/mp4", "video/x-matroska"]
    event_id: Hex32 | None = None  # the alert it is evidence of
    # Further alerts of the same camera that share this clip: overlapping events get one clip that
    # covers them all, sent once (edge/clips.py), instead of near-identical copies.
    event_ids: list[Hex32] = Field(default_factory=list, max_length=MAX_SHARED_EVENTS)
    cmd_id: Hex32 | None = None  # the command it answers
    sha256: Sha256
    size_bytes: int = Field(gt=0, le=MAX_MEDIA_BYTES)
    chunk_bytes: int = Field(gt=0, le=MEDIA_CHUNK_BYTES)
    index: int = Field(ge=0)
    count: int = Field(gt=0)
    data_b64: str = Field(max_length=MEDIA_CHUNK_BYTES * 4 // 3 + 4)

    @model_validator(mode="after")
    def _consistent(self) -> MediaChunk:
        if self.count != math.ceil(self.size_bytes / self.chunk_bytes):
            raise ValueError("count disagrees with size_bytes / chunk_bytes")
        if self.index >= self.count:
            raise ValueError("index must be < count")
        return self

    def expected_len(self) -> int:
        return min(self.chunk_bytes, self.size_bytes - self.index * self.chunk_bytes)

    def data(self) -> bytes:
        """The chunk's bytes; ValueError when not base64 or not of the expected length."""
        try:
            raw = base64.b64decode(self.data_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"chunk is not valid base64: {exc}") from exc
        if len(raw) != self.expected_len():
            raise ValueError(f"chunk {self.index} has {len(raw)} bytes, expected {self.expected_len()}")
        return raw


class CameraHealth(_Strict):
    camera: Id
    state: Annotated[str, StringConstraints(max_length=32)] = "unknown"
    fps_in: float = Field(0.0, ge=0.0)
    fps_detected: float = Field(0.0, ge=0.0)
    last_frame_ts: datetime | None = None
    frames_decoded: int = Field(0, ge=0)
    decode_errors: int = Field(0, ge=0)
    reconnects: int = Field(0, ge=0)
    last_error: Text = ""


class OutboxFigures(_Strict):
    items: int = Field(ge=0, description="items not yet acknowledged by the centre")
    events: int = Field(ge=0)
    media_chunks: int = Field(ge=0)
    bytes: int = Field(ge=0)
    quota_bytes: int = Field(ge=0)
    oldest_age_s: float = Field(ge=0.0)
    dropped_events: int = Field(ge=0)
    dropped_media: int = Field(ge=0)
    dead_letters: int = Field(0, ge=0, description="items the centre refused; kept out of the queue")


class StationProblem(_Strict):
    """Something on the station box that needs a person: the same findings as ``xl-edge check``
    (model, disk, clock, config), plus the low-disk / retention alarms. Sent in every stats message
    while it lasts; the centre raises a health alert per ``check`` and clears it when it is gone."""

    check: Literal["config", "camera", "model", "broker", "disk", "disk_low", "media_quota", "clock", "metrics"]
    subject: Annotated[str, StringConstraints(max_length=200)] = ""
    detail: Text = ""


class StationStats(_Strict):
    """Periodic health, topic ``xl/v1/{station}/stats`` (QoS 0, message expiry 2 x interval)."""

    v: Literal[1] = 1
    station: Id
    ts: datetime
    interval_s: float = Field(gt=0)
    uptime_s: float = Field(ge=0.0)
    queue_depth: int = Field(0, ge=0, description="events waiting for evidence rendering")
    queue_dropped: int = Field(0, ge=0)
    outbox: OutboxFigures
    cameras: list[CameraHealth] = Field(default_factory=list, max_length=256)
    problems: list[StationProblem] = Field(default_factory=list, max_length=64)


class StationStatus(_Strict):
    """Retained on ``xl/v1/{station}/status``; the Last Will publishes ``state="offline"``."""

    v: Literal[1] = 1
    station: Id
    state: Literal["online", "offline"]
    ts: datetime
    cameras: list[Id] = Field(default_factory=list, max_length=256)
    version: Annotated[str, StringConstraints(max_length=32)] = ""


class LinkAck(_Strict):
    """Centre -> station on ``xl/v1/{station}/ack``: these outbox items are committed (``ids``) or
    refused for good (``rejected``: the station moves them to its dead letters and stops sending)."""

    v: Literal[1] = 1
    ids: list[ItemId] = Field(default_factory=list, max_length=MAX_ACK_IDS)
    rejected: list[ItemId] = Field(default_factory=list, max_length=MAX_ACK_IDS)


class Command(_Strict):
    """Centre -> station on ``xl/v1/{station}/cmd/{kind}``: a live snapshot, or a clip of the last
    ``seconds``. The answer is a ``CommandReply`` (and a ``MediaChunk`` series with ``cmd_id``)."""

    v: Literal[1] = 1
    cmd_id: Hex32
    station: Id
    camera: Id
    kind: Literal["snapshot", "clip"]
    seconds: float = Field(10.0, gt=0.0, le=300.0, description="clip length (clip only)")
    ts: datetime


class CommandReply(_Strict):
    """Station -> centre on ``xl/v1/{station}/reply``, through the outbox."""

    v: Literal[1] = 1
    cmd_id: Hex32
    station: Id
    camera: Id
    ok: bool
    error: Text = ""
    media_id: Hex32 | None = None
    ts: datetime


class CentralHello(_Strict):
    """A central instance (re)connected: stations resend what is not yet acknowledged."""

    v: Literal[1] = 1
    instance: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ts: datetime


def decode(model: type[_Strict], payload: bytes) -> _Strict:
    """Size-check then validate; raises ValueError (pydantic.ValidationError is one)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    msg = model.model_validate_json(payload)
    for name in ("ts", "last_frame_ts"):
        value = getattr(msg, name, None)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"{name} must carry a timezone (UTC)")
    return msg
