"""Central service settings, read from ``XL_CENTRAL_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CentralSettings(BaseSettings):
    """Built by ``create_app()`` or the CLI, never at import time, so tests pass their own."""

    model_config = SettingsConfigDict(env_prefix="XL_CENTRAL_", extra="forbid")

    database_url: str = "sqlite:///./var/central/central.db"
    media_dir: Path = Path("./var/central/media")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # Fixed id + persistent session: the broker keeps QoS 1 alerts for us while we are down.
    mqtt_client_id: str = Field(default="xl-central", min_length=1, max_length=64)

    # Loopback by default: the API has no authentication yet.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # Bounds memory: at most this many messages of <= 4 MiB wait for the worker.
    ingest_queue_size: int = Field(default=200, ge=1)
