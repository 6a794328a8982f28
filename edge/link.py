"""The station's link to the centre: outbox-backed, acknowledged delivery over MQTT 5.

Threads:
- callers (evidence worker, command worker) hand items over through ``submit_*``: a bounded queue,
  never blocking (a full queue refuses and counts);
- the link thread owns the outbox: it commits what was handed over (one transaction per batch),
  publishes in outbox order up to ``window`` unacknowledged items, deletes what the centre acks,
  re-sends what stays unacknowledged (after reconnect, on a centre hello, or with backoff), and
  publishes the periodic stats;
- paho's network thread only turns callbacks into messages for the link thread.

paho pitfalls handled here: delivery is tracked with ``on_publish`` and, above all, with the
centre's application ack; a non-zero CONNACK reason code means *not* connected; subscriptions are
made in ``on_connect`` so they survive reconnects; paho's memory queue is capped.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import MqttConfig, OutboxConfig
from edge.meters import AlertLatency
from edge.outbox import Outbox, OutboxFull
from wire import AlertMessage, event_topic
from wire.link import (
    CameraHealth,
    CentralHello,
    Command,
    CommandReply,
    LinkAck,
    StationProblem,
    StationStats,
    StationStatus,
    decode,
)
from wire.topics import (
    CENTRAL_HELLO,
    ack_topic,
    command_subscription,
    media_topic,
    parse_topic,
    reply_topic,
    stats_topic,
    status_topic,
)

log = logging.getLogger(__name__)

RECONNECT_GRACE_S = 5.0  # after a reconnect, acks already queued for us get this long to arrive
HELLO_GRACE_S = 1.0
MAX_UNSENT_TRACKED = 4096  # new alerts awaiting their first publish whose latency is measured

StatsFn = Callable[[], tuple[list[CameraHealth], int, int]]  # cameras, queue depth, queue dropped


@dataclass
class _Flight:
    seq: int
    sent_at: float
    attempts: int
    resend_at: float
    chunk: bool = False


@dataclass
class LinkCounters:
    submitted: int = 0
    refused: int = 0  # intake queue full or outbox quota
    published: int = 0
    resent: int = 0
    acked: int = 0
    rejected_by_centre: int = 0
    bad_messages: dict[str, int] = field(default_factory=dict)


def outbox_path(cfg: OutboxConfig, station_id: str) -> Path:
    return Path(cfg.path) if cfg.path else Path("var/outbox") / f"{station_id}.sqlite"


def configure_tls(client: mqtt.Client, mcfg: MqttConfig) -> None:
    t = mcfg.tls
    if t is None:
        return
    client.tls_set(ca_certs=t.ca_file, certfile=t.cert_file, keyfile=t.key_file, cert_reqs=ssl.CERT_REQUIRED)
    if t.insecure:
        client.tls_insecure_set(True)


class StationLink:
    def __init__(
        self,
        mqtt_cfg: MqttConfig,
        outbox_cfg: OutboxConfig,
        station_id: str,
        cameras: list[str],
        stats_fn: StatsFn | None = None,
        on_command: Callable[[Command], None] | None = None,
        latency: AlertLatency | None = None,
    ) -> None:
        self.cfg = mqtt_cfg
        self.ocfg = outbox_cfg
        self.station = station_id
        self.cameras = cameras
        self.stats_fn = stats_fn
        self.on_command = on_command
        # Problems of the box (edge/check.py findings, retention alarms) sent with each stats message.
        self.problems_fn: Callable[[], list[StationProblem]] | None = None
        self.counters = LinkCounters()
        self.latency = latency or AlertLatency()
        # New alerts committed and not yet published: outbox item -> capture time ("sent" latency).
        self._unsent_starts: dict[str, float] = {}
        self.outbox = Outbox(outbox_path(outbox_cfg, station_id), int(outbox_cfg.quota_mb * 1024 * 1024))
        self._intake: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(outbox_cfg.intake_queue)
        self._control: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._flight: dict[str, _Flight] = {}
        # Highest outbox seq handed to MQTT since the start: alerts and replies, and media chunks.
        # Alerts overtake clips: an operator needs the alert now, its clip can follow.
        self._cursor = 0
        self._cursor_media = 0
        self._media_waiting: list[tuple[str, dict[str, Any]]] = []  # taken from the intake, not committed yet
        self._mids: dict[int, str] = {}
        self._logged: set[str] = set()
        self._started = time.monotonic()
        self._next_stats = 0.0
        self._figures = self.outbox.figures()
        self._thread = threading.Thread(target=self._run, name="xl-link", daemon=True)
        self.client = self._make_client()

    # -- public API (any thread) -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def submit_event(self, msg: AlertMessage) -> bool:
        return self._submit("event", {"msg": msg})

    def submit_media_file(
        self, path: str | Path, sha256: str, *, camera: str, kind: str, content_type: str,
        event_id: str | None = None, cmd_id: str | None = None, event_ids: list[str] | None = None,
    ) -> str | None:  # fmt: skip
        """Queue a file (e.g. a clip written by the evidence code) for delivery; returns its media id.

        The file is verified against ``sha256`` and hard-linked (or copied) into the outbox, so
        the caller may delete its own copy afterwards. ``event_ids``: further events a shared clip serves.
        """
        media_id = uuid.uuid4().hex
        ok = self._submit(
            "media",
            dict(media_id=media_id, path=Path(path), data=None, sha256=sha256, camera=camera, kind=kind,
                 content_type=content_type, event_id=event_id, cmd_id=cmd_id, event_ids=event_ids or []),
        )  # fmt: skip
        return media_id if ok else None

    def submit_media_bytes(
        self, data: bytes, sha256: str, *, camera: str, kind: str, content_type: str,
        event_id: str | None = None, cmd_id: str | None = None,
    ) -> str | None:  # fmt: skip
        media_id = uuid.uuid4().hex
        ok = self._submit(
            "media",
            dict(media_id=media_id, path=None, data=data, sha256=sha256, camera=camera, kind=kind,
                 content_type=content_type, event_id=event_id, cmd_id=cmd_id),
        )  # fmt: skip
        return media_id if ok else None

    def submit_reply(self, reply: CommandReply) -> bool:
        return self._submit("reply", {"msg": reply})

    def figures(self) -> Any:
        """Outbox figures as of the link thread's last pass (safe from any thread)."""
        return self._figures

    def start(self) -> None:
        self._thread.start()
        self.client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s, properties=self._connect_props()
        )
        self.client.loop_start()

    def stop(self, flush_timeout_s: float | None = None) -> None:
        """Commit what was handed over; wait (while connected) up to ``flush_timeout_s`` for the
        centre to acknowledge everything; mark the station offline; disconnect."""
        timeout = self.ocfg.flush_timeout_s if flush_timeout_s is None else flush_timeout_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            not self._intake.empty() or self._media_waiting or self._figures.items > 0
        ):
            if not self._connected.is_set() and self._intake.empty():
                break
            time.sleep(0.05)
        self._stopping.set()
        self._wake.set()
        self._thread.join(30)
        if self._connected.is_set():
            info = self.client.publish(
                status_topic(self.station), self._status("offline"), qos=1, retain=True
            )
            end = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < end and self._connected.is_set():
                time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()

    # -- intake ----------------------------------------------------------------------------------

    def _submit(self, kind: str, args: dict[str, Any]) -> bool:
        try:
            self._intake.put_nowait((kind, args))
        except queue.Full:
            self.counters.refused += 1
            self._log_once("intake_full", "link: intake queue full; items refused (counted)")
            return False
        self.counters.submitted += 1
        self._wake.set()
        return True

    def _commit_intake(self) -> None:
        """Commit the alerts and replies handed over, in one transaction; media items wait in
        ``_media_waiting`` for ``_commit_media`` (verifying and linking a clip takes a while)."""
        batch = []
        while len(batch) < 200:
            try:
                kind, a = self._intake.get_nowait()
            except queue.Empty:
                break
            (self._media_waiting if kind == "media" else batch).append((kind, a))
        if batch:
            self._commit(batch)

    def _commit_media(self) -> None:
        if self._media_waiting:
            batch, self._media_waiting = self._media_waiting, []
            self._commit(batch)

    def _commit(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        starts: list[tuple[str, float]] = []
        with self.outbox.tx():
            for kind, a in batch:
                try:
                    if kind == "event":
                        msg: AlertMessage = a["msg"]
                        item_id = self.outbox.add_event(
                            event_topic(msg.station, msg.camera), msg.to_json(), msg.event_id, msg.camera
                        )
                        if msg.phase == "start":
                            starts.append((item_id, msg.ts.timestamp()))
                    elif kind == "reply":
                        self.outbox.add_reply(reply_topic(self.station), a["msg"].to_json())
                    else:
                        self.outbox.add_media(
                            topic=media_topic(self.station, a["camera"]), station=self.station, **a
                        )
                except (OutboxFull, ValueError, OSError) as exc:
                    self.counters.refused += 1
                    log.error("link: %s item not queued: %s", kind, exc)
        now = time.time()
        for item_id, captured in starts:
            self.latency.observe("committed", captured, now)
            if len(self._unsent_starts) >= MAX_UNSENT_TRACKED:  # a long outage: forget the oldest
                self._unsent_starts.pop(next(iter(self._unsent_starts)))
            self._unsent_starts[item_id] = captured
        self._figures = self.outbox.figures()  # before stop() can see an empty intake

    # -- MQTT client -------------------------------------------------------------------------------

    def _connect_props(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        # The broker keeps our session (acks, commands for us) this long while we are away.
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        return props

    def _status(self, state: str) -> bytes:
        return StationStatus(
            station=self.station, state=state, ts=datetime.now(UTC), cameras=self.cameras
        ).to_json()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id or f"xl-edge-{self.station}",
            protocol=mqtt.MQTTv5,
        )
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        configure_tls(client, self.cfg)
        client.will_set(status_topic(self.station), self._status("offline"), qos=1, retain=True)
        # paho's memory queue only ever holds the window (plus resends and status); cap it anyway.
        client.max_queued_messages_set(max(self.cfg.max_queued_messages, 4 * self.ocfg.window + 16))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            # A non-zero reason code means NOT connected (bad credentials, not authorised...).
            self._log_once(
                f"refused:{reason_code}", "link: broker %s:%s refused the connection: %s",
                self.cfg.host, self.cfg.port, reason_code, level=logging.ERROR,
            )  # fmt: skip
            return
        self._logged.discard("disconnected")
        log.info("link: connected to MQTT broker %s:%s", self.cfg.host, self.cfg.port)
        client.subscribe(
            [(ack_topic(self.station), 1), (command_subscription(self.station), 1), (CENTRAL_HELLO, 1)]
        )
        client.publish(status_topic(self.station), self._status("online"), qos=1, retain=True)
        self._connected.set()
        self._control.put(("connected", None))
        self._wake.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning("link: disconnected from MQTT broker: %s", reason_code)
        self._connected.clear()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._control.put(("puback", mid))

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        route = parse_topic(m.topic)
        payload = bytes(m.payload)
        try:
            if route is None:
                raise ValueError("not a v1 topic")
            if route.kind == "ack" and route.station == self.station:
                self._control.put(("ack", decode(LinkAck, payload)))
            elif route.kind == "hello":
                decode(CentralHello, payload)
                self._control.put(("hello", None))
            elif route.kind == "cmd" and route.station == self.station:
                cmd = decode(Command, payload)
                if cmd.station != self.station or cmd.kind != route.sub:
                    raise ValueError("command names another station or kind than its topic")
                if self.on_command is not None:
                    self.on_command(cmd)
            else:
                raise ValueError(f"unexpected topic {m.topic}")
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            reason = route.kind if route is not None else "topic"
            bad = self.counters.bad_messages
            bad[reason] = bad.get(reason, 0) + 1
            self._log_once(
                f"bad:{reason}", "link: rejected a message on %r: %s; further ones are only counted",
                m.topic, str(exc).splitlines()[0][:200],
            )  # fmt: skip
        self._wake.set()

    # -- the link thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(0.25)
            self._wake.clear()
            try:
                # Alerts first at every step: committed (one fsync) and published before media
                # files are verified and before clip chunks go out, so that a clip never holds an
                # alert back (measured: up to 350 ms at 56 cameras when they shared a pass).
                self._commit_intake()
                self._handle_control()
                if self._stopping.is_set():
                    self._commit_media()
                    if self._intake.empty():
                        return
                    continue
                if self._connected.is_set():
                    self._resend_due()
                    self._send_alerts()
                self._commit_media()
                if self._connected.is_set():
                    self._send_chunks()
                    self._maybe_stats()
                self._figures = self.outbox.figures()
            except Exception:
                log.exception("link: unexpected error (continuing)")
                time.sleep(1.0)

    def _handle_control(self) -> None:
        acked: list[str] = []
        rejected: list[str] = []
        while True:
            try:
                kind, arg = self._control.get_nowait()
            except queue.Empty:
                break
            if kind == "ack":
                acked += arg.ids
                rejected += arg.rejected
            elif kind == "puback":
                self._mids.pop(arg, None)
            elif kind in ("connected", "hello"):
                grace = RECONNECT_GRACE_S if kind == "connected" else HELLO_GRACE_S
                due = time.monotonic() + grace
                for f in self._flight.values():
                    f.resend_at = min(f.resend_at, due)
                if kind == "connected":
                    self._mids.clear()
        if acked:
            n = self.outbox.ack(acked)
            self.counters.acked += n
        if rejected:
            n = self.outbox.reject(rejected)
            self.counters.rejected_by_centre += n
            if n:
                log.error("link: the centre refused %d item(s); kept as dead letters", n)
        for item_id in acked + rejected:
            self._flight.pop(item_id, None)

    def _publish(self, item: Any) -> bool:
        payload = item.payload if item.kind != "chunk" else self.outbox.chunk_payload(item)
        if payload is None:
            log.error("link: media file of %s is gone; dropping the item", item.item_id)
            self.outbox.reject([item.item_id])
            return True
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = item.item_id.encode("ascii")
        info = self.client.publish(item.topic, payload, qos=1, properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return False
        self._mids[info.mid] = item.item_id
        return True

    def _resend_due(self) -> None:
        now = time.monotonic()
        due = [i for i, f in self._flight.items() if f.resend_at <= now]
        if not due:
            return
        for item in self.outbox.get(due):  # in outbox order
            if not self._connected.is_set() or not self._publish(item):
                return
            f = self._flight[item.item_id]
            f.attempts += 1
            f.sent_at = now
            f.resend_at = now + self._backoff(f.attempts)
            self.counters.resent += 1
        # Ids no longer in the outbox (dropped by quota) stop being tracked.
        for item_id in set(due) - {i.item_id for i in self.outbox.get(due)}:
            self._flight.pop(item_id, None)

    def _send_alerts(self) -> None:
        room = self.ocfg.window - len(self._flight)
        if room <= 0:
            return
        now = time.monotonic()
        for item in self.outbox.items_after(self._cursor, room, chunks=False):
            if not self._send_first(item, now, chunk=False):
                return
            self._cursor = item.seq

    def _send_chunks(self) -> None:
        # Chunks fill at most a quarter of the window, so that a clip in transfer never puts more
        # than a few chunks ahead of the next alert at the centre.
        chunks_in_flight = sum(1 for f in self._flight.values() if f.chunk)
        room = min(self.ocfg.window - len(self._flight), max(1, self.ocfg.window // 4) - chunks_in_flight)
        if room <= 0:
            return
        now = time.monotonic()
        for k, item in enumerate(self.outbox.items_after(self._cursor_media, room, chunks=True)):
            if k and not self._intake.empty():
                return  # something was handed over (an alert, maybe): it goes first; one chunk a pass at least
            if not self._send_first(item, now, chunk=True):
                return
            self._cursor_media = item.seq

    def _send_first(self, item: Any, now: float, chunk: bool) -> bool:
        """First publish of an outbox item, tracked in flight until acknowledged; False: not sent."""
        if not self._connected.is_set() or not self._publish(item):
            return False
        self._flight[item.item_id] = _Flight(item.seq, now, 1, now + self._backoff(1), chunk=chunk)
        self.counters.published += 1
        captured = self._unsent_starts.pop(item.item_id, None) if not chunk else None
        if captured is not None:
            self.latency.observe("sent", captured)
        return True

    def _backoff(self, attempts: int) -> float:
        return min(self.ocfg.resend_max_s, self.ocfg.ack_timeout_s * 2 ** min(attempts - 1, 8))

    def _maybe_stats(self) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + self.cfg.stats_interval_s
        cameras, depth, dropped = self.stats_fn() if self.stats_fn is not None else ([], 0, 0)
        msg = StationStats(
            station=self.station,
            ts=datetime.now(UTC),
            interval_s=self.cfg.stats_interval_s,
            uptime_s=round(now - self._started, 3),
            queue_depth=depth,
            queue_dropped=dropped + self.counters.refused,
            outbox=self.outbox.figures(),
            cameras=cameras,
            problems=self.problems_fn() if self.problems_fn is not None else [],
        )
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = max(1, int(2 * self.cfg.stats_interval_s))  # stale stats are worthless
        self.client.publish(stats_topic(self.station), msg.to_json(), qos=0, properties=props)

    def _log_once(self, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg, *args)
