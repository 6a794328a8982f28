"""MQTT consumer of everything stations send: alerts, media chunks, command replies, status, stats.

paho's network thread only size-checks and enqueues; a worker thread validates, stores and
announces each message, so slow database work never stalls the MQTT keep-alive. Media chunks come
in on a second connection with its own queue and worker (the "media lane"): storing a chunk means
file writes and fsyncs, and alerts must never wait behind a station's clip upload - the same rule
as on the station, where alerts overtake queued chunks. Each lane acknowledges in the order it
received. A bad message is counted, logged once per reason and dropped; it never stops the consumer.

Delivery (docs/mqtt.md): items from a station's outbox carry their item id in the MQTT 5
``CorrelationData``. After the database commit the worker publishes the id on
``xl/v1/{station}/ack`` (the station then deletes the item) and only then sends the broker's PUBACK
(``manual_ack=True``). A redelivered alert is a no-op that is acknowledged again.

Several instances share one feed with ``mqtt_shared_group``: alerts, media and replies are taken
through ``$share/<group>/...`` (each message to one instance; session expiry 0, so a stopped
instance's share is not parked in its session), status and stats through plain subscriptions
(every instance keeps the fleet view).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.alerts.models import Alert
from central.alerts.schemas import AlertOut
from central.alerts.service import SnapshotError, store_alert
from central.fleet import service as fleet
from central.media import service as media
from central.metrics import LagHistogram
from central.outage import DatabaseOutage, is_outage
from central.settings import CentralSettings
from wire import decode_alert
from wire.link import (
    CentralHello,
    Command,
    CommandReply,
    LinkAck,
    MediaChunk,
    StationStats,
    StationStatus,
    decode,
)
from wire.messages import MAX_MESSAGE_BYTES
from wire.topics import (
    CENTRAL_HELLO,
    EVENT_SUBSCRIPTION,
    MEDIA_SUBSCRIPTION,
    REPLY_SUBSCRIPTION,
    STATS_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    ack_topic,
    command_topic,
    parse_topic,
    shared,
)

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
QUEUE_PUT_TIMEOUT_S = 5.0
ACK_BATCH = 200
_STOP = None  # queue sentinel


def _summarise(exc: ValidationError) -> str:
    # Never log the whole error: its input echo may hold megabytes of base64.
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    return f"{len(errors)} error(s), first at {loc}: {first['msg']}"


def _classify(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return "malformed_json"
    if any(e["loc"][:1] == ("v",) for e in errors):
        return "unsupported_version"
    return "invalid_schema"


class _Rejected(Exception):
    def __init__(
        self, reason: str, detail: str, permanent: bool = True, exc_info: bool = False, quiet: bool = False
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.permanent, self.exc_info = reason, detail, permanent, exc_info
        self.quiet = quiet  # counted only: logged elsewhere (a database outage: central/outage.py)


def configure_tls(client: mqtt.Client, s: CentralSettings) -> None:
    if not s.mqtt_tls:
        return
    client.tls_set(ca_certs=s.mqtt_tls_ca_file, certfile=s.mqtt_tls_cert_file, keyfile=s.mqtt_tls_key_file)
    if s.mqtt_tls_insecure:
        client.tls_insecure_set(True)


Item = tuple[str, bytes, int, int, str | None]  # topic, payload, mid, qos, correlation id


class _Lane:
    """One broker connection with its own queue and worker: ``main`` (alerts, replies, fleet) or
    ``media`` (chunks). Acks of a lane go out in the order its messages came in."""

    def __init__(self, name: str, ingest: AlertIngest, queue_size: int) -> None:
        self.name = name
        self.queue: queue.Queue[Item | None] = queue.Queue(queue_size)
        self.pending_acks: dict[str, tuple[list[str], list[str]]] = {}
        self.subscribed = threading.Event()
        self.link_state = ""  # last logged connection state, so retries do not flood the log
        self.client = ingest._make_client(self)
        self.worker = threading.Thread(target=ingest._run, args=(self,), name=f"xl-central-{name}", daemon=True)


class AlertIngest:
    """Consumes every station's link topics and stores what arrives.

    Args:
        settings: broker address, credentials, TLS, client id, shared group and queue size.
        session_factory: where everything is stored.
        on_stored: called in the worker thread with each newly stored alert (not redeliveries),
            the ingest's session and the committed row; must be quick and thread-safe, and must not
            raise (the alert is stored and will be acknowledged).
        on_health: called in the worker thread with each newly raised health alert (a dict).
        on_clip: called in the media worker thread each time a clip is complete (quick, no raise).
    """

    def __init__(
        self,
        settings: CentralSettings,
        session_factory: sessionmaker[Session],
        on_stored: Callable[[AlertOut, Session, Alert], None] | None = None,
        on_health: Callable[[dict[str, Any]], None] | None = None,
        on_clip: Callable[[], None] | None = None,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self._settings = settings
        self._outage = outage or DatabaseOutage()
        self._session_factory = session_factory
        self._on_stored = on_stored
        self._on_health = on_health
        self._on_clip = on_clip
        self._lock = threading.Lock()
        self._received = 0
        self._fleet_msgs = 0
        self._stored = 0
        self._duplicates = 0
        self._media_chunks = 0
        self._media_complete = 0
        self._replies = 0
        self._acks_sent = 0
        self._rejected: Counter[str] = Counter()
        self._logged_reasons: set[str] = set()
        self.lag = LagHistogram()  # capture at the station -> stored here, per new alert (/metrics)
        self._next_sweep = 0.0
        self._next_retention = time.monotonic() + 60.0
        self._main = _Lane("ingest", self, settings.ingest_queue_size)
        self._media = _Lane("media", self, settings.ingest_queue_size)
        self._lanes = (self._main, self._media)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def _shared(self) -> bool:
        return bool(self._settings.mqtt_shared_group)

    def start(self) -> None:
        for lane in self._lanes:
            lane.worker.start()
            props = Properties(PacketTypes.CONNECT)
            # Shared members keep no session (FIELD-NOTES: a parked member's session swallows its
            # share); a lone instance keeps one so the broker holds its alerts while it is down.
            props.SessionExpiryInterval = 0 if self._shared else self._settings.mqtt_session_expiry_s
            # connect_async + loop_start: the loop thread connects, and keeps retrying (with
            # backoff) when the broker is down at start or the link drops later.
            lane.client.connect_async(
                self._settings.mqtt_host,
                self._settings.mqtt_port,
                KEEPALIVE_S,
                clean_start=self._shared,
                properties=props,
            )
            lane.client.loop_start()
        log.info(
            "ingest: consuming station topics from %s:%d as %r (+ %r for media)%s",
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            self._settings.mqtt_client_id,
            self._client_id(self._media),
            f" in shared group {self._settings.mqtt_shared_group!r}" if self._shared else "",
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the workers finish what is already queued (acks included), then disconnect."""
        for lane in self._lanes:
            if lane.worker.is_alive():
                with contextlib.suppress(queue.Full):  # a stuck worker is reported just below
                    lane.queue.put(_STOP, timeout=timeout_s)
        for lane in self._lanes:
            if lane.worker.is_alive():
                lane.worker.join(timeout_s)
                if lane.worker.is_alive():
                    log.warning("ingest: %s worker still busy after %.0f s; abandoning it", lane.name, timeout_s)
            lane.client.disconnect()
            lane.client.loop_stop()
            lane.subscribed.clear()

    @property
    def connected(self) -> bool:
        """Connected to the broker *and* subscribed on both lanes, i.e. alerts and media can arrive."""
        return all(lane.subscribed.is_set() for lane in self._lanes)

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "received": self._received,
                "stored": self._stored,
                "duplicates": self._duplicates,
                "rejected": dict(self._rejected),
                "queued": self._main.queue.qsize(),
                "media_queued": self._media.queue.qsize(),
                "media_chunks": self._media_chunks,
                "media_complete": self._media_complete,
                "replies": self._replies,
                "fleet_messages": self._fleet_msgs,
                "acks_sent": self._acks_sent,
            }

    def publish_command(self, cmd: Command) -> bool:
        """Send a command to its station (QoS 1); False when not connected to the broker."""
        if not self._main.subscribed.is_set():
            return False
        info = self._main.client.publish(command_topic(cmd.station, cmd.kind), cmd.to_json(), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread: no blocking work here) ------------------------------

    def _client_id(self, lane: _Lane) -> str:
        return self._settings.mqtt_client_id + ("-media" if lane.name == "media" else "")

    def _make_client(self, lane: _Lane) -> mqtt.Client:
        s = self._settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id(lane),
            userdata=lane,
            protocol=mqtt.MQTTv5,
            manual_ack=True,  # the broker's PUBACK follows our database commit
        )
        if s.mqtt_username is not None:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            client.username_pw_set(s.mqtt_username, password)
        configure_tls(client, s)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _log_link(self, lane: _Lane, state: str, level: int, msg: str, *args: object) -> None:
        if state != lane.link_state:
            lane.link_state = state
            log.log(level, msg, *args)

    def _subscriptions(self, lane: _Lane) -> list[tuple[str, int]]:
        group = self._settings.mqtt_shared_group
        owned = [MEDIA_SUBSCRIPTION] if lane is self._media else [EVENT_SUBSCRIPTION, REPLY_SUBSCRIPTION]
        if group:
            owned = [shared(group, t) for t in owned]
        fleet_view = [] if lane is self._media else [(STATUS_SUBSCRIPTION, 1), (STATS_SUBSCRIPTION, 0)]
        return [(t, 1) for t in owned] + fleet_view

    def _on_connect(
        self, client: mqtt.Client, lane: _Lane, _flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        if reason_code.is_failure:
            # A non-zero reason code means the broker refused us: we are NOT connected.
            lane.subscribed.clear()
            self._log_link(lane, f"refused:{reason_code}", logging.WARNING, "%s: broker refused: %s",
                           lane.name, reason_code)  # fmt: skip
            return
        self._log_link(lane, "connected", logging.INFO, "%s: connected to broker", lane.name)
        client.subscribe(self._subscriptions(lane))

    def _on_connect_fail(self, _client: mqtt.Client, lane: _Lane) -> None:
        lane.subscribed.clear()
        self._log_link(lane, "unreachable", logging.WARNING, "%s: broker unreachable, retrying", lane.name)

    def _on_subscribe(
        self, client: mqtt.Client, lane: _Lane, _mid: int, codes: list[ReasonCode], _props: Any
    ) -> None:
        if any(c.is_failure for c in codes):
            self._log_link(lane, "sub-refused", logging.ERROR, "%s: subscription refused: %s", lane.name, codes)
            return
        lane.subscribed.set()
        self._log_link(lane, "subscribed", logging.INFO, "%s: subscribed to the station topics", lane.name)
        if self.connected:
            # Tell the stations to re-send what they hold unacknowledged (we may have missed it).
            hello = CentralHello(instance=self._settings.mqtt_client_id, ts=datetime.now(UTC))
            self._main.client.publish(CENTRAL_HELLO, hello.to_json(), qos=1)

    def _on_disconnect(
        self, _client: mqtt.Client, lane: _Lane, _flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        lane.subscribed.clear()
        level = logging.WARNING if reason_code.is_failure else logging.INFO
        self._log_link(lane, "disconnected", level, "%s: disconnected (%s)", lane.name, reason_code)

    def _on_message(self, client: mqtt.Client, lane: _Lane, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)  # no copy when it already is bytes
        corr = getattr(message.properties, "CorrelationData", None) if message.properties else None
        corr_id = corr.decode("ascii", "replace")[:80] if isinstance(corr, bytes | bytearray) else None
        if len(payload) > MAX_MESSAGE_BYTES:
            # Dropped here, so the queue's memory stays bounded by count x MAX_MESSAGE_BYTES.
            with self._lock:
                self._received += 1
            self._reject("oversized", message.topic, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
            self._broker_ack(lane, message.mid, message.qos)
            return
        try:
            # Blocking briefly pushes back on the broker through TCP during a burst (a station
            # flushing its outbox) instead of dropping; it stays well under the keep-alive.
            lane.queue.put(
                (message.topic, payload, message.mid, message.qos, corr_id), timeout=QUEUE_PUT_TIMEOUT_S
            )
        except queue.Full:
            # Not acknowledged to the station: it re-sends later.
            self._reject("queue_full", message.topic, f"worker stalled for {QUEUE_PUT_TIMEOUT_S} s; dropped")
            self._broker_ack(lane, message.mid, message.qos)

    @staticmethod
    def _broker_ack(lane: _Lane, mid: int, qos: int) -> None:
        if qos > 0:
            with contextlib.suppress(Exception):  # not connected any more: the broker re-sends
                lane.client.ack(mid, qos)

    # -- worker thread ---------------------------------------------------------------------------

    def _run(self, lane: _Lane) -> None:
        while True:
            try:
                item = lane.queue.get(timeout=1.0)
            except queue.Empty:
                item = ...
            if item is _STOP:
                self._flush_acks(lane)
                return
            if item is not ...:
                topic, payload, mid, qos, corr = item
                try:
                    self._handle(lane, topic, payload, corr)
                except Exception:  # keep consuming whatever one message did
                    self._reject("internal_error", topic, "unexpected error", exc_info=True)
                # The app ack goes out before the broker's PUBACK: both after the commit.
                if (
                    lane.queue.empty()
                    or sum(len(a) + len(r) for a, r in lane.pending_acks.values()) >= ACK_BATCH
                ):
                    self._flush_acks(lane)
                self._broker_ack(lane, mid, qos)
            else:
                self._flush_acks(lane)
            if lane is self._main:
                self._periodic()

    def _periodic(self) -> None:
        now = time.monotonic()
        silent_s = self._settings.fleet_silent_after_s
        # Stations' status and stats could not be stored while the database was away: until they have
        # had time to report again, "not heard from" would call every station silent.
        if now >= self._next_sweep and not self._outage.down and self._outage.back_for_s() > silent_s:
            self._next_sweep = now + max(1.0, silent_s / 4)
            try:
                with self._session_factory() as session:
                    raised = fleet.sweep_silent(session, silent_s)
                    self._announce_health(raised)
            except SQLAlchemyError as exc:
                if not is_outage(exc):
                    log.exception("fleet: silent-station sweep failed")
                self._outage.failed("fleet sweep", exc)
        if now >= self._next_retention and self._settings.media_retention_days > 0:
            self._next_retention = now + self._settings.retention_sweep_s
            try:
                with self._session_factory() as session:
                    media.sweep_retention(
                        session, self._settings.media_dir, self._settings.media_retention_days * 86400
                    )
            except (SQLAlchemyError, OSError):
                log.exception("retention: sweep failed")

    def _announce_health(self, raised: list[Any]) -> None:
        if raised and self._on_health is not None:
            for a in raised:
                self._on_health(fleet.alert_dict(a))

    @staticmethod
    def _ack(lane: _Lane, station: str, corr: str | None, rejected: bool = False) -> None:
        if corr is None:
            return  # not from an outbox (a test tool, an old station): nothing to acknowledge
        ids, rej = lane.pending_acks.setdefault(station, ([], []))
        (rej if rejected else ids).append(corr)

    def _flush_acks(self, lane: _Lane) -> None:
        pending, lane.pending_acks = lane.pending_acks, {}
        for station, (ids, rej) in pending.items():
            for i in range(0, max(len(ids), len(rej)), 1000):
                msg = LinkAck(ids=ids[i : i + 1000], rejected=rej[i : i + 1000])
                lane.client.publish(ack_topic(station), msg.to_json(), qos=1)
                with self._lock:
                    self._acks_sent += len(msg.ids) + len(msg.rejected)

    def _handle(self, lane: _Lane, topic: str, payload: bytes, corr: str | None) -> None:
        route = parse_topic(topic)
        kind = route.kind if route is not None else ""
        with self._lock:
            if kind in ("status", "stats"):
                self._fleet_msgs += 1
            else:
                self._received += 1
        try:
            if route is None or kind not in ("event", "media", "reply", "status", "stats"):
                raise _Rejected("bad_topic", "not a station topic we consume")
            handler = getattr(self, f"_on_{kind}")
            try:
                done = handler(route, payload, corr)
            except (SQLAlchemyError, OSError) as exc:
                raise self._store_failed(exc) from None
            self._outage.ok()
            if done:
                self._ack(lane, route.station, corr)
        except _Rejected as r:
            if route is not None and r.permanent:
                self._ack(lane, route.station, corr, rejected=True)
            self._reject(r.reason, topic, r.detail, exc_info=r.exc_info, quiet=r.quiet)

    def _store_failed(self, exc: BaseException) -> _Rejected:
        """Not acknowledged, so the station sends it again. An outage is logged once, by the outage."""
        detail = f"{type(exc).__name__}: {exc}"
        if is_outage(exc):
            self._outage.failed("ingest", exc)
            return _Rejected("store_failed", detail, permanent=False, quiet=True)
        return _Rejected("store_failed", detail, permanent=False, exc_info=True)

    @staticmethod
    def _parse(model: Any, payload: bytes) -> Any:
        try:
            return decode_alert(payload) if model is None else decode(model, payload)
        except ValidationError as exc:
            raise _Rejected(_classify(exc), _summarise(exc)) from None
        except ValueError as exc:
            raise _Rejected("invalid_schema", str(exc)) from None

    # Handlers return True when the item is stored and may be acknowledged to its station.
    def _on_event(self, route: Any, payload: bytes, corr: str | None) -> bool:
        msg = self._parse(None, payload)
        if (route.station, route.camera) != (msg.station, msg.camera):
            raise _Rejected("topic_mismatch", f"payload says {msg.station}/{msg.camera}")
        try:
            with self._session_factory() as session:
                alert, created = store_alert(session, msg, self._settings.media_dir)
                out = AlertOut.from_row(alert) if created else None
                if created:  # its clip may have arrived first
                    media.place_clips_beside_alert(session, msg.event_id, self._settings.media_dir, alert)
                with self._lock:
                    if out is None:
                        self._duplicates += 1
                    else:
                        self._stored += 1
                if out is not None:
                    self.lag.observe(max(0.0, (datetime.now(UTC) - msg.ts).total_seconds()))
                    if self._on_stored is not None:
                        # The same session and row: the hook need not read back what was just stored.
                        self._on_stored(out, session, alert)
        except SnapshotError as exc:
            raise _Rejected("bad_snapshot", str(exc)) from None
        return True

    def _on_media(self, route: Any, payload: bytes, corr: str | None) -> bool:
        chunk: MediaChunk = self._parse(MediaChunk, payload)
        if (route.station, route.camera) != (chunk.station, chunk.camera):
            raise _Rejected("topic_mismatch", f"payload says {chunk.station}/{chunk.camera}")
        try:
            with self._session_factory() as session:
                result = media.store_chunk(session, chunk, self._settings.media_dir)
        except media.MediaError as exc:
            raise _Rejected("bad_media", str(exc)) from None
        with self._lock:
            self._media_chunks += 1
            self._media_complete += result == "complete"
        if result == "complete" and chunk.kind == "clip" and self._on_clip is not None:
            self._on_clip()
        return True

    def _on_reply(self, route: Any, payload: bytes, corr: str | None) -> bool:
        reply: CommandReply = self._parse(CommandReply, payload)
        if route.station != reply.station:
            raise _Rejected("topic_mismatch", f"payload says {reply.station}")
        with self._session_factory() as session:
            known = fleet.record_reply(session, reply)
        if not known:
            raise _Rejected("unknown_command", f"no command {reply.cmd_id} for {reply.station}")
        with self._lock:
            self._replies += 1
        return True

    def _on_status(self, route: Any, payload: bytes, _corr: str | None) -> bool:
        if not payload:
            return False  # a cleared retained status
        msg: StationStatus = self._parse(StationStatus, payload)
        if route.station != msg.station:
            raise _Rejected("topic_mismatch", f"payload says {msg.station}")
        with self._session_factory() as session:
            self._announce_health(fleet.update_status(session, msg))
        return False  # fleet messages are not outbox items

    def _on_stats(self, route: Any, payload: bytes, _corr: str | None) -> bool:
        msg: StationStats = self._parse(StationStats, payload)
        if route.station != msg.station:
            raise _Rejected("topic_mismatch", f"payload says {msg.station}")
        with self._session_factory() as session:
            self._announce_health(fleet.update_stats(session, msg))
        return False

    def _reject(self, reason: str, topic: str, detail: str, exc_info: bool = False, quiet: bool = False) -> None:
        """Count a rejection; log only the first of each reason (a bad station could flood us)."""
        with self._lock:
            self._rejected[reason] += 1
            if quiet:
                return
            first = reason not in self._logged_reasons
            self._logged_reasons.add(reason)
        if first:
            log.warning(
                "ingest: rejected message on %r: %s (%s); further %r rejections are only counted",
                topic,
                reason,
                detail,
                reason,
                exc_info=exc_info,
            )


StationIngest = AlertIngest
