"""The principal of a request (Bearer token or session cookie) and role gates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from central.auth.schemas import Role
from central.auth.service import Principal, lookup_token, principal_of
from central.deps import ClockDep, SessionDep

COOKIE = "xl_session"


def _raw_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.cookies.get(COOKIE)


def current_principal(request: Request, session: SessionDep, clock: ClockDep) -> Principal:
    raw = _raw_token(request)
    user = lookup_token(session, raw, clock.now()) if raw and len(raw) <= 256 else None
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="not authenticated: log in, or send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal_of(user)


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` through (403 for the others)."""
    allowed = frozenset(roles)

    def check(user: CurrentUser) -> Principal:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(status_code=403, detail=f"role {user.role.value} may not do this (needs {names})")
        return user

    return check


AdminUser = Annotated[Principal, Depends(require(Role.ADMIN))]
StaffUser = Annotated[Principal, Depends(require(Role.ADMIN, Role.DISPATCHER, Role.OPERATOR))]
