"""``/api/webhooks``: admins register receivers and inspect deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints
from sqlalchemy import select

from central.auth.deps import AdminUser
from central.deps import ClockDep, PathId, SessionDep
from central.webhooks.models import Webhook, WebhookDelivery

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    url: HttpUrl
    secret: Annotated[str, StringConstraints(min_length=16, max_length=128)]
    events: list[Annotated[str, StringConstraints(pattern=r"^(\*|[a-z_]{1,16})$")]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=20
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    url: str
    events: str
    active: bool


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    webhook_id: int
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    delivered_at: datetime | None


@router.get("", response_model=list[WebhookOut])
def list_webhooks(_admin: AdminUser, session: SessionDep) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.id)))


@router.post("", response_model=WebhookOut, status_code=201)
def create_webhook(body: WebhookIn, _admin: AdminUser, session: SessionDep, clock: ClockDep) -> Webhook:
    hook = Webhook(
        name=body.name, url=str(body.url), secret=body.secret, events=",".join(body.events),
        active=True, created_at=clock.now(),
    )  # fmt: skip
    session.add(hook)
    session.commit()
    return hook


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: PathId, _admin: AdminUser, session: SessionDep) -> None:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise HTTPException(status_code=404, detail=f"webhook {webhook_id} not found")
    hook.active = False
    session.commit()


@router.get("/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    _admin: AdminUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)))
