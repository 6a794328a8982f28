#!/usr/bin/env python3
"""The demo: a private Mosquitto, the central service and 12 station agents replaying shared clips.

Run through `make demo`. Prints the console URL; Ctrl-C stops every process cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edge.config import load_station_config
from edge.errors import XueliangError
from edge.models import resolve_model
from xltools.procs import free_port, start_mosquitto, wait_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen:
    """Start a child with its output in a log file (the child keeps its own handle)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # same clean shutdown as Ctrl-C


def _stop(procs: list[subprocess.Popen], timeout_s: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _preflight(configs: list[Path]) -> None:
    """Fail before starting anything, with one clear message per problem."""
    problems = []
    models = set()
    for c in configs:
        try:
            cfg = load_station_config(c)
        except XueliangError as exc:
            problems.append(str(exc))
            continue
        models.add(cfg.detector.model)
        for cam in cfg.cameras:
            if not cam.is_url and not Path(cam.source).is_file():
                problems.append(
                    f"{c}: camera {cam.id}: clip not found: {cam.source} "
                    f"(the demo replays the shared clips; put the shared folder beside the project as ../shared)"
                )
    for m in sorted(models):
        try:
            resolve_model(m)
        except XueliangError as exc:
            problems.append(str(exc))
    if problems:
        sys.exit("demo cannot start:\n  " + "\n  ".join(problems))


# Console logins made for each demo run (fresh passwords every time, never committed).
DEMO_USERS = [
    ("admin", "管理员 Admin", "admin", {}),
    ("dispatcher", "县中心调度员 Dispatcher", "dispatcher", {}),
    ("op-s01", "溧城站值班员 Station operator", "operator", {"station_id": "ly-s01"}),
    ("wang", "网格员 Grid worker (LY-LC-001)", "worker", {"worker_id": "w-lc-001-1"}),
]


def _write_users(path: Path) -> list[tuple[str, str, str]]:
    """A users file for the central service with random passwords; returns (user, role, password)."""
    rows, out = [], []
    for username, name, role, scope in DEMO_USERS:
        password = secrets.token_urlsafe(9)
        rows.append({"username": username, "display_name": name, "password": password, "role": role, **scope})
        out.append((username, role, password))
    path.write_text(
        json.dumps({"users": rows}, ensure_ascii=False, indent=1), encoding="utf-8"
    )  # YAML is JSON
    path.chmod(0o600)
    return out


def _alert_total(url: str, token: str) -> int | None:
    try:
        req = urllib.request.Request(
            f"{url}/api/alerts?limit=1", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=2) as r:
            return int(json.load(r)["total"])
    except (OSError, ValueError, KeyError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stations", type=int, default=12, help="how many station configs to start")
    ap.add_argument("--port", type=int, default=8080, help="console port (a free one if taken)")
    ap.add_argument("--duration", type=float, default=0, help="stop by itself after this many seconds")
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "demo")
    args = ap.parse_args()

    configs = sorted((ROOT / "configs" / "stations").glob("*.yaml"))[: args.stations]
    _preflight(configs)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)  # every demo starts from an empty store
    logs = args.workdir / "logs"
    logs.mkdir(parents=True)

    broker = start_mosquitto(args.workdir / "mosquitto")
    procs: list[subprocess.Popen] = []
    try:
        port = args.port
        try:
            wait_port("127.0.0.1", port, timeout_s=0.2)
            port = free_port()  # something already listens on the requested port
        except TimeoutError:
            pass
        url = f"http://127.0.0.1:{port}"
        logins = _write_users(args.workdir / "users.yaml")
        token = f"xl_demo_{secrets.token_urlsafe(24)}"
        os.environ["XL_CENTRAL_USERS_FILE"] = str(args.workdir / "users.yaml")
        os.environ["XL_CENTRAL_BOOTSTRAP_ADMIN_TOKEN"] = token  # for the progress lines below
        # One link that opens the console signed in as the county dispatcher (sees every station).
        link_secret = secrets.token_urlsafe(32)
        os.environ["XL_CENTRAL_LOGIN_LINK_SECRET"] = link_secret
        os.environ["XL_CENTRAL_LOGIN_LINK_USER"] = "dispatcher"
        central = _spawn(
            [
                str(BIN / "xl-central"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                f"sqlite:///{args.workdir / 'central.db'}",
                "--media-dir",
                str(args.workdir / "media"),
                "--mqtt-host",
                "127.0.0.1",
                "--mqtt-port",
                str(broker.port),
            ],
            logs / "central.log",
        )
        procs.append(central)
        wait_port("127.0.0.1", port, timeout_s=30, proc=central)
        for c in configs:
            procs.append(
                _spawn(
                    [str(BIN / "xl-edge"), "run", "--config", str(c), "--broker", f"127.0.0.1:{broker.port}"],
                    logs / f"{c.stem}.log",
                )
            )
        print(f"\n  Xueliang demo: {len(configs)} stations -> Mosquitto 127.0.0.1:{broker.port} -> central")
        print(f"  Console: {url}/api/auth/link/{link_secret}")
        print("           (opens signed in as the dispatcher; or log in at the console with, new each run:)")
        for username, role, password in logins:
            print(f"    {username:<11} {password:<14} {role}")
        print(f"  Logs:    {logs}/   (Ctrl-C stops everything)\n", flush=True)

        stop_at = time.monotonic() + args.duration if args.duration else None
        signal.signal(signal.SIGTERM, _on_sigterm)
        while stop_at is None or time.monotonic() < stop_at:
            time.sleep(10)
            dead = [p for p in procs if p.poll() is not None]
            if central in dead:
                print(f"central service exited ({central.returncode}); see {logs / 'central.log'}")
                return 1
            total = _alert_total(url, token)
            print(
                f"  alerts stored: {total if total is not None else '?'}"
                f"   agents running: {len(procs) - 1 - len(dead)}/{len(procs) - 1}",
                flush=True,
            )
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        _stop(list(reversed(procs)))
        broker.stop()
    print("demo stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
