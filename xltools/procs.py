"""Start local processes (a private Mosquitto, our services) on free ports and wait for them."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now, never one this process was given before: the kernel may hand the same
    ephemeral port to two calls in a row, and two listeners of one broker then collide."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


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


# --- a private PostgreSQL cluster --------------------------------------------------------------

PG_NOT_INSTALLED = (
    "PostgreSQL server binaries (initdb, pg_ctl) are not installed: run `make setup` (it installs them)"
    " or apt-get install postgresql"
)


def _pg_version_key(bindir: Path) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6); names that are not versions sort first."""
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (-1,)


def postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: from PATH, else Debian's highest version."""
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent  # /usr/local/bin/initdb may be a link into the real bindir
        if all((bindir / exe).exists() for exe in ("pg_ctl", "postgres")):
            return bindir
    found = [
        d for d in Path("/usr/lib/postgresql").glob("*/bin")
        if all((d / exe).exists() for exe in ("initdb", "pg_ctl", "postgres"))
    ]  # fmt: skip
    if not found:
        raise FileNotFoundError(PG_NOT_INSTALLED)
    return max(found, key=_pg_version_key)


@dataclass
class Postgres:
    """A private cluster (user postgres, trust auth) on 127.0.0.1:port; ``url`` takes a /dbname suffix."""

    url: str
    port: int
    datadir: Path
    bindir: Path
    run_as: list[str]  # the command prefix that runs a command as the cluster's owner (empty: ourselves)
    cwd: Path
    remove: Path | None = None  # a directory of our own to delete after stop (root's fallback place)
    stopped: bool = False
    start_args: tuple[str, ...] = ()  # pg_ctl's arguments that started it (resume() uses them again)

    def pause(self) -> None:
        """Stop the server as an outage would (clients are cut off), keeping its data for resume()."""
        _pg_ctl(self, ["-m", "fast", "-t", "30", "stop"])

    def resume(self) -> None:
        """Start it again on the same port, with the same data."""
        _pg_ctl(self, [*self.start_args, "start"])
        wait_port("127.0.0.1", self.port, timeout_s=10)

    def stop(self) -> None:
        """Fast shutdown (disconnects clients); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _pg_ctl(self, ["-m", "fast", "-t", "30", "stop"], check=False)
            pidfile = self.datadir / "postmaster.pid"
            if pidfile.exists():  # pg_ctl could not stop it: end it the hard way (SIGQUIT: immediate)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGQUIT)
        finally:
            if self.remove is not None:
                shutil.rmtree(self.remove, ignore_errors=True)


def _pg_ctl(pg: Postgres, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*pg.run_as, str(pg.bindir / "pg_ctl"), "-D", str(pg.datadir), *args]
    return subprocess.run(cmd, cwd=pg.cwd, capture_output=True, text=True, check=check, timeout=60)


def _run_as_prefix(user: str) -> list[str]:
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if Path(runuser).exists():
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def start_postgres(workdir: Path) -> Postgres:
    """A private PostgreSQL cluster, initialised in ``workdir``/data, listening on a free port of 127.0.0.1.

    Built for tests: trust authentication for user ``postgres``, no fsync; ready in about a second or
    two. initdb refuses to run as root, so as root the cluster belongs to the system user ``postgres``
    (Debian's package creates it), in ``workdir`` when that user can reach it, else in a directory of
    its own under /tmp that stop() removes.
    """
    bindir = postgres_bindir()
    workdir.mkdir(parents=True, exist_ok=True)
    base, run_as, remove, owner = workdir, [], None, None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise FileNotFoundError(
                "initdb refuses to run as root and there is no `postgres` system user to run it as: "
                "run `make setup` (apt-get install postgresql creates it)"
            ) from None
        run_as = _run_as_prefix("postgres")
        reachable = subprocess.run([*run_as, "test", "-x", str(workdir)], cwd="/", capture_output=True)
        if reachable.returncode != 0:  # e.g. pytest's tmp dirs are 0700 root's
            base = remove = Path(tempfile.mkdtemp(prefix="xl-pg-", dir="/tmp"))
            base.chmod(0o755)
    datadir, sockdir, log = base / "data", base / "sock", base / "postgres.log"
    for d in (datadir, sockdir):
        d.mkdir(mode=0o700)
    log.touch()
    if owner is not None:
        for p in (datadir, sockdir, log):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    for var in ("PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"):
        env.pop(var, None)
    try:
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            cwd=base, env=env, capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({exc.returncode}): {(exc.stderr or exc.stdout).strip()}") from exc
    # A unix socket path is limited to 107 bytes; our clients use TCP, so a long path just goes without.
    sockets = str(sockdir) if len(str(sockdir)) < 80 and " " not in str(sockdir) else "''"
    last_error = ""
    for _ in range(3):  # the free port may be taken between free_port() and the server's bind
        port = free_port()
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
        opts = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off"
        )
        args = ("-l", str(log), "-o", opts, "-w", "-t", "60")
        pg = Postgres(url, port, datadir, bindir, run_as, base, remove, start_args=args)
        started = subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(datadir), *args, "start"],
            cwd=base, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        if started.returncode == 0:
            try:
                wait_port("127.0.0.1", port, timeout_s=10)
            except BaseException:
                pg.stop()
                raise
            return pg
        last_error = f"{started.stderr.strip()}\n{log.read_text(errors='replace')[-2000:]}"
        _pg_ctl(pg, ["-m", "immediate", "stop"], check=False)
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start in {datadir}: {last_error}")
