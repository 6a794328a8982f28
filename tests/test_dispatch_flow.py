"""Incidents, routing, the six-step lifecycle, SLA escalation and webhooks; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Iterator
from datetime import timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import sqlalchemy as sa

from central.alerts import export
from central.alerts.schemas import AlertOut
from central.alerts.service import store_alert
from central.dispatch.service import replay_order
from tests.dispatchkit import T0, Env, alert_msg

pytest_plugins = ["tests.dispatchkit"]

LAWN_WORKER = "w-lc-001-1"  # on duty in grid LY-LC-001, where ly-s01/cam-lawn looks


def test_alert_opens_a_routed_order_with_sla_deadlines(env: Env) -> None:
    a = env.store(alert_msg())
    order = env.order_of_alert(a.id)

    assert (order["state"], order["department_id"], order["priority"]) == ("new", "police", 2)
    assert (order["grid_id"], order["suggested_worker_id"], order["assignee_worker_id"]) == ("LY-LC-001", LAWN_WORKER, None)
    assert order["routing_rule_id"] == "r-intrusion"
    # P2: accept within 10 min, resolve within 4 h (configs/reference/sla_policies.yaml)
    created = T0
    assert order["ack_due_at"].startswith((created + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"))
    assert set(order["allowed_actions"]) == {"accept", "reject"}


@pytest.mark.parametrize(
    ("camera", "local_hour", "rule_kind", "expected"),
    [
        ("cam-lawn", 10, "intrusion", ("police", 2)),  # village, daytime
        ("cam-lawn", 23, "intrusion", ("police", 1)),  # night raises urgency
        ("cam-night", 10, "intrusion", ("police", 1)),  # school zone rule, plus school hours (clamped at 1)
        ("cam-lawn", 10, "crowd", ("emergency", 2)),
        ("cam-lawn", 10, "stationary_vehicle", ("traffic", 3)),
    ],
)
def test_priority_from_rule_zone_and_time_of_day(env: Env, camera: str, local_hour: int, rule_kind: str, expected: tuple) -> None:
    ts = T0.replace(hour=(local_hour - 8) % 24)
    a = env.store(alert_msg(camera=camera, ts=ts, rule_kind=rule_kind))
    order = env.order_of_alert(a.id)
    assert (order["department_id"], order["priority"]) == expected


def test_overlapping_alerts_of_a_camera_form_one_incident(env: Env) -> None:
    first = env.store(alert_msg(ts=T0))
    again = env.store(alert_msg(ts=T0 + timedelta(seconds=90)))  # within the 120 s cut-off
    later = env.store(alert_msg(ts=T0 + timedelta(seconds=90 + 600)))  # after a quiet spell
    other_cam = env.store(alert_msg(camera="cam-night", ts=T0 + timedelta(seconds=30)))

    ids = [env.admin.get(f"/api/alerts/{a.id}").json()["incident_id"] for a in (first, again, later, other_cam)]
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3]}) == 3
    inc = env.admin.get(f"/api/incidents/{ids[0]}").json()
    assert inc["alert_count"] == 2 and [x["id"] for x in inc["alerts"]] == [first.id, again.id]
    assert env.admin.get("/api/orders").json()["total"] == 3


def test_an_alert_joining_an_open_incident_is_not_routed_again(env: Env) -> None:
    # A busy camera's alerts mostly join its open incident; routing (camera, grid, rules, priority
    # adjustments, who is on duty) is for opening one, and was once done for every alert.
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    engine = env.app.state.engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        first = env.store(alert_msg(ts=T0))
        opened = len(statements)
        again = env.store(alert_msg(ts=T0 + timedelta(seconds=30)))
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    routing_tables = ("routing_rules", "priority_adjustments", "FROM cameras", "FROM workers")
    assert any(t in s for s in statements[:opened] for t in routing_tables)  # the first was routed
    assert not [s for s in statements[opened:] if any(t in s for t in routing_tables)]
    ids = {env.admin.get(f"/api/alerts/{a.id}").json()["incident_id"] for a in (first, again)}
    assert len(ids) == 1


def test_the_ingest_hook_groups_in_the_ingests_session_without_reading_back(env: Env) -> None:
    # The ingest hands the hook its session and the row it has just committed: grouping a new alert
    # then needs neither the row again nor the check for an incident already holding it.
    first = env.store(alert_msg(ts=T0))
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    engine = env.app.state.engine
    with env.app.state.session_factory() as session:
        row, created = store_alert(session, alert_msg(ts=T0 + timedelta(seconds=30)), env.settings.media_dir)
        assert created
        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            env.app.state.runtime.on_alert_stored(AlertOut.from_row(row), session, row)
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)
        again = row.id
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if "FROM alerts" in s or "FROM incident_alerts" in s], reads
    ids = {env.admin.get(f"/api/alerts/{a}").json()["incident_id"] for a in (first.id, again)}
    assert len(ids) == 1 and None not in ids


def test_full_lifecycle_is_audited_and_replays(env: Env) -> None:
    a = env.store(alert_msg())
    oid = env.order_of_alert(a.id)["id"]
    op = env.user("op1", "operator", station="ly-s01")
    worker = env.user("worker1", "worker", worker=LAWN_WORKER)

    assert worker.get(f"/api/orders/{oid}").status_code == 404  # not theirs yet
    for action, kw in [("accept", {}), ("verify", {"note": "seen on camera"}), ("inform", {})]:
        r = env.act(op, oid, action, **kw)
        assert r.status_code == 200, r.text
    assert r.json()["assignee_worker_id"] == LAWN_WORKER
    assert worker.get("/api/orders").json()["total"] == 1
    for action in ("act", "feedback", "close"):
        r = env.act(worker, oid, action, note=f"{action} done")
        assert r.status_code == 200, r.text
    order = r.json()
    assert order["state"] == "closed" and order["allowed_actions"] == []
    assert order["rating_code"] is None  # workers do not see the public's key

    history = op.get(f"/api/orders/{oid}/events").json()
    assert [e["action"] for e in history] == ["create", "accept", "verify", "inform", "act", "feedback", "close"]
    assert history[4]["actor"] == "worker1 (worker)" and history[2]["note"] == "seen on camera"
    assert all(history[i]["at"] <= history[i + 1]["at"] for i in range(len(history) - 1))

    code = op.get(f"/api/orders/{oid}").json()["rating_code"]
    public = env.admin.__class__(env.app)  # no credentials
    assert public.post(f"/api/public/orders/{code}/rating", json={"rating": 1, "note": "still there"}).status_code == 204
    reopened = op.get(f"/api/orders/{oid}").json()
    assert reopened["state"] == "dispatched" and reopened["rating"] is None
    for action in ("act", "feedback", "close"):
        assert env.act(worker, oid, action).status_code == 200
    assert public.post(f"/api/public/orders/{code}/rating", json={"rating": 5}).status_code == 204
    assert public.post(f"/api/public/orders/{code}/rating", json={"rating": 5}).status_code == 409
    assert public.post("/api/public/orders/nope/rating", json={"rating": 5}).status_code == 404

    with env.app.state.session_factory() as session:
        snap = replay_order(session, oid)
    final = op.get(f"/api/orders/{oid}").json()
    assert (snap.state.value, snap.assignee_worker_id, snap.rating) == (final["state"], LAWN_WORKER, 5) == ("closed", LAWN_WORKER, 5)


def test_illegal_transitions_are_409_and_change_nothing(env: Env) -> None:
    oid = env.order_of_alert(env.store(alert_msg()).id)["id"]
    for action in ("verify", "inform", "act", "feedback", "close", "escalate"):
        r = env.act(env.admin, oid, action)
        assert r.status_code == 409, (action, r.text)
        assert "cannot" in r.json()["detail"]
    assert env.act(env.admin, oid, "reject").status_code == 400  # needs a reason
    assert env.act(env.admin, oid, "reject", reason="false_alarm").status_code == 200
    assert env.act(env.admin, oid, "accept").status_code == 409
    assert [e["action"] for e in env.admin.get(f"/api/orders/{oid}/events").json()] == ["create", "reject"]


def test_nobody_on_duty_falls_back_to_the_department_queue(env: Env) -> None:
    body = {"name": "off", "department_id": "grid", "grid_id": "LY-LC-001", "on_duty": False}
    assert env.admin.put(f"/api/reference/workers/{LAWN_WORKER}", json=body).status_code == 200
    oid = env.order_of_alert(env.store(alert_msg()).id)["id"]
    order = env.admin.get(f"/api/orders/{oid}").json()
    assert (order["suggested_worker_id"], order["department_id"]) == (None, "police")
    env.act(env.admin, oid, "accept")
    env.act(env.admin, oid, "verify")
    assert env.act(env.admin, oid, "inform").status_code == 400
    r = env.act(env.admin, oid, "inform", worker_id="w-police-duty")
    assert r.status_code == 200 and r.json()["assignee_worker_id"] == "w-police-duty"


def test_routing_rules_are_data(env: Env) -> None:
    rule = {"position": 1, "category": "intrusion", "department_id": "chengguan", "priority": 4}
    assert env.admin.put("/api/reference/routing_rules/r-test", json=rule).status_code == 201
    order = env.order_of_alert(env.store(alert_msg()).id)
    assert (order["department_id"], order["priority"], order["routing_rule_id"]) == ("chengguan", 4, "r-test")


def test_merge_and_split(env: Env) -> None:
    a1 = env.store(alert_msg(ts=T0))
    a2 = env.store(alert_msg(ts=T0 + timedelta(seconds=30)))
    b = env.store(alert_msg(ts=T0 + timedelta(seconds=400)))  # same grid and category, new incident
    inc_a = env.admin.get(f"/api/alerts/{a1.id}").json()["incident_id"]
    inc_b = env.admin.get(f"/api/alerts/{b.id}").json()["incident_id"]
    assert [c["id"] for c in env.admin.get(f"/api/incidents/{inc_a}/merge-candidates").json()] == [inc_b]

    merged = env.admin.post(f"/api/incidents/{inc_a}/merge", json={"incident_ids": [inc_b]})
    assert merged.status_code == 200 and merged.json()["alert_count"] == 3
    gone = env.admin.get(f"/api/incidents/{inc_b}").json()
    assert gone["merged_into_id"] == inc_a and gone["order"]["state"] == "rejected"
    assert gone["order"]["reject_reason"] == "duplicate"
    assert env.admin.post(f"/api/incidents/{inc_a}/merge", json={"incident_ids": [inc_b]}).status_code == 409

    split = env.admin.post(f"/api/incidents/{inc_a}/split", json={"alert_ids": [a2.id]})
    assert split.status_code == 201
    new = split.json()
    assert new["alert_count"] == 1 and new["order"]["state"] == "new" and new["id"] not in (inc_a, inc_b)
    assert env.admin.get(f"/api/incidents/{inc_a}").json()["alert_count"] == 2
    assert env.admin.post(f"/api/incidents/{inc_a}/split", json={"alert_ids": [a1.id, b.id]}).status_code == 409


def test_sla_missed_acknowledge_escalates_along_the_chain(env: Env) -> None:
    oid = env.order_of_alert(env.store(alert_msg()).id)["id"]  # P2: 10 min to accept
    other = env.order_of_alert(env.store(alert_msg(camera="cam-night", ts=T0)).id)["id"]
    env.act(env.admin, other, "accept")

    env.clock.advance(9 * 60)
    assert env.admin.post("/api/sla/check").json() == {"escalated": []}
    env.clock.advance(2 * 60)
    assert env.admin.post("/api/sla/check").json() == {"escalated": [oid]}
    order = env.admin.get(f"/api/orders/{oid}").json()
    assert (order["escalation_level"], order["ack_breached"]) == (1, True)
    assert order["escalation_name"].startswith("镇联动站站长")
    last = env.admin.get(f"/api/orders/{oid}/events").json()[-1]
    assert (last["action"], last["actor"]) == ("sla_escalate", "system")
    assert "acknowledge deadline missed" in last["note"]
    assert env.admin.post("/api/sla/check").json() == {"escalated": []}  # the next level has its own window

    env.clock.advance(10 * 60 + 1)
    env.admin.post("/api/sla/check")
    assert env.admin.get(f"/api/orders/{oid}").json()["escalation_level"] == 2
    assert env.admin.get(f"/api/orders/{other}").json()["escalation_level"] == 0  # accepted in time

    env.clock.advance(4 * 3600)  # past the resolve deadline of both
    assert sorted(env.admin.post("/api/sla/check").json()["escalated"]) == sorted([oid, other])
    with env.app.state.session_factory() as session:
        assert replay_order(session, oid).escalation_level == env.admin.get(f"/api/orders/{oid}").json()["escalation_level"]


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 2
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers), body))
        self.send_response(500 if len(type(self).got) <= type(self).fail_first else 204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.got = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_and_retried_with_backoff(env: Env, receiver: str) -> None:
    secret = "s3cret-for-the-grid-platform"
    hook = {"name": "grid-platform", "url": receiver, "secret": secret, "events": ["accept"]}
    assert env.admin.post("/api/webhooks", json=hook).status_code == 201
    oid = env.order_of_alert(env.store(alert_msg()).id)["id"]
    env.act(env.admin, oid, "accept")
    sender = env.app.state.runtime.webhooks

    assert sender.run_once() == 0  # 500: retry in 5 s
    assert sender.run_once() == 0  # not due yet: nothing sent
    assert len(_Receiver.got) == 1
    env.clock.advance(5)
    assert sender.run_once() == 0  # 500 again: next in 10 s
    env.clock.advance(9)
    sender.run_once()
    assert len(_Receiver.got) == 2
    env.clock.advance(1)
    assert sender.run_once() == 1
    deliveries = env.admin.get("/api/webhooks/deliveries").json()
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [("accept", "delivered", 3)]

    headers, body = _Receiver.got[-1]
    expected = hmac.new(secret.encode(), f"{headers['X-XL-Timestamp']}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-XL-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert (payload["event"], payload["data"]["order_id"], payload["data"]["state"]) == ("accept", oid, "accepted")


def test_the_feed_filters_by_order_state_and_pages_back_by_cursor(env: Env) -> None:
    # Four cameras' incidents, one order each; two of them closed by rejection.
    cams = ["cam-lawn", "cam-night", "cam-lawn", "cam-night"]
    alerts = [env.store(alert_msg(camera=c, ts=T0 + timedelta(minutes=10 * i))) for i, c in enumerate(cams)]
    for a in alerts[:2]:
        assert env.act(env.admin, env.order_of_alert(a.id)["id"], "reject", reason="false_alarm").status_code == 200

    rejected = env.admin.get("/api/alerts", params={"state": "rejected"}).json()
    open_ = env.admin.get("/api/alerts", params=[("state", s) for s in ("new", "accepted")]).json()
    assert [x["id"] for x in rejected["items"]] == [alerts[1].id, alerts[0].id] and rejected["total"] == 2
    assert [x["id"] for x in open_["items"]] == [alerts[3].id, alerts[2].id] and open_["total"] == 2
    assert env.admin.get("/api/alerts", params={"state": "closed"}).json()["total"] == 0
    assert env.admin.get("/api/alerts", params={"state": "nonsense"}).status_code == 422

    # Paging back by cursor while alerts arrive: each page continues where the last one ended,
    # newer arrivals do not shift it (an offset would repeat the last alert of the first page).
    first = env.admin.get("/api/alerts", params={"limit": 2}).json()
    late = env.store(alert_msg(camera="cam-lawn", ts=T0 + timedelta(hours=2)))
    second = env.admin.get("/api/alerts", params={"limit": 2, "before": first["items"][-1]["id"]}).json()
    assert [x["id"] for x in first["items"] + second["items"]] == [a.id for a in reversed(alerts)]
    assert second["total"] == 5  # the filters' total, the cursor aside
    # A cursor at a capture time shared by two alerts: the lower id comes after.
    twin = env.store(alert_msg(camera="cam-night", ts=alerts[1].ts))
    after_twin = env.admin.get("/api/alerts", params={"limit": 1, "before": twin.id}).json()
    assert after_twin["items"][0]["id"] == alerts[1].id
    assert late.id not in [x["id"] for x in second["items"]]

    # The cursor is an alert the user may see: another station's operator gets 404, as for its detail.
    other = env.user("op9", "operator", station="ly-s02")
    assert other.get("/api/alerts", params={"before": alerts[0].id}).status_code == 404
    assert env.admin.get("/api/alerts", params={"before": 10**6}).status_code == 404


def test_the_feed_keeps_a_time_range_of_capture_times(env: Env) -> None:
    alerts = [env.store(alert_msg(camera=c, ts=T0 + timedelta(minutes=30 * i)))
              for i, c in enumerate(["cam-lawn", "cam-night"] * 3)]  # fmt: skip

    def ids(**params: object) -> tuple[list[int], int]:
        page = env.admin.get("/api/alerts", params=params)
        assert page.status_code == 200, page.text
        return [x["id"] for x in page.json()["items"]], page.json()["total"]

    # [since, until): from the second alert's time up to (not including) the fifth's.
    since, until = (T0 + timedelta(minutes=30)).isoformat(), (T0 + timedelta(minutes=120)).isoformat()
    assert ids(since=since, until=until) == ([a.id for a in reversed(alerts[1:4])], 3)
    # The same instants written in Beijing time (+08:00), as the console sends them.
    bj = timezone(timedelta(hours=8))
    assert ids(since=(T0 + timedelta(minutes=30)).astimezone(bj).isoformat(), until=until)[1] == 3
    # With the other filters and the cursor: cam-night only, paged back one at a time.
    first, total = ids(since=since, until=until, camera="cam-night", limit=1)
    rest, _ = ids(since=since, until=until, camera="cam-night", limit=5, before=first[0])
    assert (first + rest, total) == ([alerts[3].id, alerts[1].id], 2)
    assert ids(since=since)[1] == 5 and ids(until=since)[1] == 1
    # A time without its offset is ambiguous (whose midnight?), and an empty range is a mistake: 422.
    assert env.admin.get("/api/alerts", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    r = env.admin.get("/api/alerts", params={"since": until, "until": since})
    assert r.status_code == 422 and "since must be before until" in r.text


def test_the_feed_exports_as_csv_with_its_filters_and_scope(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "PAGE", 2)  # several pages along the cursor
    alerts = [env.store(alert_msg(camera=c, ts=T0 + timedelta(minutes=30 * i)))
              for i, c in enumerate(["cam-lawn", "cam-night"] * 3)]  # fmt: skip
    assert env.act(env.admin, env.order_of_alert(alerts[1].id)["id"], "reject", reason="false_alarm").status_code == 200

    def table(client, **params: object) -> list[dict[str, str]]:
        r = client.get("/api/alerts/export.csv", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
        assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads the Chinese names
        return list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))

    since, until = (T0 + timedelta(minutes=30)).isoformat(), (T0 + timedelta(minutes=150)).isoformat()
    rows = table(env.admin, since=since, until=until)
    feed = env.admin.get("/api/alerts", params={"since": since, "until": until, "limit": 50}).json()["items"]
    assert [int(r["alert_id"]) for r in rows] == [a["id"] for a in feed] == [a.id for a in reversed(alerts[1:5])]
    night = next(r for r in rows if int(r["alert_id"]) == alerts[1].id)
    assert (night["station_name"], night["camera"], night["order_state"]) == ("溧城镇联动站", "cam-night", "rejected")
    assert night["camera_name"] and night["captured_at"] == alerts[1].ts.astimezone(timezone(timedelta(hours=8))).isoformat()
    assert night["snapshot_url"] == f"/api/alerts/{alerts[1].id}/snapshot" and night["priority"]
    assert [int(r["alert_id"]) for r in table(env.admin, state="rejected")] == [alerts[1].id]
    # Another station's operator exports what they may see: the header only.
    assert table(env.user("op9", "operator", station="ly-s02")) == []
    assert env.admin.get("/api/alerts/export.csv", params={"since": until, "until": since}).status_code == 422


def test_the_public_view_of_a_case_by_its_rating_code(env: Env) -> None:
    oid = env.order_of_alert(env.store(alert_msg()).id)["id"]
    code = env.admin.get(f"/api/orders/{oid}").json()["rating_code"]
    public = env.admin.__class__(env.app)  # no credentials

    before = public.get(f"/api/public/orders/{code}").json()
    assert before == {"order_id": oid, "category": "intrusion", "town": "溧城镇", "state": "new",
                      "created_at": before["created_at"], "closed_at": None, "rating": None, "can_rate": False}  # fmt: skip
    for action, kw in [("accept", {}), ("verify", {}), ("inform", {"worker_id": LAWN_WORKER}), ("act", {}), ("feedback", {}), ("close", {})]:
        assert env.act(env.admin, oid, action, **kw).status_code == 200
    closed = public.get(f"/api/public/orders/{code}").json()
    assert (closed["state"], closed["can_rate"]) == ("closed", True) and closed["closed_at"] is not None
    assert public.post(f"/api/public/orders/{code}/rating", json={"rating": 4}).status_code == 204
    rated = public.get(f"/api/public/orders/{code}").json()
    assert (rated["rating"], rated["can_rate"]) == (4, False)
    assert public.get("/api/public/orders/nope").status_code == 404
    assert public.get(f"/api/public/orders/{'x' * 65}").status_code == 422
