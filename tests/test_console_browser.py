"""The operator console in a real browser (Debian's chromium driven by Playwright), against a real
central service, a real Mosquitto and a real MP4 clip.

Screenshots of each page land in test-artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import csv
import io
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
import yaml

from central.alerts.schemas import AlertOut
from central.alerts.service import store_alert
from central.app import create_app
from central.dispatch.routing import LOCAL_TZ, route
from central.settings import CentralSettings
from edge.config import CameraConfig
from edge.geometry import Tripwire
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from tests.conftest import CLIPS, ROOT, Broker, free_port
from tests.dispatchkit import alert_msg
from tests.linkkit import serve_central
from wire import AlertMessage, event_topic
from xltools.procs import start_postgres

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROME_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
OP_PASSWORD = "operator-pass-01"
WORKER_PASSWORD = "worker-pass-0001"

sync_api = pytest.importorskip("playwright.sync_api")

PRIORITY_ZH = {1: "特急", 2: "紧急", 3: "一般", 4: "低"}  # the console's labels (static/i18n.js)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium missing: scripts/install-os-deps installs it"
)


def write_mp4(path: Path, seconds: float = 2.0, fps: int = 10) -> None:
    """A real H.264 MP4 (moving bar), small enough to keep the test fast."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            img = np.full((180, 320, 3), 30, np.uint8)
            img[60:120, (i * 12) % 300 : (i * 12) % 300 + 20] = (255, 80, 80)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@dataclass
class Central:
    url: str
    settings: CentralSettings
    app: object


@pytest.fixture
def central(broker: Broker, tmp_path: Path) -> Iterator[Central]:
    settings = CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db", media_dir=tmp_path / "media", mqtt_host=broker.host,
        mqtt_port=broker.port, mqtt_client_id=f"xl-central-ui-{uuid.uuid4().hex[:8]}", **TEST_AUTH_SETTINGS,
    )  # fmt: skip
    app = create_app(settings)
    with serve_central(app, free_port()) as url:
        with httpx.Client(base_url=url, headers=AUTH) as admin:
            for user in (
                {"username": "op1", "display_name": "溧城值班员", "password": OP_PASSWORD, "role": "operator", "station_id": "ly-s01"},
                {"username": "wang", "display_name": "网格员王", "password": WORKER_PASSWORD, "role": "worker", "worker_id": "w-lc-001-1"},
            ):  # fmt: skip
                assert admin.post("/api/users", json=user).status_code == 201
        yield Central(url, settings, app)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS, headless=True)
        yield b
        b.close()


def login(page: object, url: str, username: str, password: str) -> None:
    page.goto(url + "/")
    page.fill("#login-user", username)
    page.fill("#login-pass", password)
    page.click("#login-submit")
    page.wait_for_selector("#app-view:not([hidden])")


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_operator_dispatches_and_worker_closes(central: Central, broker: Broker, browser: object) -> None:
    ctx_op = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    op = ctx_op.new_page()
    login(op, central.url, "op1", OP_PASSWORD)
    op.wait_for_selector("#conn[data-state=live]")
    assert op.locator("#login-view").is_hidden()

    # An alert published to Mosquitto appears in the open feed within 2 s, without a reload.
    msg = alert_msg(ts=datetime.now(UTC))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    t0 = time.monotonic()
    pub.publish(event_topic(msg.station, msg.camera), msg.to_json(), qos=1)
    card = op.locator(".card[data-incident]").first
    card.wait_for(timeout=2000)
    latency_s = time.monotonic() - t0
    pub.loop_stop()
    pub.disconnect()
    assert latency_s < 2.0
    # The reference data makes intrusion urgent (紧急) by day and one step more (特急) at night
    # (22-06 local): the card shows what the router gives at the alert's own time.
    with central.app.state.session_factory() as session:
        prio = route(session, msg.station, msg.camera, msg.rule_kind, msg.rule, msg.ts).priority
    night = msg.ts.astimezone(LOCAL_TZ).hour >= 22 or msg.ts.astimezone(LOCAL_TZ).hour < 6
    assert prio == (1 if night else 2)
    assert "区域入侵" in card.inner_text() and PRIORITY_ZH[prio] in card.inner_text()
    shot(op, "01-feed-operator")

    # The station's clip has arrived (stored beside the snapshot, where the media receiver puts it).
    day = msg.ts.astimezone(UTC).strftime("%Y-%m-%d")
    write_mp4(central.settings.media_dir / day / f"{msg.event_id}.mp4")

    card.click()
    op.wait_for_selector("#order-panel[data-state=new]")
    assert op.eval_on_selector("#incident-snapshot", "img => img.complete && img.naturalWidth > 0")
    op.wait_for_selector("#incident-clip")
    played = op.evaluate(
        """async () => { const v = document.querySelector('#incident-clip'); v.muted = true; await v.play();
           await new Promise(r => setTimeout(r, 600)); return v.currentTime; }"""
    )
    assert played > 0.1
    assert sorted(
        op.eval_on_selector_all("#actions [data-action]", "bs => bs.map(b => b.dataset.action)")
    ) == ["accept", "reject"]
    shot(op, "02-incident-new")

    for action, state in [("accept", "accepted"), ("verify", "verified"), ("inform", "dispatched")]:
        op.fill(f"[data-note={action}]", f"{action} by op1")
        op.click(f"#actions [data-action={action}]")
        op.wait_for_selector(f"#order-panel[data-state={state}]")
    assert "w-lc-001-1" in op.inner_text(".kv.assignee")
    assert op.locator("#actions [data-action]").count() == 1  # only escalate is left to the station
    shot(op, "03-incident-dispatched")

    # The grid worker, in another browser session, sees only their order and closes it.
    other = alert_msg(station="ly-s02", camera="cam-archive", ts=datetime.now(UTC))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish(event_topic(other.station, other.camera), other.to_json(), qos=1).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    ctx_w = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    worker = ctx_w.new_page()
    login(worker, central.url, "wang", WORKER_PASSWORD)
    worker.wait_for_selector("#orders-body tr[data-order]")
    assert worker.locator("#orders-body tr").count() == 1
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        deadline = time.monotonic() + 5
        while admin.get("/api/orders").json()["total"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    worker.reload()
    worker.wait_for_selector("#orders-body tr[data-order]")
    assert worker.locator("#orders-body tr").count() == 1  # the ly-s02 order is not theirs
    shot(worker, "04-worker-orders")
    worker.click("#orders-body tr[data-order]")
    worker.wait_for_selector("#order-panel[data-state=dispatched]")
    for action, state in [("act", "in_progress"), ("feedback", "resolved"), ("close", "closed")]:
        worker.fill(f"[data-note={action}]", f"{action} by wang")
        worker.click(f"#actions [data-action={action}]")
        worker.wait_for_selector(f"#order-panel[data-state={state}]")
    shot(worker, "05-worker-closed")

    # The operator's page follows the order live; its history shows every step with the actors.
    op.wait_for_selector("#order-panel[data-state=closed]", timeout=5000)
    steps = op.eval_on_selector_all("#history li", "lis => lis.map(li => li.dataset.action)")
    assert steps == ["create", "accept", "verify", "inform", "act", "feedback", "close"]
    text = op.inner_text("#history")
    assert "op1 (operator)" in text and "wang (worker)" in text and "feedback by wang" in text
    shot(op, "06-incident-history")

    # English switch; health wall and statistics render.
    op.click("header .lang-toggle")
    op.wait_for_selector("text=Work order")
    op.goto(central.url + "/#/health")
    op.wait_for_selector(".tile[data-station=ly-s01]")
    assert op.locator(".tile").count() == 1  # an operator sees their own station
    shot(op, "07-health-operator")
    ctx_op.close()
    ctx_w.close()


def ingest(central: Central, msg: AlertMessage) -> AlertOut:
    """Store an alert as the ingest worker does, then run its hook (incident, order, announcement)."""
    with central.app.state.session_factory() as session:
        row, _ = store_alert(session, msg, central.settings.media_dir)
        out = AlertOut.from_row(row)
    central.app.state.runtime.on_alert_stored(out)
    return out


def seed_history(central: Central, n: int = 60) -> None:
    """A week of ``n`` alerts over several stations and rules (one incident each), every other order
    accepted, through the ingest hook."""
    cams = [("ly-s01", "cam-lawn"), ("ly-s02", "cam-archive"), ("ly-s05", "cam-road"), ("ly-s07", "cam-market"),
            ("ly-s11", "cam-depot")]  # fmt: skip
    kinds = ["intrusion", "loitering", "crowd", "stationary_vehicle", "line_crossing"]
    now = datetime.now(UTC)
    for i in range(n):
        station, camera = cams[i % len(cams)]
        ts = now - timedelta(days=i % 7, minutes=7 * i)
        ingest(central, alert_msg(station=station, camera=camera, ts=ts, rule_kind=kinds[(i * 3) % len(kinds)], seed=i))
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        for o in admin.get("/api/orders", params={"limit": 500}).json()["items"][::2]:
            admin.post(f"/api/orders/{o['id']}/actions", json={"action": "accept"})


def test_dispatcher_sees_health_wall_and_stats(central: Central, browser: object) -> None:
    seed_history(central)
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        user = {
            "username": "disp",
            "display_name": "县中心调度员",
            "password": "dispatcher-pass",
            "role": "dispatcher",
        }
        assert admin.post("/api/users", json=user).status_code == 201
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    login(page, central.url, "disp", "dispatcher-pass")
    page.goto(central.url + "/#/health")
    page.wait_for_selector(".tile[data-station=ly-s12]")
    assert page.locator(".tile").count() == 12
    shot(page, "08-health-wall")
    page.goto(central.url + "/#/stats")
    page.wait_for_selector("#chart-rule svg rect")
    shot(page, "09-stats")
    page.goto(central.url + "/#/feed")
    page.wait_for_selector(".card[data-incident]")
    shot(page, "10-feed-dispatcher")
    page.click("header .lang-toggle")
    page.goto(central.url + "/#/orders")
    page.wait_for_selector("#orders-body tr[data-order]")
    shot(page, "11-orders-english")
    page.click("header .lang-toggle")
    # Wrong password: stays on the login page with a clear message.
    page.click("#logout")
    page.fill("#login-user", "disp")
    page.fill("#login-pass", "wrong-password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "wrong username or password" in page.inner_text("#login-error")
    ctx.close()


# Counts the tones the page plays (a real AudioContext; only OscillatorNode.start is watched).
TONES = """
window.__tones = [];
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__tones.push(this.frequency.value); return start.apply(this, args); };
"""


def test_alerts_arriving_off_the_feed_are_counted_and_chime(central: Central, browser: object) -> None:
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        user = {"username": "disp", "display_name": "调度员", "password": "dispatcher-pass", "role": "dispatcher"}
        assert admin.post("/api/users", json=user).status_code == 201
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        ctx.add_init_script(TONES)
        page = ctx.new_page()
        login(page, central.url, "disp", "dispatcher-pass")
        page.wait_for_selector("#conn[data-state=live]")
        title = page.title()
        # Sound is off until asked for; an alert arriving on the feed in view is neither counted nor heard.
        first = ingest(central, alert_msg(ts=datetime.now(UTC)))
        page.wait_for_selector(f".card[data-id='{first.id}']")
        assert page.evaluate("window.__tones") == [] and page.is_hidden("#feed-unseen")
        page.click("#sound")
        assert page.get_attribute("#sound", "aria-pressed") == "true"
        assert page.evaluate("window.__tones") == [880]  # the sample tone
        # On another tab of the console, arrivals are counted on the feed's tab and in the title, and chime.
        page.goto(central.url + "/#/orders")
        arrived = [ingest(central, alert_msg(station=st, camera=cam, rule_kind=kind, ts=datetime.now(UTC), seed=i))
                   for i, (st, cam, kind) in enumerate([("ly-s05", "cam-road", "crowd"), ("ly-s07", "cam-market", "loitering")])]  # fmt: skip
        page.wait_for_function("document.querySelector('#feed-unseen').textContent === '2'")
        assert page.title() == f"(2) {title}"
        prios = [admin.get(f"/api/alerts/{a.id}").json()["priority"] for a in arrived]
        want = [880] + [f for p in prios for f in ([1320, 1320] if p is not None and p <= 2 else [880])]
        page.wait_for_function(f"window.__tones.length === {len(want)}")
        assert page.evaluate("window.__tones") == want, prios
        shot(page, "22-unseen-alerts-badge")
        # Back on the feed, they are seen: the count goes, and the sound stays on across a reload.
        page.click("[data-tab=feed]")
        page.wait_for_selector(f".card[data-id='{arrived[-1].id}']")
        assert page.is_hidden("#feed-unseen") and page.title() == title
        page.reload()
        page.wait_for_selector("#conn[data-state=live]")
        assert page.get_attribute("#sound", "aria-pressed") == "true"
        ctx.close()


def test_the_feed_and_orders_filter_by_state_and_page_back(central: Central, browser: object) -> None:
    seed_history(central, n=150)  # more than a page (100) of alerts and of orders
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        accepted = admin.get("/api/alerts", params={"state": "accepted", "limit": 500}).json()
        new_orders = admin.get("/api/orders", params={"state": "new", "limit": 500}).json()
        user = {"username": "disp2", "display_name": "调度员", "password": "dispatcher-pass", "role": "dispatcher"}
        assert admin.post("/api/users", json=user).status_code == 201
    assert accepted["total"] == 75 and new_orders["total"] == 75
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    page = ctx.new_page()
    login(page, central.url, "disp2", "dispatcher-pass")
    page.wait_for_selector(".card[data-incident]")
    page.wait_for_selector("#feed-older:not([hidden])")
    assert page.locator(".card").count() == 100
    page.click("#feed-older")
    page.wait_for_selector("#feed-older[hidden]", state="attached")
    ids = page.eval_on_selector_all(".card", "cs => cs.map(c => Number(c.dataset.id))")
    assert len(ids) == len(set(ids)) == 150  # every alert once, newest first
    # A state filter asks the server: all 75 accepted alerts, not those among the newest 100.
    page.select_option("#f-state", "accepted")
    page.wait_for_function("document.querySelector('#count').textContent.endsWith(': 75')")
    assert page.locator(".card").count() == 75 == page.locator(".card .state.s-accepted").count()
    assert sorted(page.eval_on_selector_all(".card", "cs => cs.map(c => Number(c.dataset.id))")) == sorted(
        a["id"] for a in accepted["items"]
    )
    shot(page, "12-feed-accepted")
    # A time range, picked in Beijing time whatever the browser's zone: the accepted alerts of a day.
    bj = timezone(timedelta(hours=8))
    since = (datetime.now(bj) - timedelta(days=3)).replace(second=0, microsecond=0)
    until = since + timedelta(days=1)
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        want = admin.get("/api/alerts", params={"state": "accepted", "since": since.isoformat(),
                                                 "until": until.isoformat(), "limit": 500}).json()  # fmt: skip
    assert 0 < want["total"] < 75
    for sel, t in (("#f-since", since), ("#f-until", until)):
        page.eval_on_selector(sel, "(e, v) => { e.value = v; e.dispatchEvent(new Event('change')); }", t.strftime("%Y-%m-%dT%H:%M"))
    page.wait_for_function(f"document.querySelector('#count').textContent.endsWith(': {want['total']}')")
    shown = page.eval_on_selector_all(".card", "cs => cs.map(c => Number(c.dataset.id))")
    assert sorted(shown) == sorted(a["id"] for a in want["items"])
    # "Export CSV" takes the same filters: the same alerts, as a spreadsheet.
    exported = page.request.get(page.eval_on_selector("#feed-export", "a => a.href"))
    assert exported.ok and sorted(int(r["alert_id"]) for r in csv.DictReader(io.StringIO(exported.body().decode("utf-8-sig")))) == sorted(shown)
    for sel in ("#f-since", "#f-until"):
        page.eval_on_selector(sel, "e => { e.value = ''; e.dispatchEvent(new Event('change')); }")
    page.wait_for_function("document.querySelector('#count').textContent.endsWith(': 75')")
    # The orders page filters by state and loads more than a page.
    page.goto(central.url + "/#/orders")
    page.wait_for_selector("#orders-more:not([hidden])")
    assert page.locator("#orders-body tr").count() == 100
    page.click("#orders-more")
    page.wait_for_function("document.querySelectorAll('#orders-body tr').length === 150")
    page.select_option("#o-state", "new")
    page.wait_for_function("document.querySelector('#orders-count').textContent.endsWith(': 75')")
    rows = page.eval_on_selector_all("#orders-body tr", "rs => rs.map(r => Number(r.dataset.order))")
    assert sorted(rows) == sorted(o["id"] for o in new_orders["items"])
    assert page.locator("#orders-more").is_hidden()
    ctx.close()


def test_an_operator_merges_and_splits_incidents(central: Central, browser: object) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    a1 = ingest(central, alert_msg(ts=t0, seed=1))
    a2 = ingest(central, alert_msg(ts=t0 + timedelta(seconds=30), seed=2))  # joins a1's incident
    b = ingest(central, alert_msg(ts=t0 + timedelta(seconds=400), seed=3))  # same grid and category: a candidate
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        inc_a, inc_b = (admin.get(f"/api/alerts/{x.id}").json()["incident_id"] for x in (a1, b))
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    login(page, central.url, "op1", OP_PASSWORD)
    page.goto(f"{central.url}/#/incident/{inc_a}")
    page.click(f"#merge [data-merge='{inc_b}']")
    page.wait_for_function("document.querySelectorAll('#alert-strip .shot').length === 3")
    assert page.locator("#merge li").count() == 0  # nothing left to merge
    shot(page, "13-incident-merged")
    page.check(f"#alert-strip input[data-split='{a2.id}']")
    page.click("#split")
    page.wait_for_function(f"location.hash.startsWith('#/incident/') && location.hash !== '#/incident/{inc_a}'")
    new_id = int(page.evaluate("location.hash.split('/')[2]"))
    page.wait_for_selector(f"#view-incident[data-incident='{new_id}']")
    assert new_id not in (inc_a, inc_b)
    assert page.eval_on_selector_all("#alert-strip .shot", "s => s.map(x => Number(x.dataset.alert))") == [a2.id]
    page.wait_for_selector("#order-panel[data-state=new]")  # the split-off alert has an order of its own
    page.goto(f"{central.url}/#/incident/{inc_b}")
    page.wait_for_selector(f"#merged-into[href='#/incident/{inc_a}']")
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        left = admin.get(f"/api/incidents/{inc_a}").json()
    assert sorted(x["id"] for x in left["alerts"]) == [a1.id, b.id]
    ctx.close()


LIVE_STATION = """\
station: {{id: ly-s01}}
mqtt: {{host: {host}, port: {port}, stats_interval_s: 1}}
outbox: {{path: "{tmp}/outbox.sqlite"}}
media: {{dir: "{tmp}/edge-media"}}
cameras:
  - id: cam-lawn
    source: {clip}
    realtime: true
    loop: true
"""


def test_a_live_snapshot_comes_back_into_the_incident_view(central: Central, broker: Broker, browser: object, tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    clip = CLIPS / "campus_pedestrians_vtest.avi"  # 768x576
    cfg.write_text(LIVE_STATION.format(host=broker.host, port=broker.port, tmp=tmp_path, clip=clip))
    alert = ingest(central, alert_msg(ts=datetime.now(UTC) - timedelta(minutes=5)))
    edge = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        with httpx.Client(base_url=central.url, headers=AUTH) as admin:
            inc = admin.get(f"/api/alerts/{alert.id}").json()["incident_id"]

            def camera_online() -> bool:
                st = [x for x in admin.get("/api/fleet").json()["stations"] if x["station"] == "ly-s01"]
                return bool(st and st[0]["cameras"] and st[0]["cameras"][0]["fps_in"] > 0)

            deadline = time.monotonic() + 60
            while not camera_online():
                assert time.monotonic() < deadline and edge.poll() is None, "the station's camera never came online"
                time.sleep(0.2)
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        page = ctx.new_page()
        login(page, central.url, "op1", OP_PASSWORD)
        page.goto(f"{central.url}/#/incident/{inc}")
        page.click("#live-snapshot")
        page.wait_for_function("(() => { const i = document.querySelector('#live-image'); return i && i.complete && i.naturalWidth > 0; })()", timeout=40000)
        size = page.evaluate("[document.querySelector('#live-image').naturalWidth, document.querySelector('#live-image').naturalHeight]")
        assert size == [768, 576]  # the camera's own picture, now
        assert page.inner_text("#live-msg") == ""
        shot(page, "14-incident-live-snapshot")
        # The same from the health wall, for a camera with or without incidents.
        page.goto(f"{central.url}/#/health")
        page.click("[data-live='ly-s01/cam-lawn']")
        page.wait_for_function("(() => { const i = document.querySelector('#wall-live-image'); return i && i.complete && i.naturalWidth === 768; })()", timeout=40000)
        assert "cam-lawn" in page.inner_text("#wall-live figcaption")
        shot(page, "15-health-live-view")
        # An installer draws a zone, then a tripwire, on that picture, and gets YAML the agent accepts.
        area = page.locator("#draw-svg").bounding_box()

        def click(fx: float, fy: float) -> None:
            page.mouse.click(area["x"] + fx * area["width"], area["y"] + fy * area["height"])

        corners = [(0.2, 0.3), (0.8, 0.3), (0.8, 0.9), (0.2, 0.9)]
        for fx, fy in corners:
            click(fx, fy)
        zone = yaml.safe_load(page.inner_text("#draw-yaml"))["zones"][0]
        assert np.allclose(zone["points"], corners, atol=0.01), zone
        page.click("#draw-line")
        click(0.5, 0.1)
        click(0.5, 0.8)  # drawn top to bottom: A is the left of the picture (docs/edge.md)
        rule = yaml.safe_load(page.inner_text("#draw-yaml"))["rules"][0]
        cam = CameraConfig(id="c", source="c.mp4", zones=[zone], rules=[rule, {"id": "r", "zone": zone["id"]}])
        wire = Tripwire(*cam.rules[0].line)
        assert np.allclose(cam.rules[0].line, [(0.5, 0.1), (0.5, 0.8)], atol=0.01)
        for side, want in (("a", 1), ("b", -1)):
            b = page.locator(f"#draw-svg text.side-{side}").bounding_box()
            cx, cy = (b["x"] + b["width"] / 2 - area["x"]) / area["width"], (b["y"] + b["height"] / 2 - area["y"]) / area["height"]
            assert wire.side(cx, cy) == want, (side, cx, cy)
        shot(page, "21-health-draw-tripwire")
        page.click("#draw-mask")  # and a motion mask over the top strip (a timestamp, trees)
        for fx, fy in [(0.0, 0.0), (0.4, 0.0), (0.4, 0.1)]:
            click(max(fx, 0.005), fy + 0.005)
        motion = yaml.safe_load(page.inner_text("#draw-yaml"))["motion"]
        assert np.allclose(motion["mask"][0], [(0.005, 0.005), (0.4, 0.005), (0.4, 0.105)], atol=0.01)
        assert CameraConfig(id="c", source="c.mp4", motion=motion).motion.mask == [[tuple(p) for p in motion["mask"][0]]]
        # The wall, left open, follows the station going offline.
        page.wait_for_selector(".tile[data-station=ly-s01].st-online", state="attached")
        edge.send_signal(signal.SIGTERM)
        _, err = edge.communicate(timeout=60)
        assert edge.returncode == 0, err[-2000:]
        page.wait_for_selector(".tile[data-station=ly-s01].st-offline", state="attached", timeout=20000)
        ctx.close()
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()


def test_the_public_rates_a_closed_case_on_its_page(central: Central, browser: object) -> None:
    alert = ingest(central, alert_msg(ts=datetime.now(UTC) - timedelta(minutes=20)))
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        oid = admin.get(f"/api/alerts/{alert.id}").json()["order_id"]
        steps = [("accept", {}), ("verify", {}), ("inform", {"worker_id": "w-lc-001-1"}), ("act", {}), ("feedback", {}), ("close", {})]
        for action, kw in steps:
            assert admin.post(f"/api/orders/{oid}/actions", json={"action": action, **kw}).status_code == 200
        code = admin.get(f"/api/orders/{oid}").json()["rating_code"]
    # The operator's incident view gives the link to send to whoever reported it.
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    op = ctx.new_page()
    login(op, central.url, "op1", OP_PASSWORD)
    op.goto(f"{central.url}/#/incident/{alert_incident(central, alert.id)}")
    link = op.get_attribute("#rating-link", "href")
    assert link == f"rate/{code}" and op.inner_text("#rating-link") == f"{central.url}/rate/{code}"
    shot(op, "16-incident-rating-link")
    ctx.close()
    # The public's page, on a phone, with no login: the case without pictures or places, five stars.
    phone = browser.new_context(viewport={"width": 390, "height": 780}, locale="zh-CN")
    page = phone.new_page()
    page.goto(f"{central.url}/rate/{code}")
    page.wait_for_selector("#rate-form:not([hidden])")
    assert (page.inner_text("#rate-order"), page.inner_text("#rate-category"), page.inner_text("#rate-town")) == (
        f"#{oid}", "区域入侵", "溧城镇")
    assert page.inner_text("#rate-state") == "已结案" and page.locator("img").count() == 0
    page.click(".lang-toggle")  # for a visitor who reads English
    assert (page.inner_text("#rate-category"), page.inner_text("#rate-state")) == ("Intrusion", "Closed")
    page.click(".lang-toggle")
    page.click("[data-stars='2']")
    page.fill("#rate-note", "垃圾还在路边")
    page.click("#rate-submit")
    page.wait_for_selector("#rate-done[data-done='2']")
    assert "重新派遣" in page.inner_text("#rate-done")
    shot(page, "17-public-rating")
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        order = admin.get(f"/api/orders/{oid}").json()
        last = admin.get(f"/api/orders/{oid}/events").json()[-1]
    assert order["state"] == "dispatched"  # a bad rating reopens the case
    assert (last["action"], last["note"]) == ("rate", "垃圾还在路边")
    page.reload()
    page.wait_for_selector("#rate-done:not([hidden])")
    assert page.locator("#rate-form").is_hidden() and page.inner_text("#rate-state") == "已派遣"
    page.goto(f"{central.url}/rate/{'0' * 32}")
    page.wait_for_selector("#rate-error:not([hidden])")
    assert "评价码无效" in page.inner_text("#rate-error") and page.locator("#rate-case").is_hidden()
    phone.close()


def test_an_operator_changes_their_password(central: Central, browser: object) -> None:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    login(page, central.url, "op1", OP_PASSWORD)
    page.click("#pw-open")
    page.fill("#pw-current", "not-my-password")
    page.fill("#pw-new", "a-new-password-2")
    page.fill("#pw-again", "a-new-password-2")
    page.click("#pw-submit")
    page.wait_for_selector("#pw-msg:not([hidden])")
    assert "current password is wrong" in page.inner_text("#pw-msg")
    page.fill("#pw-current", OP_PASSWORD)
    page.fill("#pw-again", "a-new-password-3")
    page.click("#pw-submit")
    page.wait_for_function("document.querySelector('#pw-msg').textContent === '两次输入的新密码不一致'")
    page.fill("#pw-again", "a-new-password-2")
    page.click("#pw-submit")
    page.wait_for_selector("#notice:not([hidden])")
    assert not page.eval_on_selector("#pw-dialog", "d => d.open")
    page.click("#logout")
    page.fill("#login-user", "op1")
    page.fill("#login-pass", OP_PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")  # the old one no longer works
    login(page, central.url, "op1", "a-new-password-2")
    assert "operator" in page.inner_text("#whoami")
    ctx.close()


def test_a_grid_worker_works_from_a_phone(central: Central, browser: object) -> None:
    alert = ingest(central, alert_msg(ts=datetime.now(UTC) - timedelta(minutes=3)))
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        oid = admin.get(f"/api/alerts/{alert.id}").json()["order_id"]
        for action, kw in [("accept", {}), ("verify", {}), ("inform", {"worker_id": "w-lc-001-1"})]:
            assert admin.post(f"/api/orders/{oid}/actions", json={"action": action, **kw}).status_code == 200
    phone = browser.new_context(viewport={"width": 390, "height": 780}, locale="zh-CN")
    page = phone.new_page()
    login(page, central.url, "wang", WORKER_PASSWORD)
    page.wait_for_selector("#orders-body tr[data-order]")
    width = "document.documentElement.scrollWidth"
    assert page.evaluate(width) <= 390  # nothing sticks out sideways: the bar wraps, the table scrolls in its box
    assert page.locator(".tabs a[data-tab=orders]").bounding_box()["height"] < 60  # tab labels on one line
    shot(page, "18-worker-phone-orders")
    page.click("#orders-body tr[data-order]")
    page.wait_for_selector("#order-panel[data-state=dispatched]")
    assert page.evaluate(width) <= 390
    assert page.locator("#live-snapshot").count() == 0  # cameras are for station staff
    page.click("#actions [data-action=act]")
    page.wait_for_selector("#order-panel[data-state=in_progress]")
    shot(page, "19-worker-phone-incident")
    phone.close()


def test_an_admin_manages_users_in_the_console(central: Central, browser: object) -> None:
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        user = {"username": "chief", "display_name": "管理员", "password": "admin-pass-001", "role": "admin"}
        assert admin.post("/api/users", json=user).status_code == 201
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    login(page, central.url, "chief", "admin-pass-001")
    page.click("[data-tab=users]")
    page.wait_for_selector("#users-body tr[data-user=op1]")
    # A grid worker's account: the form asks for the worker, not the station.
    page.fill("#u-username", "li")
    page.fill("#u-name", "网格员李")
    page.select_option("#u-role", "worker")
    assert page.locator("#u-station-box").is_hidden() and page.locator("#u-worker-box").is_visible()
    page.select_option("#u-worker", "w-lc-001-1")
    page.fill("#u-password", "first-pass-li")
    page.click("#u-create")
    page.wait_for_selector("#users-body tr[data-user=li]")
    assert "w-lc-001-1" in page.inner_text("#users-body tr[data-user=li]")
    # A too short password is refused with the field and the reason, not raw JSON.
    page.fill("#users-body tr[data-user=op1] [data-reset-input]", "short")
    page.click("#users-body tr[data-user=op1] [data-reset]")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "op1: new_password: Value error, a password needs at least 10 characters"
    # op1 forgot their password: reset it; then deactivate li.
    page.fill("#users-body tr[data-user=op1] [data-reset-input]", "reset-pass-op1")
    page.click("#users-body tr[data-user=op1] [data-reset]")
    page.wait_for_selector("#notice:not([hidden])")
    page.click("#users-body tr[data-user=li] [data-toggle]")
    page.wait_for_selector("#users-body tr[data-user=li].inactive")
    assert page.locator("#users-body tr[data-user=chief] [data-toggle]").count() == 0  # not yourself
    shot(page, "20-users")
    with httpx.Client(base_url=central.url) as anon:
        assert anon.post("/api/auth/login", json={"username": "op1", "password": "reset-pass-op1"}).status_code == 200
        assert anon.post("/api/auth/login", json={"username": "li", "password": "first-pass-li"}).status_code == 401
    # Other roles do not see the page.
    other = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN").new_page()
    login(other, central.url, "op1", "reset-pass-op1")
    assert other.locator("[data-tab=users]").is_hidden()
    ctx.close()


def alert_incident(central: Central, alert_id: int) -> int:
    with httpx.Client(base_url=central.url, headers=AUTH) as admin:
        return int(admin.get(f"/api/alerts/{alert_id}").json()["incident_id"])


def test_the_console_waits_out_a_database_outage(broker: Broker, browser: object, tmp_path: Path) -> None:
    try:
        pg = start_postgres(tmp_path / "pg")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        engine = sa.create_engine(f"{pg.url}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE xl"))
        engine.dispose()
        settings = CentralSettings(
            database_url=f"{pg.url}/xl", media_dir=tmp_path / "media", mqtt_host=broker.host, mqtt_port=broker.port,
            mqtt_client_id=f"xl-central-ui-{uuid.uuid4().hex[:8]}", **TEST_AUTH_SETTINGS,
        )  # fmt: skip
        with serve_central(create_app(settings), free_port()) as url:
            with httpx.Client(base_url=url, headers=AUTH) as admin:
                user = {"username": "disp", "display_name": "调度员", "password": "dispatcher-pass", "role": "dispatcher"}
                assert admin.post("/api/users", json=user).status_code == 201
            ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
            page = ctx.new_page()
            login(page, url, "disp", "dispatcher-pass")
            pg.pause()
            # Opened (or reloaded) while the database is away: it says why, rather than asking to log in again.
            page.reload()
            page.wait_for_selector("#login-error:not([hidden])")
            assert "中心数据库暂时不可用" in page.inner_text("#login-error")  # in the console's language
            shot(page, "23-console-database-down")
            pg.resume()
            # And comes back by itself, still logged in, once the database is back.
            page.wait_for_selector("#app-view:not([hidden])", timeout=20000)
            page.wait_for_selector("#conn[data-state=live]")
            ctx.close()
    finally:
        pg.stop()


def test_chromium_is_debians() -> None:
    assert shutil.which("chromium") == str(CHROMIUM)
