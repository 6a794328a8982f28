"""MQTT topic tree, version 1. Every topic string of the system is built or parsed here.

Station -> centre (a station may write only under ``xl/v1/{its id}/``)::

    xl/v1/{station}/{camera}/event   AlertMessage        QoS 1, via the outbox, acked
    xl/v1/{station}/{camera}/media   MediaChunk          QoS 1, via the outbox, acked per chunk
    xl/v1/{station}/reply            CommandReply        QoS 1, via the outbox, acked
    xl/v1/{station}/status           StationStatus       QoS 1, retained; Last Will = offline
    xl/v1/{station}/stats            StationStats        QoS 0, message expiry (stale figures are worthless)

Centre -> station (a station may read only these of its own)::

    xl/v1/{station}/ack              LinkAck             QoS 1
    xl/v1/{station}/cmd/{kind}       Command             QoS 1 (kind: snapshot, clip)
    xl/v1/_central/hello             CentralHello        QoS 1 (every station reads it: "resend now")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "xl/v1"
EVENT_SUBSCRIPTION = f"{PREFIX}/+/+/event"
MEDIA_SUBSCRIPTION = f"{PREFIX}/+/+/media"
REPLY_SUBSCRIPTION = f"{PREFIX}/+/reply"
STATUS_SUBSCRIPTION = f"{PREFIX}/+/status"
STATS_SUBSCRIPTION = f"{PREFIX}/+/stats"
CENTRAL_HELLO = f"{PREFIX}/_central/hello"
COMMAND_KINDS = ("snapshot", "clip")

# Station and camera ids become topic levels, so they may not hold MQTT wildcards or separators.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(f"{value!r} is not a valid id (letters, digits, '_', '.', '-'; at most 64)")
    return value


def event_topic(station: str, camera: str) -> str:
    return f"{PREFIX}/{check_id(station)}/{check_id(camera)}/event"


def media_topic(station: str, camera: str) -> str:
    return f"{PREFIX}/{check_id(station)}/{check_id(camera)}/media"


def status_topic(station: str) -> str:
    return f"{PREFIX}/{check_id(station)}/status"


def stats_topic(station: str) -> str:
    return f"{PREFIX}/{check_id(station)}/stats"


def reply_topic(station: str) -> str:
    return f"{PREFIX}/{check_id(station)}/reply"


def ack_topic(station: str) -> str:
    return f"{PREFIX}/{check_id(station)}/ack"


def command_topic(station: str, kind: str) -> str:
    if kind not in COMMAND_KINDS:
        raise ValueError(f"unknown command kind {kind!r}; known: {COMMAND_KINDS}")
    return f"{PREFIX}/{check_id(station)}/cmd/{kind}"


def command_subscription(station: str) -> str:
    return f"{PREFIX}/{check_id(station)}/cmd/+"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: each message goes to one member of ``group``."""
    return f"$share/{check_id(group)}/{topic_filter}"


@dataclass(frozen=True)
class Route:
    """What a topic is: ``kind`` is event, media, reply, status, stats, ack, cmd or hello."""

    kind: str
    station: str = ""
    camera: str = ""
    sub: str = ""  # the command kind of a cmd topic


def parse_topic(topic: str) -> Route | None:
    """Classify a v1 topic; None when it is not one of ours (or an id is not valid)."""
    parts = topic.split("/")
    if len(parts) < 3 or f"{parts[0]}/{parts[1]}" != PREFIX:
        return None
    if topic == CENTRAL_HELLO:
        return Route("hello")
    station = parts[2]
    if not _ID_RE.match(station):
        return None
    if len(parts) == 4 and parts[3] in ("status", "stats", "reply", "ack"):
        return Route(parts[3], station)
    if len(parts) == 5 and parts[3] == "cmd" and parts[4] in COMMAND_KINDS:
        return Route("cmd", station, sub=parts[4])
    if len(parts) == 5 and parts[4] in ("event", "media") and _ID_RE.match(parts[3]):
        return Route(parts[4], station, parts[3])
    return None


def parse_event_topic(topic: str) -> tuple[str, str] | None:
    """Return (station, camera) of an event topic, or None when the topic is not one."""
    r = parse_topic(topic)
    return (r.station, r.camera) if r is not None and r.kind == "event" else None
