"""Shared fixtures: a real Mosquitto broker on a free port, paths to the shared material."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from xltools.procs import Broker, free_port, start_mosquitto, wait_port

__all__ = ["Broker", "free_port", "start_mosquitto", "wait_port"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XL_SHARED_DIR", ROOT.parent / "shared"))
CLIPS = SHARED / "clips"
PHOTOS = SHARED / "photos"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield b
    b.stop()


@pytest.fixture
def mqtt_messages(broker: Broker) -> Iterator[tuple[queue.Queue, mqtt.Client]]:
    """A client subscribed to xl/#; received messages land in the queue (tested in the test thread)."""
    q: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, m: q.put((m.topic, m.payload))
    client.connect(broker.host, broker.port)
    client.subscribe("xl/#", qos=1)
    client.loop_start()
    yield q, client
    client.loop_stop()
    client.disconnect()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared material not found at {SHARED}; set XL_SHARED_DIR")
    return SHARED
