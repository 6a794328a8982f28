"""Auth API shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
MIN_PASSWORD = 10


def _long_enough(value: SecretStr) -> SecretStr:
    # A validator rather than Field(min_length): on a SecretStr pydantic words that as "at least 10
    # items after validation", which the console shows to the person typing the password.
    if len(value.get_secret_value()) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return value


# A password being set: 10 to 256 characters, never echoed back in a validation error.
NewPassword = Annotated[SecretStr, Field(max_length=256, json_schema_extra={"minLength": MIN_PASSWORD}),
                        AfterValidator(_long_enough)]  # fmt: skip


class Role(StrEnum):
    ADMIN = "admin"
    DISPATCHER = "dispatcher"  # every station
    OPERATOR = "operator"  # one station
    WORKER = "worker"  # own orders only


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[SecretStr, Field(min_length=1, max_length=256)]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Username
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: NewPassword
    role: Role
    station_id: str | None = Field(default=None, max_length=64)
    worker_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _scope_fits_role(self) -> UserIn:
        if (self.role == Role.OPERATOR) != (self.station_id is not None):
            raise ValueError("station_id is required for operators and only for them")
        if (self.role == Role.WORKER) != (self.worker_id is not None):
            raise ValueError("worker_id is required for workers and only for them")
        return self


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[SecretStr, Field(min_length=1, max_length=256)]
    new_password: NewPassword


class PasswordResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_password: NewPassword


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: Role
    station_id: str | None
    worker_id: str | None
    active: bool


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    expires_in_s: int | None = Field(default=None, ge=60, le=365 * 86400)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class NewToken(TokenOut):
    token: str = Field(description="shown once; send as 'Authorization: Bearer <token>'")
