"""``xl-central serve``: run the central service under uvicorn; ``xl-central user``: accounts."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from central import usercli
from central.alerts.broadcast import Broadcaster
from central.app import create_app
from central.settings import CentralSettings
from xltools.logs import log_format, setup_logging


class _Server(uvicorn.Server):
    """Ends live SSE streams when shutdown starts.

    uvicorn waits for open responses before running the app's lifespan shutdown, and an SSE
    stream never finishes by itself, so without this every open console delays the exit.
    """

    def __init__(self, config: uvicorn.Config, broadcaster: Broadcaster) -> None:
        super().__init__(config)
        self._broadcaster = broadcaster

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._broadcaster.close()
        await super().shutdown(sockets)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-central", description="Xueliang central service")
    parser.add_argument("--env-file", type=Path, metavar="FILE",
                        help="read XL_CENTRAL_* settings from FILE (KEY=VALUE lines, as systemd's "
                             "EnvironmentFile, e.g. /etc/xueliang/central.env); the environment wins")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API and console, consume alerts from MQTT")
    serve.add_argument("--host", dest="http_host", help="HTTP bind address (XL_CENTRAL_HTTP_HOST)")
    serve.add_argument("--port", dest="http_port", type=int, help="HTTP port (XL_CENTRAL_HTTP_PORT)")
    serve.add_argument(
        "--db", dest="database_url", metavar="URL", help="SQLAlchemy URL (XL_CENTRAL_DATABASE_URL)"
    )
    serve.add_argument(
        "--media-dir", dest="media_dir", type=Path, help="snapshot store (XL_CENTRAL_MEDIA_DIR)"
    )
    serve.add_argument("--mqtt-host", dest="mqtt_host", help="broker host (XL_CENTRAL_MQTT_HOST)")
    serve.add_argument("--mqtt-port", dest="mqtt_port", type=int, help="broker port (XL_CENTRAL_MQTT_PORT)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.add_argument("--log-format", choices=["text", "json"], help="text or JSON lines (env XL_LOG_FORMAT)")
    usercli.add_parser(sub)
    return parser


def load_env_file(path: Path) -> None:
    """KEY=VALUE lines into the environment, for keys it does not have yet; # comments, quotes."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SystemExit(f"xl-central: cannot read --env-file {path}: {exc.strerror}") from exc
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise SystemExit(f"xl-central: {path}:{n}: expected KEY=VALUE, got {line[:60]!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.env_file is not None:
        load_env_file(args.env_file)
    if args.command == "user":
        try:
            settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
        except ValidationError as exc:
            print(f"xl-central: invalid settings:\n{exc}", file=sys.stderr)
            return 2
        return usercli.run(settings, args)
    setup_logging(args.log_level, log_format(args.log_format))

    setting_keys = ("http_host", "http_port", "database_url", "media_dir", "mqtt_host", "mqtt_port")
    # Flags given on the command line win over the environment.
    overrides: dict[str, Any] = {k: v for k in setting_keys if (v := getattr(args, k)) is not None}
    try:
        settings = CentralSettings(**overrides)
    except ValidationError as exc:
        print(f"xl-central: invalid settings:\n{exc}", file=sys.stderr)
        return 2

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep our plain-text root logging
        access_log=args.access_log,
        # Safety net: cancel whatever still holds a connection this long after shutdown starts.
        timeout_graceful_shutdown=3,
    )
    _Server(config, app.state.broadcaster).run()
    return 0
