"""Request-scoped dependencies shared by every router: a database session and the clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import Field
from sqlalchemy.orm import Session

from central.clock import Clock


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]

# Row ids in paths and bodies: bounded to what every backend's INTEGER holds, so a huge number is a
# 422 and not a driver overflow.
MAX_DB_INT = 2_147_483_647
PathId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
BodyId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
