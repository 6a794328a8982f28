"""Logging of both services: plain text or one JSON object per line, through a QueueHandler.

Hot threads (camera loops, the ingest worker) only put the record on a queue; one listener thread
formats and writes it, so a slow journald or terminal never stalls them. Choose with
``--log-format json`` or ``XL_LOG_FORMAT=json``. JSON lines carry ``ts`` (UTC), ``level``,
``logger``, ``msg``, ``thread`` and any ``extra={...}`` fields (``camera``, ``state``, ...).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import sys
from datetime import UTC, datetime
from typing import IO, Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def log_format(flag: str | None) -> str:
    fmt = (flag or os.environ.get("XL_LOG_FORMAT") or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    return fmt


def setup_logging(level: int | str = logging.INFO, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Route the root logger through a queue to one writer thread (stopped at exit, flushing)."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, out, respect_handler_level=False)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_QueueHandler(q))
    root.setLevel(level)
    listener.start()
    atexit.register(listener.stop)


class _QueueHandler(logging.handlers.QueueHandler):
    """QueueHandler.prepare() merges args into msg (with this format) and keeps the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        # Used by QueueHandler.prepare: the message plus its traceback, without time/level prefixes.
        msg = record.getMessage()
        if record.exc_info:
            msg = f"{msg}\n{logging.Formatter().formatException(record.exc_info)}"
        return msg
