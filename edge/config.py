"""Pydantic models of a station config (YAML). Validation does no I/O beyond reading the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

from edge.decodeslots import auto_slots
from edge.errors import ConfigError
from edge.hwdecode import HwChoice
from edge.types import RuleKind
from wire.link import MAX_SHARED_EVENTS

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PointNorm = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
# "HH:MM-HH:MM" in the station's local time; a window may wrap midnight ("19:00-06:00").
TimeWindow = Annotated[
    str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")
]
VEHICLES = ["car", "bus", "truck", "motorbike"]


class _Conf(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class StationInfo(_Conf):
    id: Id
    name: str = ""
    timezone: str = Field("Asia/Shanghai", description="IANA zone in which rule schedules are read")


class TlsConfig(_Conf):
    ca_file: str | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = None
    insecure: bool = Field(False, description="skip the broker host name check (test setups only)")


class MqttConfig(_Conf):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_queued_messages: int = Field(10000, ge=1)
    tls: TlsConfig | None = Field(None, description="TLS to the broker (None: plain TCP)")
    session_expiry_s: int = Field(3600, ge=0, description="broker keeps acks/commands for us this long")
    stats_interval_s: float = Field(15.0, ge=0.5, le=3600.0, description="health figures every so often")


class OutboxConfig(_Conf):
    """Durable outbox of the link (edge/outbox.py): what is not yet acknowledged by the centre."""

    path: str | None = Field(None, description="SQLite file (default var/outbox/<station>.sqlite)")
    quota_mb: float = Field(2048.0, gt=0.0, description="media dropped first, then the oldest events")
    window: int = Field(64, ge=1, le=10000, description="items sent but not yet acknowledged")
    ack_timeout_s: float = Field(20.0, gt=0.0, description="re-send an unacknowledged item after this")
    resend_max_s: float = Field(300.0, gt=0.0, description="cap of the re-send backoff")
    flush_timeout_s: float = Field(10.0, ge=0.0, description="on stop, wait this long for acks")
    intake_queue: int = Field(1024, ge=1, description="hand-over queue from the evidence worker")


class DetectorConfig(_Conf):
    model: Id = "yolox_nano_416"
    score_threshold: float = Field(0.35, gt=0.0, lt=1.0)
    nms_iou: float = Field(0.45, gt=0.0, lt=1.0)
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="tried in order; those the installed onnxruntime lacks are skipped, CPU is the fallback",
    )
    max_batch: int = Field(4, ge=1, le=64, description="frames of several cameras per inference call")
    max_wait_ms: float = Field(15.0, ge=0.0, le=1000.0, description="how long a batch waits to fill")
    workers: int = Field(
        0, ge=0, le=16, description="inference sessions run side by side (0: one per CPU core, at most 4)"
    )
    precision: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="auto: the int8 build (scripts/build-int8) where it is accurate and faster here"
    )

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, min(4, os.cpu_count() or 1))


class ZoneConfig(_Conf):
    id: Id
    name: str = ""
    points: list[PointNorm] = Field(min_length=3, description="polygon, normalised 0..1 (x, y)")


class _RuleBase(_Conf):
    id: Id
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    schedule: list[TimeWindow] = Field(
        default_factory=list, description="active only inside these local time windows (empty: always)"
    )
    cooldown_s: float = Field(0.0, ge=0.0, description="after an event ends, no new one for this long")
    end_after_s: float = Field(2.0, ge=0.0, description="an event ends when its condition is false this long")


class IntrusionRuleConfig(_RuleBase):
    kind: Literal[RuleKind.INTRUSION] = RuleKind.INTRUSION
    zone: Id
    min_frames: int = Field(2, ge=1, le=1000, description="detected frames inside before it fires")


class LineCrossingRuleConfig(_RuleBase):
    kind: Literal[RuleKind.LINE_CROSSING]
    line: tuple[PointNorm, PointNorm] = Field(description="p1, p2; side A is on your right facing p1->p2")
    direction: Literal["a_to_b", "b_to_a", "both"] = "both"

    @model_validator(mode="after")
    def _not_a_point(self) -> LineCrossingRuleConfig:
        if self.line[0] == self.line[1]:
            raise ValueError("line needs two different points")
        return self


class LoiteringRuleConfig(_RuleBase):
    kind: Literal[RuleKind.LOITERING]
    zone: Id
    dwell_s: float = Field(30.0, gt=0.0, description="media seconds inside the zone before it fires")


class CrowdRuleConfig(_RuleBase):
    kind: Literal[RuleKind.CROWD]
    zone: Id
    min_count: int = Field(3, ge=2, le=1000)
    min_duration_s: float = Field(5.0, ge=0.0)


class StationaryVehicleRuleConfig(_RuleBase):
    kind: Literal[RuleKind.STATIONARY_VEHICLE]
    zone: Id
    classes: list[str] = Field(default_factory=lambda: list(VEHICLES), min_length=1)
    dwell_s: float = Field(60.0, gt=0.0, description="media seconds standing still before it fires")
    max_move_norm: float = Field(
        0.25, gt=0.0, le=2.0, description="drift of the box centre, in box sizes, still counted as still"
    )


def _rule_kind(v: object) -> str:
    kind = v.get("kind", RuleKind.INTRUSION) if isinstance(v, dict) else getattr(v, "kind", "")
    return str(kind.value if isinstance(kind, RuleKind) else kind)


RuleConfig = Annotated[
    Annotated[IntrusionRuleConfig, Tag(RuleKind.INTRUSION.value)]
    | Annotated[LineCrossingRuleConfig, Tag(RuleKind.LINE_CROSSING.value)]
    | Annotated[LoiteringRuleConfig, Tag(RuleKind.LOITERING.value)]
    | Annotated[CrowdRuleConfig, Tag(RuleKind.CROWD.value)]
    | Annotated[StationaryVehicleRuleConfig, Tag(RuleKind.STATIONARY_VEHICLE.value)],
    Discriminator(_rule_kind),
]


class MotionConfig(_Conf):
    """Frigate-like motion gate: small grayscale frame against a slowly updated background."""

    frame_height_px: int = Field(100, ge=32, le=480)
    threshold: int = Field(30, ge=1, le=255, description="grey-level difference that counts as changed")
    min_area_px: int = Field(12, ge=1, description="changed pixels (at frame_height_px) that make motion")
    alpha: float = Field(0.2, gt=0.0, le=1.0, description="background update rate per decimated frame")
    recalibrate_ratio: float = Field(0.8, gt=0.0, le=1.0, description="changed share that resets the model")
    refresh_s: float = Field(1.0, gt=0.0, description="re-detect this often while objects are tracked")
    regions: bool = Field(True, description="detect on the region around motion, the whole frame every refresh_s")
    idle_refresh_s: float = Field(10.0, gt=0.0, description="detect this often even with nothing moving")
    mask: list[list[PointNorm]] = Field(default_factory=list, description="polygons where motion is ignored")


class StreamConfig(_Conf):
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    open_timeout_s: float = Field(10.0, gt=0.0, le=300.0)
    read_timeout_s: float = Field(10.0, gt=0.0, le=300.0)
    watchdog_s: float = Field(20.0, gt=0.0, le=3600.0, description="reconnect when no frame for this long")
    backoff_initial_s: float = Field(1.0, gt=0.0, le=600.0)
    backoff_max_s: float = Field(60.0, gt=0.0, le=3600.0)
    hwaccel: HwChoice = Field(
        "auto", description="decode on a device: cuda (NVIDIA NVDEC), vaapi or qsv (Intel/AMD), vulkan; "
        "auto: NVDEC or VA-API where the box shows one, else the CPU; none: the CPU. Where the device "
        "cannot be opened the camera decodes in software, and says so in the log and /metrics",
    )  # fmt: skip
    hwaccel_device: str | None = Field(
        None, description='the device: a GPU index for cuda ("0"), a render node for vaapi '
        '("/dev/dri/renderD128"); default: the first',
    )  # fmt: skip


class DecodingConfig(_Conf):
    """Software decoding across the station's cameras (edge/decodeslots.py)."""

    max_concurrent: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = Field(
        0, description="cameras decoding at the same moment, station-wide; 0: no limit (the default); "
        "auto: the CPU cores + 2. A limit gives inference and the alert path the CPU first: "
        "alerts leave sooner, but a box short of CPU falls behind in decoding instead. Read at start",
    )  # fmt: skip

    @property
    def slots(self) -> int:
        """0: no limit."""
        return auto_slots() if self.max_concurrent == "auto" else self.max_concurrent


class MediaConfig(_Conf):
    dir: str = Field("var/media", description="clips are written here; relative to the working directory")
    clips: bool = True
    pre_s: float = Field(5.0, ge=0.0, le=120.0, description="clip starts this long before the event")
    post_s: float = Field(5.0, ge=0.0, le=120.0, description="clip ends this long after the event")
    max_clip_s: float = Field(300.0, gt=0.0, le=3600.0, description="longer events are cut here")
    ram_s: float = Field(
        20.0, gt=0.0, le=3600.0, description="packets an open event holds longer than this wait on disk "
        "(an unlinked file under dir/.spool) instead of in memory",
    )  # fmt: skip
    snapshot_window_s: float = Field(1.0, ge=0.0, le=10.0, description="best snapshot chosen in this window")
    share_s: float = Field(
        30.0, ge=0.0, le=600.0, description="an event starting while a clip of its camera is still open, "
        "at most this long after the clip's first event, shares that clip (0: one clip per event)",
    )  # fmt: skip
    share_max_events: int = Field(32, ge=1, le=MAX_SHARED_EVENTS, description="events one shared clip serves")
    # Retention (edge/retention.py): clips and snapshots under `dir` kept within this, oldest first;
    # evidence still in the outbox (not yet acknowledged by the centre) is never deleted.
    quota_mb: float = Field(10240.0, gt=0.0, description="disk quota of the media dir")
    alarm_pct: float = Field(
        90.0, gt=0.0, le=100.0, description="tell the centre when the disk, or unacknowledged evidence "
        "in the quota, passes this share",
    )  # fmt: skip


class MetricsConfig(_Conf):
    """Prometheus text exposition of the agent's counters (edge/metrics.py); off unless a port is set."""

    host: str = Field(
        "127.0.0.1", description="bind address (loopback: scrape through a tunnel or a local agent)"
    )
    port: int | None = Field(None, ge=1, le=65535, description="e.g. 9108; None: no HTTP server")


class TrackerConfig(_Conf):
    iou_match: float = Field(0.3, gt=0.0, lt=1.0)
    high_score: float = Field(0.5, gt=0.0, lt=1.0)
    min_hits: int = Field(2, ge=1)
    max_missed: int = Field(10, ge=0, description="detected frames a track survives unseen")


class CameraConfig(_Conf):
    id: Id
    name: str = ""
    source: str = Field(description="detect stream: file path (relative to the config file) or URL")
    record_source: str | None = Field(None, description="full-resolution stream for clips (default: source)")
    profile: Literal["fixed", "moving"] = Field(
        "fixed", description="moving (body-cam, vehicle): no motion gate, fixed-rate detection"
    )
    loop: bool = False
    start_s: float = Field(
        0.0, ge=0.0, description="file sources: the first pass starts this far in (staggered replays)"
    )
    realtime: bool = True
    detect_fps: float = Field(5.0, gt=0.0, le=60.0)
    detect_size: int | None = Field(
        None, ge=128, le=1280, multiple_of=32,
        description="detector input long side in px (flexible models); None: the model's own (416)",
    )  # fmt: skip
    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)

    @model_validator(mode="after")
    def _references(self) -> CameraConfig:
        zone_ids = [z.id for z in self.zones]
        if len(set(zone_ids)) != len(zone_ids):
            raise ValueError(f"zone ids must be unique, got {zone_ids}")
        rule_ids = [r.id for r in self.rules]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError(f"rule ids must be unique, got {rule_ids}")
        for r in self.rules:
            zone = getattr(r, "zone", None)
            if zone is not None and zone not in zone_ids:
                raise ValueError(f"rule {r.id!r} names zone {zone!r}, which is not among {zone_ids}")
        if self.stream.backoff_max_s < self.stream.backoff_initial_s:
            raise ValueError("stream.backoff_max_s must be >= stream.backoff_initial_s")
        if self.record_source and "://" not in self.record_source and not self.realtime:
            # Its packets are placed on wall-clock time: unpaced, a file lands in the ring at once.
            raise ValueError("a file record_source is replayed at real time: set realtime: true or drop record_source")
        return self

    @property
    def is_url(self) -> bool:
        return "://" in self.source


class StationConfig(_Conf):
    station: StationInfo
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cameras: list[CameraConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_cameras(self) -> StationConfig:
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for c in self.cameras:
            if c.id == camera_id:
                return c
        raise ConfigError(
            f"camera {camera_id!r} is not in this config; it has {[c.id for c in self.cameras]}"
        )


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid station config ({err.error_count()} problem(s)):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (not allowed here)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_station_config(path: str | Path) -> StationConfig:
    """Read and validate a station YAML file; file sources are resolved relative to it.

    Raises ConfigError naming the file and the field for every problem.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with station/cameras at the top level")
    try:
        cfg = StationConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    base = path.resolve().parent
    for cam in cfg.cameras:
        cam.source = _resolve(base, cam.source)
        if cam.record_source:
            cam.record_source = _resolve(base, cam.record_source)
    return cfg


def _resolve(base: Path, source: str) -> str:
    if "://" in source:
        return source
    p = Path(os.path.expandvars(os.path.expanduser(source)))
    return str(p if p.is_absolute() else (base / p).resolve())
