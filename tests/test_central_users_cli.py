"""``xl-central user``: the first accounts of a fresh install, from the box's own settings file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from central.app import create_app
from central.settings import CentralSettings


def xl(env_file: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XL_CENTRAL_")}
    return subprocess.run([sys.executable, "-m", "central", "--env-file", str(env_file), *args],
                          input=stdin, capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def login(client: TestClient, username: str, password: str) -> int:
    return client.post("/api/auth/login", json={"username": username, "password": password}).status_code


def test_the_first_accounts_of_a_fresh_install(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    env_file = tmp_path / "central.env"  # as /etc/xueliang/central.env, read by systemd too
    env_file.write_text(f'# settings\nXL_CENTRAL_DATABASE_URL="sqlite:///{db}"\nXL_CENTRAL_MEDIA_DIR={tmp_path}/media\n')

    added = xl(env_file, "user", "add", "chief", "--role", "admin", "--display-name", "县中心管理员",
               "--password-stdin", stdin="first-password-1\n")  # fmt: skip
    assert added.returncode == 0 and "chief (admin) added" in added.stdout, added.stderr
    op = xl(env_file, "user", "add", "op7", "--role", "operator", "--station", "ly-s07", "--password-stdin",
            stdin="operator-pass-7\n")  # fmt: skip
    assert op.returncode == 0, op.stderr

    # Refused, each with what is wrong, and nothing stored.
    cases = [
        (["user", "add", "chief", "--role", "admin", "--password-stdin"], "long-enough-pw", 1, "exists"),
        (["user", "add", "shorty", "--role", "admin", "--password-stdin"], "short", 2, "at least 10"),
        (["user", "add", "op8", "--role", "operator", "--password-stdin"], "operator-pass-8", 2, "station_id is required"),
        (["user", "add", "op9", "--role", "operator", "--station", "ly-s99", "--password-stdin"], "operator-pass-9", 2,
         "not in the reference data"),
        (["user", "passwd", "nobody", "--password-stdin"], "long-enough-pw", 1, "no user 'nobody'"),
        (["user", "passwd", "chief", "--password-stdin"], "short", 2, "at least 10"),
    ]  # fmt: skip
    for args, password, code, message in cases:
        r = xl(env_file, *args, stdin=password + "\n")
        assert (r.returncode, message in r.stderr) == (code, True), (args, r.returncode, r.stderr)

    settings = CentralSettings(database_url=f"sqlite:///{db}", media_dir=tmp_path / "media", scheduler_enabled=False)
    with TestClient(create_app(settings, start_ingest=False)) as client:
        assert login(client, "chief", "first-password-1") == 200
        me = client.get("/api/auth/me").json()
        assert (me["role"], me["display_name"]) == ("admin", "县中心管理员")
        assert login(client, "op7", "operator-pass-7") == 200 and client.get("/api/auth/me").json()["station_id"] == "ly-s07"
        assert login(client, "shorty", "short") == 401 and login(client, "op9", "operator-pass-9") == 401

        assert xl(env_file, "user", "passwd", "chief", "--password-stdin", stdin="second-password-2\n").returncode == 0
        assert login(client, "chief", "first-password-1") == 401
        assert login(client, "chief", "second-password-2") == 200


def test_a_broken_env_file_names_the_line(tmp_path: Path) -> None:
    env_file = tmp_path / "central.env"
    env_file.write_text("XL_CENTRAL_DATABASE_URL=sqlite:///x.db\nthis line is wrong\n")
    r = xl(env_file, "user", "passwd", "chief", "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode != 0 and f"{env_file}:2: expected KEY=VALUE" in r.stderr
    r = xl(tmp_path / "missing.env", "user", "passwd", "chief")
    assert r.returncode != 0 and "cannot read --env-file" in r.stderr and "missing.env" in r.stderr
