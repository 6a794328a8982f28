"""MQTT topic tree, version 1: ``xl/v1/{station}/{camera}/event``."""

from __future__ import annotations

import re

PREFIX = "xl/v1"
EVENT_SUBSCRIPTION = f"{PREFIX}/+/+/event"

# Station and camera ids become topic levels, so they may not hold MQTT wildcards or separators.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(f"{value!r} is not a valid id (letters, digits, '_', '.', '-'; at most 64)")
    return value


def event_topic(station: str, camera: str) -> str:
    return f"{PREFIX}/{check_id(station)}/{check_id(camera)}/event"


def parse_event_topic(topic: str) -> tuple[str, str] | None:
    """Return (station, camera) of an event topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[4] != "event":
        return None
    if not (_ID_RE.match(parts[2]) and _ID_RE.match(parts[3])):
        return None
    return parts[2], parts[3]
