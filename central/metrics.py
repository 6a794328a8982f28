"""``GET /metrics`` of the central service: Prometheus text read on scrape from the ingest counters,
the capture-to-stored lag histogram and a few COUNT queries (open incidents, SLA breaches, fleet).
Nothing is counted per request or per message beyond the ingest's own counters."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from central.dispatch.models import WorkOrder
from central.fleet.models import FleetStation, HealthAlert
from central.incidents.models import Incident
from central.retention import CLOSED

LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

router = APIRouter(tags=["metrics"])


class LagHistogram:
    """Capture (the station's ``ts``) to stored at the centre: network, outbox backlog and queue wait."""

    def __init__(self, bounds: tuple[float, ...] = LAG_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, value_s: float) -> None:
        with self._lock:
            self.counts[bisect_left(self.bounds, value_s)] += 1
            self.total += value_s

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        with self._lock:
            counts, total = list(self.counts), self.total
        cum, buckets = 0, []
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            cum += n
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cum))
        fam = HistogramMetricFamily(name, doc)
        fam.add_metric([], buckets, total)
        return fam


class CentralCollector(Collector):
    def __init__(self, state: Any) -> None:
        self.state = state  # app.state: ingest, session_factory, retention stats

    def collect(self) -> Iterator[Metric]:
        ingest = self.state.ingest
        c = ingest.counters() if ingest is not None else {}
        yield GaugeMetricFamily("xl_central_mqtt_connected", "1 while subscribed to the station topics",
                                value=1.0 if ingest is not None and ingest.connected else 0.0)  # fmt: skip
        for key, doc in (
            ("received", "station messages received (alerts, media, replies)"),
            ("stored", "alerts stored"),
            ("duplicates", "alerts received again (already stored)"),
            ("media_chunks", "media chunks stored"),
            ("media_complete", "media files completed and verified"),
            ("replies", "command replies stored"),
            ("fleet_messages", "status and stats messages"),
            ("acks_sent", "outbox items acknowledged to stations"),
        ):
            yield CounterMetricFamily(f"xl_central_ingest_{key}", doc, value=c.get(key, 0))
        rejected = CounterMetricFamily(
            "xl_central_ingest_rejected", "messages refused, by reason", labels=["reason"]
        )
        for reason, n in sorted(c.get("rejected", {}).items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield GaugeMetricFamily("xl_central_ingest_queue_depth", "messages waiting for the ingest worker",
                                value=c.get("queued", 0))  # fmt: skip
        yield GaugeMetricFamily("xl_central_ingest_media_queue_depth", "media chunks waiting for the media worker",
                                value=c.get("media_queued", 0))  # fmt: skip
        lag = getattr(ingest, "lag", None) if ingest is not None else None
        if isinstance(lag, LagHistogram):
            yield lag.family(
                "xl_central_alert_lag_seconds", "capture at the station to stored here, per new alert"
            )
        q = getattr(self.state, "retention", None)
        if q is not None:
            yield GaugeMetricFamily(
                "xl_central_media_bytes", "media dir size at the last quota sweep", value=q.bytes
            )
            yield CounterMetricFamily("xl_central_media_deleted_files", "files deleted to keep the quota",
                                      value=q.deleted_files)  # fmt: skip
        r = getattr(self.state, "renditions", None)
        if r is not None:
            made = CounterMetricFamily("xl_central_clip_renditions", "clips looked at for an H.264 copy, by outcome",
                                       labels=["result"])  # fmt: skip
            for result, n in (("made", r.stats.made), ("not_needed", r.stats.not_needed), ("failed", r.stats.failed)):
                made.add_metric([result], n)
            yield made
            yield CounterMetricFamily("xl_central_clip_rendition_seconds", "wall time spent encoding H.264 copies",
                                      value=r.stats.seconds)  # fmt: skip
        yield from self._database()

    def _database(self) -> Iterator[Metric]:
        try:
            with self.state.session_factory() as s:
                closed = select(WorkOrder.incident_id).where(WorkOrder.state.in_(CLOSED))
                open_incidents = s.scalar(
                    select(func.count()).select_from(Incident)
                    .where(Incident.merged_into_id.is_(None), Incident.id.not_in(closed))
                )  # fmt: skip
                ack = s.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.ack_breached))
                res = s.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.resolve_breached))
                orders = s.execute(select(WorkOrder.state, func.count()).group_by(WorkOrder.state)).all()
                online = s.scalar(
                    select(func.count()).select_from(FleetStation).where(FleetStation.state == "online")
                )
                health = s.execute(
                    select(HealthAlert.kind, func.count()).where(HealthAlert.cleared_at.is_(None)).group_by(HealthAlert.kind)
                ).all()  # fmt: skip
        except SQLAlchemyError:
            yield GaugeMetricFamily(
                "xl_central_database_up", "1 when the scrape could query the database", value=0
            )
            return
        yield GaugeMetricFamily(
            "xl_central_database_up", "1 when the scrape could query the database", value=1
        )
        yield GaugeMetricFamily("xl_central_incidents_open", "incidents whose order is not closed or rejected",
                                value=open_incidents or 0)  # fmt: skip
        sla = CounterMetricFamily(
            "xl_central_sla_breaches", "work orders that missed a deadline", labels=["deadline"]
        )
        sla.add_metric(["acknowledge"], ack or 0)
        sla.add_metric(["resolve"], res or 0)
        yield sla
        by_state = GaugeMetricFamily("xl_central_work_orders", "work orders by state", labels=["state"])
        for state, n in orders:
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily(
            "xl_central_stations_online", "stations whose last status is online", value=online or 0
        )
        alerts = GaugeMetricFamily(
            "xl_central_health_alerts_open", "open fleet health alerts", labels=["kind"]
        )
        for kind, n in health:
            alerts.add_metric([kind], n)
        yield alerts


def make_registry(state: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentralCollector(state))
    ProcessCollector(registry=registry)
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
