"""The wire contract between station agents and the centre: MQTT topics and message schemas.

Both sides import this package; nothing else defines a topic string or a payload shape.
"""

from wire.link import (
    CameraHealth,
    CentralHello,
    Command,
    CommandReply,
    LinkAck,
    MediaChunk,
    OutboxFigures,
    StationStats,
    StationStatus,
)
from wire.messages import SCHEMA_VERSION, AlertMessage, Box, MediaBlob, decode_alert
from wire.topics import EVENT_SUBSCRIPTION, Route, event_topic, parse_event_topic, parse_topic

__all__ = [
    "SCHEMA_VERSION",
    "AlertMessage",
    "Box",
    "MediaBlob",
    "decode_alert",
    "CameraHealth",
    "CentralHello",
    "Command",
    "CommandReply",
    "LinkAck",
    "MediaChunk",
    "OutboxFigures",
    "StationStats",
    "StationStatus",
    "EVENT_SUBSCRIPTION",
    "Route",
    "parse_topic",
    "event_topic",
    "parse_event_topic",
]
