"""``/api/orders``: list, detail, history, actions; public rating; SLA check trigger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from central.auth.deps import AdminUser, CurrentUser
from central.auth.service import Principal
from central.deps import ClockDep, Offset, PathId, SessionDep
from central.dispatch import service
from central.dispatch.models import WorkOrder
from central.dispatch.schemas import (
    ActionIn,
    EventOut,
    OrderOut,
    OrderPage,
    PublicOrderOut,
    RatingIn,
    SlaCheckOut,
)
from central.dispatch.scope import order_filter
from central.dispatch.workflow import Action, IllegalTransition, State
from central.stations.models import Station

router = APIRouter(prefix="/api", tags=["orders"])


@contextmanager
def http_errors() -> Iterator[None]:
    """Domain errors to HTTP answers, in one place."""
    try:
        yield
    except service.NotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except service.Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except StaleDataError as exc:
        raise HTTPException(status_code=409, detail="the order changed meanwhile; reload and retry") from exc
    except service.BadRequest as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def order_out(session: SessionDep, row: WorkOrder, user: Principal) -> OrderOut:
    return OrderOut.of(row, user, {lvl.level: lvl.name for lvl in service.chain(session)})


@router.get("/orders", response_model=OrderPage)
def list_orders(
    session: SessionDep,
    user: CurrentUser,
    state: Annotated[list[State] | None, Query()] = None,
    station: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> OrderPage:
    query = select(WorkOrder)
    if (clause := order_filter(user)) is not None:
        query = query.where(clause)
    if state:
        query = query.where(WorkOrder.state.in_([s.value for s in state]))
    if station is not None:
        query = query.where(WorkOrder.station == station)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(WorkOrder.priority, WorkOrder.id.desc()).limit(limit).offset(offset))
    names = {lvl.level: lvl.name for lvl in service.chain(session)}
    return OrderPage(items=[OrderOut.of(r, user, names) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: PathId, session: SessionDep, user: CurrentUser) -> OrderOut:
    with http_errors():
        return order_out(session, service.get_visible(session, order_id, user), user)


@router.get("/orders/{order_id}/events", response_model=list[EventOut])
def order_history(order_id: PathId, session: SessionDep, user: CurrentUser) -> list[EventOut]:
    with http_errors():
        service.get_visible(session, order_id, user)
    return [EventOut.of(e) for e in service.events(session, order_id)]


@router.post("/orders/{order_id}/actions", response_model=OrderOut)
def act_on_order(
    order_id: PathId, body: ActionIn, session: SessionDep, user: CurrentUser, clock: ClockDep, request: Request
) -> OrderOut:
    """One step of the lifecycle. 409 when the order's state does not allow it, 403 when your role doesn't."""
    with http_errors():
        order = service.get_visible(session, order_id, user)
        inp = service.ActionInput(Action(body.action), body.note, body.worker_id, body.reason)
        service.transition(session, order, inp, user, clock.now())
    request.app.state.notifier.order(order)
    return order_out(session, order, user)


RatingCode = Annotated[str, Path(min_length=1, max_length=64)]


def _by_rating_code(session: SessionDep, rating_code: str) -> WorkOrder:
    order = session.scalar(select(WorkOrder).where(WorkOrder.rating_code == rating_code))
    if order is None:
        raise HTTPException(status_code=404, detail="unknown rating code")
    return order


@router.get("/public/orders/{rating_code}", response_model=PublicOrderOut)
def public_order(rating_code: RatingCode, session: SessionDep) -> PublicOrderOut:
    """The case as the public's rating page shows it (no login: the code on the case slip is the key)."""
    order = _by_rating_code(session, rating_code)
    station = session.get(Station, order.station)
    can_rate = order.state == State.CLOSED.value and order.rating is None
    return PublicOrderOut(order_id=order.id, category=order.category, town=station.town if station else None,
                          state=State(order.state), created_at=order.created_at, closed_at=order.closed_at,
                          rating=order.rating, can_rate=can_rate)  # fmt: skip


@router.post("/public/orders/{rating_code}/rating", status_code=204)
def rate_order(rating_code: RatingCode, body: RatingIn, session: SessionDep, clock: ClockDep, request: Request) -> None:
    """The public's rating of a closed order (no login: the code printed on the case slip is the key)."""
    order = _by_rating_code(session, rating_code)
    if order.rating is not None and order.state == State.CLOSED.value:
        raise HTTPException(status_code=409, detail="this order has already been rated")
    with http_errors():
        inp = service.ActionInput(Action.RATE, body.note, rating=body.rating)
        service.transition(session, order, inp, None, clock.now())
    request.app.state.notifier.order(order)


@router.post("/sla/check", response_model=SlaCheckOut)
def sla_check(_admin: AdminUser, session: SessionDep, clock: ClockDep, request: Request) -> SlaCheckOut:
    """Run the SLA check now (the scheduler also runs it periodically)."""
    escalated = service.check_sla(session, clock.now())
    for oid in escalated:
        if (o := session.get(WorkOrder, oid)) is not None:
            request.app.state.notifier.order(o)
    return SlaCheckOut(escalated=escalated)
