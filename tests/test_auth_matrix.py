"""Authorization matrix: every endpoint x every role x own/other object gives the expected status,
and lists show only what the role may see. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central.fleet import service as fleet
from central.media.models import MediaItem
from tests.dispatchkit import Env, alert_msg, jpeg, make_env

pytest_plugins = ["tests.dispatchkit"]

ROLES = ("admin", "dispatcher", "operator", "worker", "anon")
W_OWN, W_OTHER = "w-lc-001-1", "w-dt-001-1"


@dataclass
class World:
    env: Env
    clients: dict[str, TestClient]
    ids: dict[str, dict[str, int | str]]  # "own"/"other" -> alert, incident, order, command, media ids


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    for env in make_env(db_url, tmp_path):
        ids = {}
        for key, (station, camera, worker) in {"own": ("ly-s01", "cam-lawn", W_OWN), "other": ("ly-s02", "cam-archive", W_OTHER)}.items():
            a = env.store(alert_msg(station=station, camera=camera))
            # a clip for each alert, where the media receiver puts it
            day = a.ts.strftime("%Y-%m-%d")
            for name in (f"{a.event_id}.mp4", f"{a.event_id}.h264.mp4"):  # and the centre's H.264 copy
                (env.settings.media_dir / day / name).write_bytes(b"\x00\x00\x00\x18ftypmp42")
            order = env.order_of_alert(a.id)
            for step in ("accept", "verify"):
                assert env.act(env.admin, order["id"], step).status_code == 200
            assert env.act(env.admin, order["id"], "inform", worker_id=worker).status_code == 200
            ids[key] = {"alert": a.id, "incident": order["incident_id"], "order": order["id"], "rating": order["rating_code"],
                        **_station_objects(env, station, camera)}  # fmt: skip
        clients = {
            "admin": env.admin,
            "dispatcher": env.user("disp", "dispatcher"),
            "operator": env.user("op", "operator", station="ly-s01"),
            "worker": env.user("wk", "worker", worker=W_OWN),
            "anon": TestClient(env.app),
        }
        yield World(env, clients, ids)


def _station_objects(env: Env, station: str, camera: str) -> dict[str, str]:
    """A live-snapshot command of the station, and the picture it brought back (a complete media item)."""
    cmd_id, media_id = uuid.uuid4().hex, uuid.uuid4().hex
    (env.settings.media_dir / "live").mkdir(parents=True, exist_ok=True)
    (env.settings.media_dir / "live" / f"{media_id}.jpg").write_bytes(jpeg())
    with env.app.state.session_factory() as session:
        row = fleet.create_command(session, cmd_id, station, camera, "snapshot", 0.0)
        row.state, row.media_id = "ok", media_id
        session.add(MediaItem(media_id=media_id, station=station, camera=camera, kind="snapshot", content_type="image/jpeg",
                              cmd_id=cmd_id, sha256="0" * 64, size_bytes=1, chunk_bytes=1, count=1, received=1,
                              state="complete", path=f"live/{media_id}.jpg", created_at=env.clock.now()))  # fmt: skip
        session.commit()
    return {"command": cmd_id, "media": media_id}


# (method, path, json body, expected per role as (own, other)); {alert}/{incident}/{order} filled per object.
SEE = {"admin": (200, 200), "dispatcher": (200, 200), "operator": (200, 404), "worker": (200, 404), "anon": (401, 401)}
STAFF_SEE = {**SEE, "worker": (403, 403)}
OBJECT_ENDPOINTS = [
    ("GET", "/api/alerts/{alert}", None, SEE),
    ("GET", "/api/alerts/{alert}/snapshot", None, SEE),
    ("GET", "/api/alerts/{alert}/clip", None, SEE),
    ("GET", "/api/alerts/{alert}/clip/h264", None, SEE),
    ("GET", "/api/incidents/{incident}", None, SEE),
    ("GET", "/api/orders/{order}", None, SEE),
    ("GET", "/api/orders/{order}/events", None, SEE),
    ("GET", "/api/incidents/{incident}/merge-candidates", None, STAFF_SEE),
    # accept is illegal once dispatched: 409 proves the caller got past role and scope checks
    ("POST", "/api/orders/{order}/actions", {"action": "accept"},
     {"admin": (409, 409), "dispatcher": (409, 409), "operator": (409, 404), "worker": (403, 404), "anon": (401, 401)}),
    ("POST", "/api/incidents/{incident}/merge", {"incident_ids": [0]},
     {"admin": (404, 404), "dispatcher": (404, 404), "operator": (404, 404), "worker": (403, 403), "anon": (401, 401)}),
    ("POST", "/api/incidents/{incident}/split", {"alert_ids": [0]},
     {"admin": (409, 409), "dispatcher": (409, 409), "operator": (409, 404), "worker": (403, 403), "anon": (401, 401)}),
    ("POST", "/api/stations/{station}/cameras/{camera}/snapshot-request", None,
     {"admin": (503, 503), "dispatcher": (503, 503), "operator": (503, 404), "worker": (403, 403), "anon": (401, 401)}),
    ("POST", "/api/stations/{station}/cameras/{camera}/clip-request", None,
     {"admin": (503, 503), "dispatcher": (503, 503), "operator": (503, 404), "worker": (403, 403), "anon": (401, 401)}),
    # what a live snapshot brings back: the command's status, then its picture
    ("GET", "/api/commands/{command}", None, STAFF_SEE),
    ("GET", "/api/media/{media}", None, STAFF_SEE),
    # the public's rating page: the code is the key, for anyone who holds it
    ("GET", "/api/public/orders/{rating}", None, {role: (200, 200) for role in ROLES}),
]  # fmt: skip

ADMIN_ONLY = {"admin": 200, "dispatcher": 403, "operator": 403, "worker": 403, "anon": 401}
STAFF = {"admin": 200, "dispatcher": 200, "operator": 200, "worker": 403, "anon": 401}
ANY = {"admin": 200, "dispatcher": 200, "operator": 200, "worker": 200, "anon": 401}
PLAIN_ENDPOINTS = [
    ("GET", "/api/alerts", None, ANY),
    ("GET", "/api/alerts/export.csv", None, ANY),
    ("GET", "/api/incidents", None, ANY),
    ("GET", "/api/orders", None, ANY),
    ("GET", "/api/auth/me", None, ANY),
    ("GET", "/api/auth/tokens", None, ANY),
    ("GET", "/api/reference/stations", None, ANY),
    ("GET", "/api/reference/workers/w-lc-001-1", None, ANY),
    ("GET", "/api/stations/health", None, STAFF),
    ("GET", "/api/stats/alerts-per-day", None, STAFF),
    ("GET", "/api/stats/orders", None, STAFF),
    ("GET", "/api/users", None, ADMIN_ONLY),
    ("GET", "/api/webhooks", None, ADMIN_ONLY),
    ("GET", "/api/webhooks/deliveries", None, ADMIN_ONLY),
    ("POST", "/api/sla/check", None, ADMIN_ONLY),
    ("PUT", "/api/reference/stations/ly-s01", {"name": "溧城镇联动站", "town": "溧城镇"}, ADMIN_ONLY),
    ("PUT", "/api/reference/workers/w-lc-001-1", {"name": "x", "department_id": "grid", "on_duty": True}, ADMIN_ONLY),
    ("POST", "/api/users", {"username": "x1", "display_name": "x", "password": "long-enough-pw", "role": "admin"},
     {**ADMIN_ONLY, "admin": 201}),
    ("POST", "/api/webhooks", {"name": "h", "url": "http://127.0.0.1:9/h", "secret": "0123456789abcdef"},
     {**ADMIN_ONLY, "admin": 201}),
    # one's own password: anyone signed in may try; a wrong current password is 403 for every role
    ("POST", "/api/auth/password", {"current_password": "not-it", "new_password": "long-enough-pw"},
     {"admin": 403, "dispatcher": 403, "operator": 403, "worker": 403, "anon": 401}),
    # an admin resets a password and reactivates an account (user 1 exists: the bootstrap admin)
    ("POST", "/api/users/1/password", {"new_password": "long-enough-pw"}, {**ADMIN_ONLY, "admin": 204}),
    ("POST", "/api/users/1/activate", None, ADMIN_ONLY),
    ("GET", "/api/fleet", None, {**ADMIN_ONLY, "dispatcher": 200}),
    ("GET", "/api/media", None, {**ADMIN_ONLY, "dispatcher": 200}),
]  # fmt: skip


def _fill(path: str, ids: dict[str, int | str], station: str, camera: str) -> str:
    return path.format(station=station, camera=camera, **ids)


def test_every_endpoint_role_and_object(world: World) -> None:
    """One world, every row of both tables; all mismatches reported together."""
    where = {"own": ("ly-s01", "cam-lawn"), "other": ("ly-s02", "cam-archive")}
    wrong = []
    for method, path, body, expected in OBJECT_ENDPOINTS:
        for role in ROLES:
            for i, obj in enumerate(("own", "other")):
                b = body
                if body is not None and "incident_ids" in body:
                    b = {"incident_ids": [world.ids[obj]["incident"] + 1000]}  # unknown: 404 after the role check
                if body is not None and "alert_ids" in body:
                    b = {"alert_ids": [world.ids[obj]["alert"]]}  # the only alert: 409 after the scope check
                url = _fill(path, world.ids[obj], *where[obj])
                got = world.clients[role].request(method, url, json=b).status_code
                if got != expected[role][i]:
                    wrong.append(f"{method} {path} as {role} on {obj}: {got}, expected {expected[role][i]}")
    for method, path, body, expected in PLAIN_ENDPOINTS:
        for role in ROLES:
            got = world.clients[role].request(method, path, json=body).status_code
            if got != expected[role]:
                wrong.append(f"{method} {path} as {role}: {got}, expected {expected[role]}")
    checked = len(OBJECT_ENDPOINTS) * len(ROLES) * 2 + len(PLAIN_ENDPOINTS) * len(ROLES)
    assert not wrong, f"{len(wrong)} of {checked} checks wrong:\n" + "\n".join(wrong)


def test_lists_show_only_what_the_role_may_see(world: World) -> None:
    own, other = world.ids["own"], world.ids["other"]
    expected = {"admin": {own["order"], other["order"]}, "dispatcher": {own["order"], other["order"]},
                "operator": {own["order"]}, "worker": {own["order"]}}  # fmt: skip
    for role, orders in expected.items():
        c = world.clients[role]
        assert {o["id"] for o in c.get("/api/orders").json()["items"]} == orders, role
        assert {i["order"]["id"] for i in c.get("/api/incidents").json()["items"]} == orders, role
        alerts = {a["order_id"] for a in c.get("/api/alerts").json()["items"]}
        assert alerts == orders, role
    assert [s["id"] for s in world.clients["operator"].get("/api/stations/health").json()] == ["ly-s01"]
    assert len(world.clients["dispatcher"].get("/api/stations/health").json()) == 12
    assert set(world.clients["operator"].get("/api/stats/alerts-per-day").json()["by_station"]) == {"ly-s01"}


def test_property_level(world: World) -> None:
    own = world.ids["own"]["order"]
    assert world.clients["worker"].get(f"/api/orders/{own}").json()["rating_code"] is None
    assert world.clients["operator"].get(f"/api/orders/{own}").json()["rating_code"]
    # No mass assignment: unknown fields are refused, not applied.
    r = world.clients["worker"].post(f"/api/orders/{own}/actions", json={"action": "act", "state": "closed"})
    assert r.status_code == 422
    r = world.clients["operator"].post("/api/auth/tokens", json={"name": "t", "role": "admin"})
    assert r.status_code == 422
    # Tokens are per user: another user's token id is not found.
    tid = world.clients["dispatcher"].post("/api/auth/tokens", json={"name": "mine"}).json()["id"]
    assert world.clients["operator"].delete(f"/api/auth/tokens/{tid}").status_code == 404
    assert world.clients["dispatcher"].delete(f"/api/auth/tokens/{tid}").status_code == 204


def test_sse_stream_needs_login_and_is_scoped(world: World) -> None:
    from central.alerts.broadcast import Audience
    from central.auth.schemas import Role
    from central.auth.service import Principal
    from central.notify import accepts

    assert world.clients["anon"].get("/api/alerts/stream").status_code == 401
    op = accepts(Principal(1, "op", Role.OPERATOR, station_id="ly-s01"))
    wk = accepts(Principal(2, "wk", Role.WORKER, worker_id=W_OWN))
    disp = accepts(Principal(3, "d", Role.DISPATCHER))
    assert (op(Audience("ly-s01")), op(Audience("ly-s02"))) == (True, False)
    assert (wk(Audience("ly-s01", W_OWN)), wk(Audience("ly-s01", W_OTHER)), wk(Audience("ly-s01"))) == (True, False, False)
    assert disp(Audience("ly-s02")) is True
