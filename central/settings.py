"""Central service settings, read from ``XL_CENTRAL_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_ROOT = Path(__file__).resolve().parents[1]


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
    # Disk quota of the media dir (None: age only); oldest evidence goes first, never that of an open
    # incident (central/retention.py). Checked every media_quota_sweep_s by the scheduler.
    media_quota_mb: float | None = Field(default=None, gt=0)
    media_quota_sweep_s: float = Field(default=60.0, gt=0)
    # An H.264 copy of each clip in another codec (H.265 cameras), for browsers without its decoder
    # (central/media/renditions.py); off: such clips play only where the browser decodes them.
    clip_renditions: bool = True

    # Loopback by default; put a TLS-terminating proxy in front for other hosts.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # Bounds memory: at most this many messages of <= 4 MiB wait for the worker.
    ingest_queue_size: int = Field(default=200, ge=1)

    # Reference data (stations, cameras, grids, departments, workers, routing, SLA) loaded at start;
    # rows already in the database are kept (admins edit them through the API).
    reference_dir: Path = _ROOT / "configs" / "reference"
    # Users to create when missing (YAML: username, password, role, station, worker); for demos.
    users_file: Path | None = None
    # An admin API token ensured at start (automation, tests); at least 32 characters.
    bootstrap_admin_token: SecretStr | None = Field(default=None, min_length=32)
    # A sign-in link for one existing user (GET /api/auth/link/<secret>), for demos and wall
    # displays; off unless both are set. The secret must be at least 32 characters.
    login_link_secret: SecretStr | None = Field(default=None, min_length=32)
    login_link_user: str | None = None

    # Incidents: one camera's alerts closer than this join one incident.
    incident_inactivity_s: float = Field(default=120.0, gt=0)
    # Same grid + category within this window are offered (or auto-)merged.
    incident_merge_window_s: float = Field(default=600.0, gt=0)
    incident_auto_merge: bool = False

    # argon2id cost; lower only in tests.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    cookie_secure: bool = False

    # SLA checks, webhook deliveries and incident catch-up run on this period.
    scheduler_enabled: bool = True
    scheduler_interval_s: float = Field(default=5.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)

    # Request bodies larger than this are refused with 413 (the API takes small JSON only).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
