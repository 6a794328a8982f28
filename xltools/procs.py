"""Start local processes (a private Mosquitto, our services) on free ports and wait for them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout_s: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def mosquitto_path() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise FileNotFoundError(
            "mosquitto is not installed: run `make setup` (it installs it) or apt-get install mosquitto"
        )
    return exe


@dataclass
class Broker:
    host: str
    port: int
    proc: subprocess.Popen
    conf: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_mosquitto(workdir: Path, port: int | None = None, extra_conf: str = "") -> Broker:
    """A private broker on 127.0.0.1:port (a free one by default), configured in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = workdir / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        + ("" if "allow_anonymous" in extra_conf else "allow_anonymous true\n")
        + "persistence false\n"
        # As root, mosquitto drops to user "mosquitto", which could not read our private files
        # (password_file, acl_file in a 0700 temp dir); a private test broker keeps our user.
        + ("user root\n" if os.geteuid() == 0 and "\nuser " not in f"\n{extra_conf}" else "")
        + extra_conf
    )
    log = open(workdir / f"mosquitto-{port}.log", "ab")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen([mosquitto_path(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_port("127.0.0.1", port, proc=proc)
    return Broker("127.0.0.1", port, proc, conf)
