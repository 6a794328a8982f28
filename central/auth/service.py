"""Password hashing (argon2id), token issue/lookup, login rate limiting, user bootstrap."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.auth.models import Token, User
from central.auth.schemas import Role, UserIn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who is asking: what every permission and scope check looks at."""

    user_id: int
    username: str
    role: Role
    station_id: str | None = None
    worker_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.username} ({self.role.value})"


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.username, Role(user.role), user.station_id, user.worker_id)


class Passwords:
    """argon2id; a dummy verify on unknown users keeps timing the same as a wrong password."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


class LoginLimiter:
    """At most ``max_failures`` failed logins per username and per client address in a sliding window."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max = max_failures
        self._window = timedelta(seconds=window_s)
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def retry_after_s(self, keys: list[str], now: datetime) -> int:
        """0 when a login may be tried now, else seconds until it may."""
        with self._lock:
            wait = 0.0
            for key in keys:
                q = self._failures.get(key)
                while q and now - q[0] >= self._window:
                    q.popleft()
                if q and len(q) >= self._max:
                    wait = max(wait, (q[0] + self._window - now).total_seconds())
            return int(wait) + (1 if wait else 0)

    def failed(self, keys: list[str], now: datetime) -> None:
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of usernames
                self._failures.clear()

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._failures.pop(username_key, None)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session, user: User, kind: str, name: str, now: datetime, ttl_s: float | None
) -> tuple[Token, str]:
    raw = f"xl_{secrets.token_urlsafe(32)}"
    row = Token(
        user_id=user.id,
        kind=kind,
        name=name,
        token_sha256=digest(raw),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s) if ttl_s else None,
    )
    session.add(row)
    session.commit()
    return row, raw


def lookup_token(session: Session, raw: str, now: datetime) -> User | None:
    row = session.scalar(select(Token).where(Token.token_sha256 == digest(raw)))
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    # Written at most once a minute per token: reads stay reads.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        session.commit()
    return user


def authenticate(session: Session, passwords: Passwords, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    ok = passwords.verify(user.password_hash if user is not None else None, password)
    if not ok or user is None or not user.active:
        return None
    return user


def create_user(session: Session, passwords: Passwords, data: UserIn, now: datetime) -> User:
    user = User(
        username=data.username,
        display_name=data.display_name,
        password_hash=passwords.hash(data.password.get_secret_value()),
        role=data.role.value,
        station_id=data.station_id,
        worker_id=data.worker_id,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.commit()
    return user


def ensure_admin_token(session: Session, passwords: Passwords, raw: str, now: datetime) -> None:
    """Make ``raw`` a valid API token of the 'bootstrap-admin' user (created with no usable password)."""
    if session.scalar(select(Token).where(Token.token_sha256 == digest(raw))) is not None:
        return
    user = session.scalar(select(User).where(User.username == "bootstrap-admin"))
    if user is None:
        user = User(
            username="bootstrap-admin",
            display_name="Bootstrap admin (token only)",
            password_hash="!",  # not an argon2 hash: no password can match
            role=Role.ADMIN.value,
            active=True,
            created_at=now,
        )
        session.add(user)
        session.flush()
    session.add(Token(user_id=user.id, kind="api", name="bootstrap", token_sha256=digest(raw), created_at=now))
    session.commit()


def load_users_file(session: Session, passwords: Passwords, path: Path, now: datetime) -> int:
    """Create the users listed in ``path`` that do not exist yet; returns how many were created."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    created = 0
    for i, raw in enumerate(doc.get("users") or []):
        try:
            data = UserIn.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"{path}: users[{i}]: {exc}") from exc
        if session.scalar(select(User.id).where(User.username == data.username)) is None:
            create_user(session, passwords, data, now)
            created += 1
    if created:
        log.info("auth: created %d user(s) from %s", created, path)
    return created
