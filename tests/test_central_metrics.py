"""The centre's GET /metrics is valid Prometheus text (prometheus_client's parser) with ingest, lag,
incident, SLA and fleet figures; a station's reported problem (low disk) becomes a health alert."""

from __future__ import annotations

from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from central.app import create_app
from tests.authkit import AUTH
from tests.linkkit import central_settings, health, make_alert, station_id, wait_for
from wire import event_topic
from wire.link import OutboxFigures, StationProblem, StationStats
from wire.topics import stats_topic


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def test_central_metrics_and_station_problems(broker, tmp_path) -> None:
    st = station_id()
    app = create_app(central_settings(broker.host, broker.port, tmp_path))
    with TestClient(app, headers=AUTH) as central:
        wait_for(lambda: health(central)["mqtt_connected"], "central subscribed")
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        try:
            alert = make_alert(st, "cam-1")
            pub.publish(event_topic(st, "cam-1"), alert.model_dump_json().encode(), qos=1).wait_for_publish(5)
            problem = StationProblem(
                check="disk_low", subject="/var/lib/xueliang/media", detail="disk 93 % full"
            )
            stats = StationStats(station=st, ts=datetime.now(UTC), interval_s=15, uptime_s=1, problems=[problem],
                                 outbox=OutboxFigures(items=0, events=0, media_chunks=0, bytes=0, quota_bytes=1,
                                                      oldest_age_s=0, dropped_events=0, dropped_media=0))  # fmt: skip
            pub.publish(stats_topic(st), stats.to_json(), qos=1).wait_for_publish(5)

            def fleet_alert() -> dict | None:
                s = next(
                    (x for x in central.get("/api/fleet").json()["stations"] if x["station"] == st), None
                )
                return next((a for a in s["health_alerts"] if a["kind"] == "disk_low"), None) if s else None

            got = wait_for(fleet_alert, "the low-disk alarm as a health alert")
            assert "93 % full" in got["detail"]
            wait_for(lambda: health(central)["ingest"]["stored"] >= 1, "the alert stored")
            wait_for(lambda: central.get("/api/incidents").status_code == 200, "incidents")
        finally:
            pub.loop_stop()
            pub.disconnect()
        resp = TestClient(app).get("/metrics")  # no credentials needed: counts only
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        m = parse(resp.text)
        assert m[("xl_central_ingest_stored_total", ())] >= 1
        assert m[("xl_central_alert_lag_seconds_count", ())] >= 1
        assert ("xl_central_alert_lag_seconds_bucket", (("le", "+Inf"),)) in m
        assert m[("xl_central_incidents_open", ())] >= 1
        assert ("xl_central_sla_breaches_total", (("deadline", "acknowledge"),)) in m
        assert m[("xl_central_health_alerts_open", (("kind", "disk_low"),))] >= 1
        assert ("xl_central_ingest_queue_depth", ()) in m and m[("xl_central_mqtt_connected", ())] == 1
        assert m[("xl_central_database_up", ())] == 1
