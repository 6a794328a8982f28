"""The feed as a spreadsheet: ``GET /api/alerts/export.csv`` with the feed's own filters.

For a supervisor's report of a day, a week, a station. UTF-8 with a byte-order mark (Excel, as
Chinese offices open CSV, needs it to read the station names), capture times in Beijing time with
their offset, the station's and the camera's names beside their ids, and the work order's state and
priority as the feed shows them. Rows are read a page at a time along the feed's own cursor, in its
own session (the request's is closed once streaming starts).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.alerts import service
from central.stations.models import Camera, Station

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving: a fixed offset is exact
MAX_ROWS = 100_000  # beyond this, narrow the range: a report, not a database dump
PAGE = 1000
COLUMNS = (
    "alert_id", "captured_at", "station", "station_name", "camera", "camera_name", "rule", "kind", "zone",
    "label", "score", "track_id", "incident_id", "order_id", "order_state", "priority", "snapshot_url", "clip_url",
)  # fmt: skip


def rows_csv(
    sessions: Callable[[], Session],
    annotate: Callable[[Session, list[Any], Path], list[Any]],
    media_dir: Path,
    filters: dict[str, Any],
) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(COLUMNS)
    yield "\ufeff" + _take(buf)
    cursor = None
    with sessions() as session:
        stations = dict(session.execute(select(Station.id, Station.name)).all())
        cameras = dict(session.execute(select(Camera.id, Camera.name)).all())
        while True:
            rows, _ = service.list_alerts(session, limit=PAGE, before=cursor, **filters)
            if not rows:
                return
            for a in annotate(session, rows, media_dir):
                out.writerow((
                    a.id, a.ts.astimezone(BEIJING).isoformat(timespec="seconds"), a.station,
                    stations.get(a.station, ""), a.camera, cameras.get(f"{a.station}:{a.camera}", ""), a.rule,
                    a.rule_kind, a.zone, a.label, f"{a.score:.2f}", a.track_id, a.incident_id or "",
                    a.order_id or "", a.order_state or "", a.priority or "", a.snapshot_url, a.clip_url or "",
                ))  # fmt: skip
            yield _take(buf)
            cursor = rows[-1]  # the session's identity map holds rows weakly: a page at a time in memory


def _take(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text
