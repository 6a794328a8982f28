"""The dispatch side of the service at run time: start-up data, the alert hook, the scheduler thread."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from central.alerts.models import Alert
from central.alerts.schemas import AlertOut
from central.auth import service as auth
from central.clock import Clock
from central.dispatch import service as orders
from central.dispatch.models import WorkOrder
from central.incidents import service as incidents
from central.notify import Notifier
from central.outage import DatabaseOutage, is_outage
from central.retention import QuotaStats, sweep_quota
from central.settings import CentralSettings
from central.stations.service import load_reference
from central.webhooks.service import WebhookSender

log = logging.getLogger(__name__)


class DispatchRuntime:
    def __init__(
        self,
        settings: CentralSettings,
        session_factory: sessionmaker[Session],
        clock: Clock,
        notifier: Notifier,
        passwords: auth.Passwords,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self._settings = settings
        self._outage = outage or DatabaseOutage()
        self._sessions = session_factory
        self._clock = clock
        self._notifier = notifier
        self._passwords = passwords
        self.grouping = incidents.Grouping(
            settings.incident_inactivity_s, settings.incident_merge_window_s, settings.incident_auto_merge
        )
        self.webhooks = WebhookSender(
            session_factory, clock, settings.webhook_timeout_s, settings.webhook_retry_base_s,
            settings.webhook_max_attempts,
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.retention = QuotaStats()
        self._next_quota = 0.0

    def prepare(self) -> None:
        """Reference data and users (tables must exist)."""
        s = self._settings
        with self._sessions() as session:
            if s.reference_dir.is_dir():
                load_reference(session, s.reference_dir)
            now = self._clock.now()
            if s.bootstrap_admin_token is not None:
                auth.ensure_admin_token(session, self._passwords, s.bootstrap_admin_token.get_secret_value(), now)
            if s.users_file is not None:
                auth.load_users_file(session, self._passwords, s.users_file, now)

    def on_alert_stored(self, alert: AlertOut, session: Session | None = None, row: Alert | None = None) -> None:
        """Ingest hook (ingest worker thread): group into an incident, open an order, announce both.

        The ingest passes its own session and the row it has just committed, which saves a session
        and two lookups per alert; without them the hook opens a session and reads the row."""
        try:
            if session is not None and row is not None:
                self._group(alert, session, row, new=True)
                return
            with self._sessions() as own:
                if (found := own.get(Alert, alert.id)) is not None:
                    self._group(alert, own, found, new=False)
        except Exception:  # the alert is stored; the scheduler groups it later
            log.exception("dispatch: could not group alert %s; will retry", alert.id)
            if session is not None:
                session.rollback()  # only the grouping's work: the alert was committed before
            self._notifier.alert(alert, None)

    def _group(self, alert: AlertOut, session: Session, row: Alert, new: bool) -> None:
        incident, order = incidents.attach_alert(session, row, self.grouping, self._clock.now(), new=new)
        if not self._notifier.listening:
            return  # what follows only builds the announcements
        current = order or incidents.order_of(session, incident.id)
        extra = {"incident_id": incident.id}
        if current is not None:
            extra |= {"order_id": current.id, "priority": current.priority, "order_state": current.state}
        self._notifier.alert(alert.model_copy(update=extra), current.assignee_worker_id if current else None)
        if order is not None:
            self._notifier.order(order)

    # -- scheduler ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One round: group stragglers, escalate overdue orders, deliver webhooks."""
        now = self._clock.now()
        with self._sessions() as session:
            for row in incidents.ungrouped_alerts(session, now - timedelta(seconds=10)):
                incidents.attach_alert(session, row, self.grouping, now)
            for oid in orders.check_sla(session, now):
                if (o := session.get(WorkOrder, oid)) is not None:
                    self._notifier.order(o)
        self.webhooks.run_once()
        self.keep_quota()

    def keep_quota(self, force: bool = False) -> None:
        """Media within XL_CENTRAL_MEDIA_QUOTA_MB, oldest first, open incidents' evidence kept."""
        s = self._settings
        if s.media_quota_mb is None or (not force and time.monotonic() < self._next_quota):
            return
        self._next_quota = time.monotonic() + s.media_quota_sweep_s
        with self._sessions() as session:
            sweep_quota(session, s.media_dir, int(s.media_quota_mb * 2**20), self.retention)

    def start(self) -> None:
        if not self._settings.scheduler_enabled:
            return
        self._thread = threading.Thread(target=self._loop, name="xl-central-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.scheduler_interval_s):
            try:
                self.tick()
            except Exception as exc:
                if is_outage(exc):  # logged once for the whole outage; SLA timers catch up on its return
                    self._outage.failed("scheduler", exc)
                    continue
                log.exception("scheduler: round failed; next in %.0f s", self._settings.scheduler_interval_s)
            else:
                self._outage.ok()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.webhooks.close()
