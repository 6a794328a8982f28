"""MQTT consumer of station alerts.

paho's network thread only size-checks and enqueues (topic, payload) into a bounded queue; one
worker thread validates, stores and announces each message, so slow database work never stalls
the MQTT keep-alive and the database sees a single writer. A bad message is counted and dropped; it never
stops the consumer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.alerts.schemas import AlertOut
from central.alerts.service import SnapshotError, store_alert
from central.settings import CentralSettings
from wire import EVENT_SUBSCRIPTION, decode_alert, parse_event_topic
from wire.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
QUEUE_PUT_TIMEOUT_S = 5.0
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


class AlertIngest:
    """Subscribes to every station's event topic and stores what arrives.

    Args:
        settings: broker address, credentials, client id and queue size.
        session_factory: where alerts are stored.
        on_stored: called in the worker thread with each newly stored alert (not redeliveries);
            must be quick and thread-safe.
    """

    def __init__(
        self,
        settings: CentralSettings,
        session_factory: sessionmaker[Session],
        on_stored: Callable[[AlertOut], None] | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._on_stored = on_stored
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(settings.ingest_queue_size)
        self._lock = threading.Lock()
        self._received = 0
        self._stored = 0
        self._duplicates = 0
        self._rejected: Counter[str] = Counter()
        self._logged_reasons: set[str] = set()
        self._subscribed = threading.Event()
        self._link_state = ""  # last logged connection state, so retries do not flood the log
        self._client = self._make_client()
        self._worker = threading.Thread(target=self._run, name="xl-central-ingest", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        # connect_async + loop_start: the loop thread connects, and keeps retrying (with backoff)
        # when the broker is down at start or the link drops later.
        self._client.connect_async(self._settings.mqtt_host, self._settings.mqtt_port, KEEPALIVE_S)
        self._client.loop_start()
        log.info(
            "ingest: consuming %s from %s:%d as %r",
            EVENT_SUBSCRIPTION,
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            self._settings.mqtt_client_id,
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect, then let the worker finish what is already queued."""
        self._client.disconnect()
        self._client.loop_stop()
        self._subscribed.clear()
        if self._worker.is_alive():
            with contextlib.suppress(queue.Full):  # a stuck worker is reported just below
                self._queue.put(_STOP, timeout=timeout_s)
            self._worker.join(timeout_s)
            if self._worker.is_alive():
                log.warning("ingest: worker still busy after %.0f s; abandoning it", timeout_s)

    @property
    def connected(self) -> bool:
        """Connected to the broker *and* subscribed, i.e. alerts can arrive."""
        return self._subscribed.is_set()

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "received": self._received,
                "stored": self._stored,
                "duplicates": self._duplicates,
                "rejected": dict(self._rejected),
                "queued": self._queue.qsize(),
            }

    # -- paho callbacks (network thread: no blocking work here) ------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self._settings
        # Persistent session (clean_session=False) under a fixed client id: the broker queues
        # QoS 1 alerts while the centre is down and delivers them when it is back.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if s.mqtt_username is not None:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            client.username_pw_set(s.mqtt_username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _log_link(self, state: str, level: int, msg: str, *args: object) -> None:
        if state != self._link_state:
            self._link_state = state
            log.log(level, msg, *args)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        if reason_code.is_failure:
            # A non-zero reason code means the broker refused us: we are NOT connected.
            self._subscribed.clear()
            self._log_link(
                f"refused:{reason_code}", logging.WARNING, "ingest: broker refused: %s", reason_code
            )
            return
        self._log_link("connected", logging.INFO, "ingest: connected to broker")
        client.subscribe(EVENT_SUBSCRIPTION, qos=1)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._subscribed.clear()
        self._log_link("unreachable", logging.WARNING, "ingest: broker unreachable, retrying")

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: list[ReasonCode], _props: Any
    ) -> None:
        if any(c.is_failure for c in codes):
            self._log_link("sub-refused", logging.ERROR, "ingest: subscription refused: %s", codes)
            return
        self._subscribed.set()
        self._log_link("subscribed", logging.INFO, "ingest: subscribed to %s", EVENT_SUBSCRIPTION)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        self._subscribed.clear()
        level = logging.WARNING if reason_code.is_failure else logging.INFO
        self._log_link("disconnected", level, "ingest: disconnected (%s)", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._received += 1
        payload = bytes(message.payload)  # no copy when it already is bytes
        if len(payload) > MAX_MESSAGE_BYTES:
            # Dropped here, so the queue's memory stays bounded by count x MAX_MESSAGE_BYTES.
            self._reject("oversized", message.topic, f"{len(payload)} bytes > {MAX_MESSAGE_BYTES}")
            return
        try:
            # Blocking briefly pushes back on the broker through TCP during a burst (a station
            # flushing its outbox) instead of dropping; it stays well under the keep-alive.
            self._queue.put((message.topic, payload), timeout=QUEUE_PUT_TIMEOUT_S)
        except queue.Full:
            self._reject("queue_full", message.topic, f"worker stalled for {QUEUE_PUT_TIMEOUT_S} s; dropped")

    # -- worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            topic, payload = item
            try:
                self._handle(topic, payload)
            except Exception:  # keep consuming whatever one message did
                self._reject("internal_error", topic, "unexpected error", exc_info=True)

    def _handle(self, topic: str, payload: bytes) -> None:
        try:
            msg = decode_alert(payload)
        except ValidationError as exc:
            self._reject(_classify(exc), topic, _summarise(exc))
            return
        except ValueError as exc:
            self._reject("invalid_schema", topic, str(exc))
            return

        where = parse_event_topic(topic)
        if where is None:
            self._reject("bad_topic", topic, "not an event topic")
            return
        if where != (msg.station, msg.camera):
            detail = f"payload says {msg.station}/{msg.camera}"
            self._reject("topic_mismatch", topic, detail)
            return

        try:
            with self._session_factory() as session:
                alert, created = store_alert(session, msg, self._settings.media_dir)
                out = AlertOut.from_row(alert) if created else None
        except SnapshotError as exc:
            self._reject("bad_snapshot", topic, str(exc))
            return
        except (SQLAlchemyError, OSError) as exc:
            self._reject("store_failed", topic, f"{type(exc).__name__}: {exc}", exc_info=True)
            return

        with self._lock:
            if out is None:
                self._duplicates += 1
            else:
                self._stored += 1
        if out is not None and self._on_stored is not None:
            self._on_stored(out)

    def _reject(self, reason: str, topic: str, detail: str, exc_info: bool = False) -> None:
        """Count a rejection; log only the first of each reason (a bad station could flood us)."""
        with self._lock:
            self._rejected[reason] += 1
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
