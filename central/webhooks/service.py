"""Enqueue (inside the caller's transaction), sign and deliver webhooks, with exponential backoff.

Signature: ``X-XL-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` with the
timestamp in ``X-XL-Timestamp`` (Unix seconds), so a receiver can also refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.clock import Clock
from central.webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)
BATCH = 50
MAX_BACKOFF_S = 3600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def enqueue(session: Session, event: str, payload: dict[str, Any], now: datetime) -> int:
    """Add one pending delivery per active webhook subscribed to ``event``; the caller commits."""
    body = json.dumps({"event": event, "at": now.isoformat(), "data": payload}, ensure_ascii=False, default=str)
    n = 0
    for hook in session.scalars(select(Webhook).where(Webhook.active.is_(True))):
        wanted = {e.strip() for e in hook.events.split(",")}
        if "*" in wanted or event in wanted:
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id, event=event, body=body, status="pending", attempts=0,
                    next_attempt_at=now, last_error="", created_at=now,
                )
            )  # fmt: skip
            n += 1
    return n


class WebhookSender:
    """Delivers due webhooks; ``run_once`` is called by the scheduler thread (or a test)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        timeout_s: float,
        retry_base_s: float,
        max_attempts: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._retry_base_s = retry_base_s
        self._max_attempts = max_attempts
        self._http = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def run_once(self) -> int:
        """Attempt every delivery that is due; returns how many were delivered."""
        delivered = 0
        with self._sessions() as session:
            now = self._clock.now()
            due = session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.id)
                .limit(BATCH)
            ).all()
            for d in due:
                hook = session.get(Webhook, d.webhook_id)
                if hook is None or not hook.active:
                    d.status, d.last_error = "failed", "webhook removed or inactive"
                    continue
                error = self._post(hook, d, now)
                d.attempts += 1
                if error is None:
                    d.status, d.delivered_at, d.last_error = "delivered", now, ""
                    delivered += 1
                elif d.attempts >= self._max_attempts:
                    d.status, d.last_error = "failed", error
                    log.warning("webhook %s: delivery %d failed for good: %s", hook.name, d.id, error)
                else:
                    backoff = min(MAX_BACKOFF_S, self._retry_base_s * 2 ** (d.attempts - 1))
                    d.next_attempt_at, d.last_error = now + timedelta(seconds=backoff), error
            session.commit()
        return delivered

    def _post(self, hook: Webhook, d: WebhookDelivery, now: datetime) -> str | None:
        body = d.body.encode("utf-8")
        ts = int(now.timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-XL-Event": d.event,
            "X-XL-Delivery": str(d.id),
            "X-XL-Timestamp": str(ts),
            "X-XL-Signature": sign(hook.secret, ts, body),
        }
        try:
            resp = self._http.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        return None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
