"""Aggregations, bucketed by local (UTC+8) day. Done in Python over a bounded window so the same
code runs on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from central.alerts.models import Alert
from central.dispatch.models import WorkOrder
from central.dispatch.routing import LOCAL_TZ

MAX_ROWS = 200_000


def _days(now: datetime, n: int) -> list[date]:
    today = now.astimezone(LOCAL_TZ).date()
    return [today - timedelta(days=i) for i in range(n - 1, -1, -1)]


def alerts_per_day(session: Session, now: datetime, n_days: int, visible: ColumnElement[bool] | None) -> dict:
    days = _days(now, n_days)
    start = datetime.combine(days[0], datetime.min.time(), LOCAL_TZ)
    q = select(Alert.ts, Alert.rule_kind, Alert.station).where(Alert.ts >= start).limit(MAX_ROWS)
    if visible is not None:
        q = q.where(visible)
    index = {d: i for i, d in enumerate(days)}
    by_rule: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    by_station: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for ts, kind, station in session.execute(q):
        i = index.get(ts.astimezone(LOCAL_TZ).date())
        if i is not None:
            by_rule[kind][i] += 1
            by_station[station][i] += 1
    return {"days": [d.isoformat() for d in days], "by_rule": dict(by_rule), "by_station": dict(sorted(by_station.items()))}


def orders_summary(session: Session, now: datetime, n_days: int, visible: ColumnElement[bool] | None) -> dict:
    days = _days(now, n_days)
    start = datetime.combine(days[0], datetime.min.time(), LOCAL_TZ)
    q = select(WorkOrder).where(WorkOrder.created_at >= start).limit(MAX_ROWS)
    if visible is not None:
        q = q.where(visible)
    index = {d: i for i, d in enumerate(days)}
    ack_by_day: list[list[float]] = [[] for _ in days]
    ack_all: list[float] = []
    states: Counter[str] = Counter()
    ack_kept = ack_total = res_kept = res_total = 0
    for o in session.scalars(q):
        states[o.state] += 1
        if o.acknowledged_at is not None:
            s = (o.acknowledged_at - o.created_at).total_seconds()
            ack_all.append(s)
            i = index.get(o.created_at.astimezone(LOCAL_TZ).date())
            if i is not None:
                ack_by_day[i].append(s)
        if o.acknowledged_at is not None or o.ack_breached:
            ack_total += 1
            ack_kept += int(not o.ack_breached)
        if o.resolved_at is not None or o.resolve_breached:
            res_total += 1
            res_kept += int(not o.resolve_breached)

    def pct(k: int, n: int) -> float | None:
        return round(100.0 * k / n, 1) if n else None

    return {
        "days": [d.isoformat() for d in days],
        "ack_median_s_by_day": [statistics.median(v) if v else None for v in ack_by_day],
        "ack_median_s": statistics.median(ack_all) if ack_all else None,
        "ack_p90_s": statistics.quantiles(ack_all, n=10)[-1] if len(ack_all) >= 2 else (ack_all[0] if ack_all else None),
        "ack_sla_kept_pct": pct(ack_kept, ack_total),
        "resolve_sla_kept_pct": pct(res_kept, res_total),
        "by_state": dict(states),
        "total": sum(states.values()),
    }
