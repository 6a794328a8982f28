"""``/api/auth``: login/logout (session cookie), who am I, API tokens; ``/api/users`` for admins."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from central.auth import service
from central.auth.deps import COOKIE, AdminUser, CurrentUser
from central.auth.models import Token, User
from central.auth.schemas import (
    LoginIn,
    NewToken,
    PasswordIn,
    PasswordResetIn,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from central.deps import ClockDep, PathId, SessionDep

router = APIRouter(prefix="/api", tags=["auth"])


def _refuse_while_limited(state, keys: list[str], now, what: str) -> None:  # type: ignore[no-untyped-def]
    """429 with Retry-After while these keys have failed too often (logins and password changes)."""
    if wait_s := state.login_limiter.retry_after_s(keys, now):
        raise HTTPException(status_code=429, detail=f"too many failed {what}; retry in {wait_s} s",
                            headers={"Retry-After": str(wait_s)})  # fmt: skip


@router.post("/auth/login", response_model=UserOut)
def login(body: LoginIn, request: Request, response: Response, session: SessionDep, clock: ClockDep) -> User:
    """Password login; sets an HttpOnly session cookie. Failed attempts are rate limited."""
    state = request.app.state
    now = clock.now()
    client = request.client.host if request.client else "?"
    keys = [f"user:{body.username.lower()}", f"addr:{client}"]
    _refuse_while_limited(state, keys, now, "logins")
    user = service.authenticate(session, state.passwords, body.username, body.password.get_secret_value())
    if user is None:
        state.login_limiter.failed(keys, now)
        raise HTTPException(status_code=401, detail="wrong username or password")
    state.login_limiter.succeeded(keys[0])
    _start_session(state, session, user, response, now)
    return user


def _start_session(state, session, user: User, response: Response, now) -> None:  # type: ignore[no-untyped-def]
    ttl_s: float = state.settings.session_ttl_s
    _, raw = service.issue_token(session, user, "session", "browser", now, ttl_s)
    response.set_cookie(
        COOKIE, raw, max_age=int(ttl_s), httponly=True, samesite="strict", secure=state.settings.cookie_secure
    )


@router.get("/auth/link/{secret}", include_in_schema=False)
def login_link(secret: str, request: Request, session: SessionDep, clock: ClockDep) -> RedirectResponse:
    """Sign in through the configured link (demos, wall displays), then open the console."""
    state = request.app.state
    settings = state.settings
    now = clock.now()
    client = request.client.host if request.client else "?"
    keys = [f"addr:{client}"]
    if state.login_limiter.retry_after_s(keys, now):
        raise HTTPException(status_code=429, detail="too many failed logins")
    configured = settings.login_link_secret.get_secret_value() if settings.login_link_secret else ""
    user = (
        session.scalar(select(User).where(User.username == settings.login_link_user))
        if configured and settings.login_link_user and hmac.compare_digest(secret, configured)
        else None
    )
    if user is None or not user.active:
        state.login_limiter.failed(keys, now)
        raise HTTPException(status_code=404, detail="no such sign-in link")
    response = RedirectResponse("/", status_code=303)
    _start_session(state, session, user, response, now)
    return response


@router.post("/auth/password", status_code=204)
def change_password(body: PasswordIn, request: Request, user: CurrentUser, session: SessionDep, clock: ClockDep) -> None:
    """Your own password, given the current one; wrong guesses count against logins (rate limited)."""
    state = request.app.state
    now = clock.now()
    keys = [f"user:{user.username.lower()}"]
    _refuse_while_limited(state, keys, now, "attempts")
    row = session.get(User, user.user_id)
    if row is None or not state.passwords.verify(row.password_hash, body.current_password.get_secret_value()):
        state.login_limiter.failed(keys, now)
        raise HTTPException(status_code=403, detail="the current password is wrong")
    row.password_hash = state.passwords.hash(body.new_password.get_secret_value())
    session.commit()


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, session: SessionDep, _user: CurrentUser) -> None:
    raw = request.cookies.get(COOKIE)
    if raw:
        row = session.scalar(select(Token).where(Token.token_sha256 == service.digest(raw)))
        if row is not None:
            session.delete(row)
            session.commit()
    response.delete_cookie(COOKIE)


@router.get("/auth/me", response_model=UserOut)
def me(user: CurrentUser, session: SessionDep) -> User:
    row = session.get(User, user.user_id)
    assert row is not None  # the principal was just loaded
    return row


@router.get("/auth/tokens", response_model=list[TokenOut])
def my_tokens(user: CurrentUser, session: SessionDep) -> list[Token]:
    return list(session.scalars(select(Token).where(Token.user_id == user.user_id, Token.kind == "api")))


@router.post("/auth/tokens", response_model=NewToken, status_code=201)
def new_token(body: TokenIn, user: CurrentUser, session: SessionDep, clock: ClockDep) -> NewToken:
    row = session.get(User, user.user_id)
    assert row is not None
    token, raw = service.issue_token(session, row, "api", body.name, clock.now(), body.expires_in_s)
    return NewToken(**TokenOut.model_validate(token).model_dump(), token=raw)


@router.delete("/auth/tokens/{token_id}", status_code=204)
def revoke_token(token_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    row = session.get(Token, token_id)
    if row is None or row.user_id != user.user_id:
        raise HTTPException(status_code=404, detail=f"token {token_id} not found")
    session.delete(row)
    session.commit()


@router.get("/users", response_model=list[UserOut])
def list_users(_admin: AdminUser, session: SessionDep) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(
    body: UserIn, request: Request, _admin: AdminUser, session: SessionDep, clock: ClockDep
) -> User:
    try:
        return service.create_user(session, request.app.state.passwords, body, clock.now())
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(
            status_code=409, detail="username taken, or station_id/worker_id does not exist"
        ) from exc


def _user(session: SessionDep, user_id: int) -> User:
    row = session.get(User, user_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"user {user_id} not found")
    return row


@router.post("/users/{user_id}/deactivate", response_model=UserOut)
def deactivate_user(user_id: PathId, admin: AdminUser, session: SessionDep) -> User:
    row = _user(session, user_id)
    if row.id == admin.user_id:
        raise HTTPException(status_code=409, detail="you cannot deactivate yourself")
    row.active = False
    session.commit()
    return row


@router.post("/users/{user_id}/activate", response_model=UserOut)
def activate_user(user_id: PathId, _admin: AdminUser, session: SessionDep) -> User:
    row = _user(session, user_id)
    row.active = True
    session.commit()
    return row


@router.post("/users/{user_id}/password", status_code=204)
def reset_password(user_id: PathId, body: PasswordResetIn, request: Request, _admin: AdminUser, session: SessionDep) -> None:
    """An admin sets a user's password (forgotten, or an account handed over); the user can change it."""
    row = _user(session, user_id)
    row.password_hash = request.app.state.passwords.hash(body.new_password.get_secret_value())
    session.commit()
