"""Building a station's parts from its config: detectors (with the precision choice), sources,
event desks. Shared by the agent (edge/agent.py) and replay (edge/cli.py)."""

from __future__ import annotations

from pathlib import Path

from edge.clips import ClipRecorder
from edge.config import CameraConfig, StationConfig
from edge.decodeslots import DecodeSlots
from edge.detect import Detector, build_detector
from edge.events import EventDesk
from edge.hwdecode import resolve
from edge.models import ResolvedModel, resolve_model
from edge.precision import PrecisionChoice, choose
from edge.sources import VideoSource


def make_detectors(cfg: StationConfig, count: int | None = None) -> tuple[list[Detector], PrecisionChoice]:
    """``count`` detectors (default: one per inference worker) on the weights ``detector.precision``
    picks: fp32, or the int8 build where it keeps the detections and is faster on this CPU."""
    d = cfg.detector

    def build(model: ResolvedModel) -> Detector:
        return build_detector(
            model, score_threshold=d.score_threshold, nms_iou=d.nms_iou, threads=d.threads, providers=d.providers
        )

    model, choice = choose(d.precision, resolve_model(d.model), build)
    return [build(model) for _ in range(count or d.worker_count)], choice


def make_detector(cfg: StationConfig) -> Detector:
    return make_detectors(cfg, 1)[0][0]


def make_source(
    cam: CameraConfig, realtime: bool, recorder: ClipRecorder | None, decode_slots: DecodeSlots | None = None
) -> VideoSource:
    st = cam.stream
    return VideoSource(
        cam.source,
        cam.detect_fps,
        realtime=realtime,
        loop=cam.loop,
        start_s=cam.start_s,
        open_timeout_s=st.open_timeout_s,
        read_timeout_s=st.read_timeout_s,
        watchdog_s=st.watchdog_s,
        transport=st.transport,
        hw=resolve(st.hwaccel, st.hwaccel_device),
        decode_slots=decode_slots,
        # One stream for both: its packets feed the clip ring as they are demuxed.
        on_packet=recorder.push if recorder is not None and not cam.record_source else None,
    )


def make_desk(cfg: StationConfig, cam: CameraConfig, clips: bool) -> EventDesk:
    m = cfg.media
    recorder = (
        ClipRecorder(m.pre_s, m.post_s, m.max_clip_s, m.share_s, m.share_max_events, Path(m.dir) / ".spool", m.ram_s)
        if clips
        else None
    )
    return EventDesk(m.snapshot_window_s, recorder, mono_clock=bool(cam.record_source))
