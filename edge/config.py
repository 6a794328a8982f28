"""Pydantic models of a station config (YAML). Validation does no I/O beyond reading the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from edge.errors import ConfigError
from edge.types import RuleKind

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PointNorm = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class _Conf(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class StationInfo(_Conf):
    id: Id
    name: str = ""


class MqttConfig(_Conf):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_queued_messages: int = Field(10000, ge=1)


class DetectorConfig(_Conf):
    model: Id = "yolox_nano_416"
    score_threshold: float = Field(0.35, gt=0.0, lt=1.0)
    nms_iou: float = Field(0.45, gt=0.0, lt=1.0)
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])


class ZoneConfig(_Conf):
    id: Id
    name: str = ""
    points: list[PointNorm] = Field(min_length=3, description="polygon, normalised 0..1 (x, y)")


class RuleConfig(_Conf):
    id: Id
    kind: Literal[RuleKind.INTRUSION] = RuleKind.INTRUSION
    zone: Id
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    min_frames: int = Field(2, ge=1, le=1000, description="detected frames inside before it fires")


class TrackerConfig(_Conf):
    iou_match: float = Field(0.3, gt=0.0, lt=1.0)
    high_score: float = Field(0.5, gt=0.0, lt=1.0)
    min_hits: int = Field(2, ge=1)
    max_missed: int = Field(10, ge=0, description="detected frames a track survives unseen")


class CameraConfig(_Conf):
    id: Id
    name: str = ""
    source: str = Field(description="file path (relative to the config file) or URL")
    loop: bool = False
    realtime: bool = True
    detect_fps: float = Field(5.0, gt=0.0, le=60.0)
    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)

    @model_validator(mode="after")
    def _references(self) -> CameraConfig:
        zone_ids = [z.id for z in self.zones]
        if len(set(zone_ids)) != len(zone_ids):
            raise ValueError(f"zone ids must be unique, got {zone_ids}")
        rule_ids = [r.id for r in self.rules]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError(f"rule ids must be unique, got {rule_ids}")
        for r in self.rules:
            if r.zone not in zone_ids:
                raise ValueError(f"rule {r.id!r} names zone {r.zone!r}, which is not among {zone_ids}")
        return self

    @property
    def is_url(self) -> bool:
        return "://" in self.source


class StationConfig(_Conf):
    station: StationInfo
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
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
        if not cam.is_url:
            src = Path(os.path.expandvars(os.path.expanduser(cam.source)))
            cam.source = str(src if src.is_absolute() else (base / src).resolve())
    return cfg
