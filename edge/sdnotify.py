"""A tiny sd_notify client: datagrams to ``$NOTIFY_SOCKET`` (AF_UNIX; ``@name`` is the abstract
namespace), as systemd's ``Type=notify`` and ``WatchdogSec=`` expect. No dependency, never raises:
without ``NOTIFY_SOCKET`` (not under systemd, tests, containers) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


class SystemdNotifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        self.sent = 0
        self.errors = 0
        # WATCHDOG_USEC is meant for us unless WATCHDOG_PID names another process.
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else 0.0
        self.last_ping = 0.0
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def ping_every_s(self) -> float:
        """Half the watchdog period, as sd_watchdog_enabled(3) advises (0: no watchdog)."""
        return self.watchdog_s / 2

    def notify(self, *fields: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping if half the watchdog period has passed since the last ping; True when sent."""
        if not self.watchdog_s:
            return False
        now = time.monotonic() if now is None else now
        if now - self.last_ping < self.ping_every_s:
            return False
        self.last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
