"""Password login (argon2id), session cookie, API tokens, rate limiting; migrations match the models."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from central.auth.service import Passwords
from central.db import Base, alembic_config, make_engine
from central.models import import_all
from central.settings import CentralSettings
from tests.dispatchkit import PASSWORD, Env

pytest_plugins = ["tests.dispatchkit"]


def test_login_sets_a_session_cookie_and_logout_ends_it(env: Env) -> None:
    env.user("op", "operator", station="ly-s01")
    browser = TestClient(env.app)
    assert browser.get("/api/auth/me").status_code == 401
    r = browser.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert browser.get("/api/auth/me").json()["station_id"] == "ly-s01"
    assert browser.post("/api/auth/logout").status_code == 204
    assert browser.get("/api/auth/me").status_code == 401


def test_wrong_passwords_are_rate_limited(env: Env) -> None:
    env.user("disp", "dispatcher")
    c = TestClient(env.app)
    for _ in range(env.settings.login_max_failures):
        assert c.post("/api/auth/login", json={"username": "disp", "password": "nope"}).status_code == 401
    locked = c.post("/api/auth/login", json={"username": "disp", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert c.post("/api/auth/login", json={"username": "ghost", "password": "x"}).status_code == 429  # same address
    env.clock.advance(env.settings.login_window_s + 1)
    assert c.post("/api/auth/login", json={"username": "disp", "password": PASSWORD}).status_code == 200


def test_users_change_their_own_password_given_the_current_one(env: Env) -> None:
    op = env.user("op", "operator", station="ly-s01")
    new = {"current_password": PASSWORD, "new_password": "another-password-1"}
    assert TestClient(env.app).post("/api/auth/password", json=new).status_code == 401  # not signed in
    assert op.post("/api/auth/password", json={**new, "new_password": "short"}).status_code == 422
    wrong = op.post("/api/auth/password", json={**new, "current_password": "not-it"})
    assert wrong.status_code == 403 and "current password is wrong" in wrong.json()["detail"]
    assert op.post("/api/auth/password", json=new).status_code == 204
    login = TestClient(env.app)
    assert login.post("/api/auth/login", json={"username": "op", "password": PASSWORD}).status_code == 401
    assert login.post("/api/auth/login", json={"username": "op", "password": "another-password-1"}).status_code == 200
    # Guessing the current password is rate limited with the logins.
    for _ in range(env.settings.login_max_failures):
        op.post("/api/auth/password", json={**new, "current_password": "guess"})
    assert op.post("/api/auth/password", json={**new, "current_password": "another-password-1"}).status_code == 429


def test_api_tokens_work_expire_and_revoke(env: Env) -> None:
    c = env.user("disp", "dispatcher")
    made = c.post("/api/auth/tokens", json={"name": "grid-platform", "expires_in_s": 3600})
    assert made.status_code == 201
    token = made.json()["token"]
    bearer = TestClient(env.app, headers={"Authorization": f"Bearer {token}"})
    assert bearer.get("/api/orders").status_code == 200
    env.clock.advance(3601)
    assert bearer.get("/api/orders").status_code == 401
    fresh = c.post("/api/auth/tokens", json={"name": "again"}).json()
    bearer = TestClient(env.app, headers={"Authorization": f"Bearer {fresh['token']}"})
    assert bearer.get("/api/orders").status_code == 200
    assert c.delete(f"/api/auth/tokens/{fresh['id']}").status_code == 204
    assert bearer.get("/api/orders").status_code == 401
    assert TestClient(env.app, headers={"Authorization": "Basic abc"}).get("/api/orders").status_code == 401


def test_deactivated_users_are_locked_out(env: Env) -> None:
    c = env.user("op", "operator", station="ly-s01")
    uid = c.get("/api/auth/me").json()["id"]
    assert env.admin.post(f"/api/users/{uid}/deactivate").status_code == 200
    assert c.get("/api/orders").status_code == 401
    assert env.admin.post(f"/api/users/{uid}/activate").json()["active"] is True
    assert c.get("/api/orders").status_code == 200  # its tokens work again


def test_an_admin_resets_a_forgotten_password(env: Env) -> None:
    c = env.user("op", "operator", station="ly-s01")
    uid = c.get("/api/auth/me").json()["id"]
    assert env.admin.post(f"/api/users/{uid}/password", json={"new_password": "short"}).status_code == 422
    assert c.post(f"/api/users/{uid}/password", json={"new_password": "reset-by-me-01"}).status_code == 403
    assert env.admin.post(f"/api/users/{uid}/password", json={"new_password": "reset-by-admin-1"}).status_code == 204
    assert env.admin.post("/api/users/999999/password", json={"new_password": "reset-by-admin-1"}).status_code == 404
    login = TestClient(env.app)
    assert login.post("/api/auth/login", json={"username": "op", "password": PASSWORD}).status_code == 401
    assert login.post("/api/auth/login", json={"username": "op", "password": "reset-by-admin-1"}).status_code == 200


def test_production_password_hash_is_slow_argon2id() -> None:
    s = CentralSettings()
    assert (s.password_hash_time_cost, s.password_hash_memory_kib) == (3, 65536)
    stored = Passwords(1, 1024).hash("pw")
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, "pw")


def test_migrations_create_exactly_the_models(tmp_path: Path, db_url: str) -> None:
    """A fresh database migrated by Alembic alone has every table and column the models declare."""
    import_all()
    engine = make_engine(db_url)
    try:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")  # Alembic alone: no create_all to paper over a missing migration
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert sa.inspect(conn).has_table("alembic_version")
        mine = {t for t in Base.metadata.tables if not t.startswith(("fleet", "media", "station_", "health_", "evidence"))}
        relevant = [d for d in diff if _table_of(d) in mine]
        assert relevant == []
        assert {_table_of(d) for d in diff} <= set(Base.metadata.tables) - mine  # others' tables, not yet migrated
    finally:
        engine.dispose()


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:] if isinstance(item, tuple) else ():
        if isinstance(part, sa.Table):
            return part.name
        if isinstance(part, sa.Index | sa.Column) and getattr(part, "table", None) is not None:
            return part.table.name
        if isinstance(part, str):
            return part
    return None


def test_sign_in_link_is_off_by_default_and_opens_the_console_for_its_user(db_url: str, tmp_path: Path) -> None:
    from tests.dispatchkit import make_env

    for env in make_env(db_url, tmp_path / "off"):
        assert TestClient(env.app).get("/api/auth/link/" + "x" * 43, follow_redirects=False).status_code == 404
    secret = "s" * 43
    for env in make_env(db_url, tmp_path / "on", login_link_secret=secret, login_link_user="disp"):
        env.user("disp", "dispatcher")
        browser = TestClient(env.app)
        assert browser.get("/api/auth/link/" + "t" * 43, follow_redirects=False).status_code == 404
        assert browser.get("/api/auth/me").status_code == 401
        r = browser.get(f"/api/auth/link/{secret}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        me = browser.get("/api/auth/me").json()
        assert me["username"] == "disp" and me["role"] == "dispatcher"
