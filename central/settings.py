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
    # Several instances consuming one feed: MQTT 5 shared subscription $share/<group>/... (each
    # alert to one instance; no persistent session). None: one instance with a persistent session.
    mqtt_shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    mqtt_session_expiry_s: int = Field(default=7 * 86400, ge=0)
    mqtt_tls: bool = False
    mqtt_tls_ca_file: str | None = None
    mqtt_tls_cert_file: str | None = None
    mqtt_tls_key_file: str | None = None
    mqtt_tls_insecure: bool = False

    # Fleet health: a station not heard from (status or stats) for this long raises a health alert.
    fleet_silent_after_s: float = Field(default=90.0, gt=0)
    # Evidence retention (media and alert snapshots); evidence of held events (open incidents) is kept.
    media_retention_days: float = Field(default=30.0, ge=0)
    retention_sweep_s: float = Field(default=3600.0, gt=0)

    # Loopback by default: the API has no authentication yet.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # Bounds memory: at most this many messages of <= 4 MiB wait for the worker.
    ingest_queue_size: int = Field(default=200, ge=1)
