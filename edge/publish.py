"""Conversion of events to the wire schema, and the MQTT publisher."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge.config import MqttConfig
from edge.evidence import Snapshot
from edge.types import Event
from wire import AlertMessage, Box, MediaBlob, event_topic
from wire.messages import ClipInfo

log = logging.getLogger(__name__)


def to_message(event: Event, snap: Snapshot) -> AlertMessage:
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in event.xyxy_norm)
    return AlertMessage(
        event_id=event.event_id,
        station=event.station,
        camera=event.camera,
        rule=event.rule,
        rule_kind=event.kind.value,
        zone=event.zone,
        label=event.label,
        score=round(min(1.0, max(0.0, event.score)), 4),
        box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
        track_id=event.track_id,
        pts_s=round(event.pts_s, 3),
        ts=event.ts,
        snapshot=MediaBlob.from_bytes(snap.jpeg, snap.width_px, snap.height_px),
        phase=event.phase.value,
        started_pts_s=round(max(0.0, event.started_pts_s), 3),
        clip=None
        if event.clip is None
        else ClipInfo(
            content_type=event.clip.content_type,
            path=event.clip.path,
            sha256=event.clip.sha256,
            size_bytes=event.clip.size_bytes,
            duration_s=event.clip.duration_s,
            start_pts_s=event.clip.start_pts_s,
        ),
        direction=event.direction or None,
        count=event.count,
    )


@dataclass
class PublishStats:
    queued: int = 0
    acked: int = 0
    refused: int = 0


class MqttPublisher:
    """QoS 1 publisher; never blocks the caller on the network (paho's own thread does the I/O)."""

    def __init__(self, cfg: MqttConfig, station_id: str) -> None:
        self.cfg = cfg
        self.stats = PublishStats()
        self.connected = threading.Event()
        client_id = cfg.client_id or f"xl-edge-{station_id}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password)
        self.client.max_queued_messages_set(cfg.max_queued_messages)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        # Give in-flight QoS 1 messages a moment to be acknowledged before disconnecting.
        waited = 0.0
        while self.stats.acked < self.stats.queued and waited < flush_timeout_s and self.connected.is_set():
            threading.Event().wait(0.05)
            waited += 0.05
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, msg: AlertMessage) -> None:
        info = self.client.publish(event_topic(msg.station, msg.camera), msg.to_json(), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.stats.refused += 1
        else:
            # Queued in paho (sent now or on reconnect); delivery is tracked in on_publish.
            self.stats.queued += 1

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            # A non-zero reason code means NOT connected (bad credentials, refused...).
            log.error(
                "MQTT broker %s:%s refused the connection: %s", self.cfg.host, self.cfg.port, reason_code
            )
            return
        log.info("connected to MQTT broker %s:%s", self.cfg.host, self.cfg.port)
        self.connected.set()

    def _on_disconnect(self, _c, _u, _flags, reason_code, _props) -> None:
        if self.connected.is_set():
            log.warning("disconnected from MQTT broker: %s", reason_code)
        self.connected.clear()

    def _on_publish(self, _c, _u, _mid, _rc, _props) -> None:
        self.stats.acked += 1
