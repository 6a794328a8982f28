"""`xl-edge`: run a station agent, or replay a recorded clip through a camera's rules."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from edge.agent import StationAgent
from edge.annotate import AnnotatedVideo
from edge.batch import DirectInference
from edge.check import run_checks
from edge.config import CameraConfig, StationConfig, load_station_config
from edge.errors import SourceError, XueliangError
from edge.events import EvidenceJob
from edge.evidence import EvidenceWriter
from edge.factory import make_desk, make_detector, make_source
from edge.pipeline import CameraPipeline
from edge.publish import to_message
from edge.retention import MediaJanitor
from edge.types import EventPhase
from xltools.logs import log_format, setup_logging


def _parse_broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xl-edge", description="Xueliang station edge agent")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON (env XL_LOG_FORMAT)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the station: every camera, events published over MQTT")
    run.add_argument("--config", required=True, type=Path, help="station YAML")
    run.add_argument("--broker", type=_parse_broker, help="override mqtt host:port from the config")
    run.add_argument("--metrics", type=_parse_broker, metavar="HOST:PORT", help="serve /metrics here (overrides metrics:)")
    chk = sub.add_parser("check", help="check config, cameras, model, broker, disk and clock; non-zero on a problem")
    chk.add_argument("--config", required=True, type=Path, help="station YAML")
    chk.add_argument("--broker", type=_parse_broker, help="override mqtt host:port from the config")
    chk.add_argument("--timeout", type=float, default=5.0, help="seconds per camera and for the broker")
    chk.add_argument(
        "--frames", type=Path, metavar="DIR",
        help="write each camera's picture as DIR/<camera>.jpg, with its zones, tripwires (A/B sides) and masks "
        "drawn, and what the model detects on it",
    )  # fmt: skip
    rep = sub.add_parser(
        "replay", help="replay a clip as fast as possible (or a stream's URL as it comes); print alerts as JSON lines"
    )
    rep.add_argument("clip", help="a video file, or a URL (rtsp://, http://...): read until it ends or Ctrl-C")
    rep.add_argument("--config", required=True, type=Path, help="station YAML whose camera rules apply")
    rep.add_argument("--camera", help="camera id in the config (default: the first camera)")
    rep.add_argument("--brief", action="store_true", help="omit the snapshot's base64 data from the lines")
    rep.add_argument("--snapshots", type=Path, help="also write each snapshot JPEG into this folder")
    rep.add_argument(
        "--media", type=Path, help="write evidence clips into this folder (the end lines then carry them)"
    )
    rep.add_argument(
        "--annotate", type=Path, metavar="OUT.mp4",
        help="write the analysed frames with zones, tripwires, tracked objects and open events drawn (H.264)",
    )  # fmt: skip
    rep.add_argument(
        "--all-phases",
        action="store_true",
        help="print update and end lines too (default: one line per alert)",
    )
    return p


def _pick_camera(cfg: StationConfig, camera_id: str | None) -> CameraConfig:
    if camera_id:
        return cfg.camera(camera_id)
    if len(cfg.cameras) > 1:
        print(f"replay: using camera {cfg.cameras[0].id!r} (pass --camera to choose)", file=sys.stderr)
    return cfg.cameras[0]


def cmd_replay(args: argparse.Namespace) -> int:
    cfg = load_station_config(args.config)
    cam = _pick_camera(cfg, args.camera)
    cam.source = str(args.clip)
    cam.record_source = None
    cam.loop = False
    detector = make_detector(cfg)
    desk = make_desk(cfg, cam, clips=args.media is not None)
    pipeline = CameraPipeline(
        cfg.station.id, cam, detector, DirectInference(detector), desk, cfg.station.timezone
    )
    source = make_source(cam, realtime=False, recorder=desk.recorder)
    writer = EvidenceWriter(args.media)
    # The same retention as the agent: clips stay within media.quota_mb, oldest first.
    janitor = MediaJanitor(args.media, int(cfg.media.quota_mb * 2**20), cfg.media.alarm_pct) if args.media else None
    if args.snapshots:
        args.snapshots.mkdir(parents=True, exist_ok=True)
    annotated = None
    if args.annotate:
        try:  # refused now, not after the clip has been read
            args.annotate.parent.mkdir(parents=True, exist_ok=True)
            args.annotate.touch()
        except OSError as exc:
            raise XueliangError(f"--annotate {args.annotate}: {exc.strerror or exc}") from None
        annotated = AnnotatedVideo(args.annotate, cam, detector.labels)
    t0 = time.monotonic()
    counts = {"alerts": 0, "lines": 0}
    media_s = 0.0

    def out(job: EvidenceJob) -> None:
        ev, snap = writer.process(job)
        if janitor is not None and ev.clip is not None:
            janitor.enforce(keep=frozenset({ev.clip.path}))
        if ev.phase is EventPhase.START:
            counts["alerts"] += 1
            if args.snapshots and snap is not None:
                (args.snapshots / f"{ev.event_id}.jpg").write_bytes(snap.jpeg)
        elif not args.all_phases:
            return
        msg = to_message(ev, snap)
        if args.brief:
            line = msg.model_dump(mode="json")
            if line["snapshot"] is not None:
                line["snapshot"].pop("data_b64")
            text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        else:
            text = msg.model_dump_json()
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        counts["lines"] += 1

    stopped, interrupted = "", False
    try:
        for df in source.frames():
            for job in pipeline.process(df):
                out(job)
            if annotated is not None:
                annotated.write(df.frame, df.pts_s, pipeline.tracks, pipeline.events)
            media_s = df.pts_s
    except SourceError as exc:
        if not cam.is_url or not source.stats.frames_decoded:
            raise  # nothing to replay: the error says why
        stopped = f" ended=({exc})"  # a stream's end (or drop) ends its replay: no reconnect
    except KeyboardInterrupt:
        stopped, interrupted = " ended=(interrupted)", True
    for job in pipeline.finish():
        out(job)
    if annotated is not None:
        annotated.close()
    elapsed = time.monotonic() - t0
    s, p = source.stats, pipeline.stats
    lines = "".join(f" line[{k}]={v['a_to_b']}/{v['b_to_a']}" for k, v in pipeline.line_counts().items())
    if annotated is not None:
        lines += f" annotated={annotated.frames}:{args.annotate}"
    print(
        f"replay: clip={args.clip} camera={cam.id} decoded={s.frames_decoded} detected={p.detected} "
        f"static={p.skipped_static} alerts={counts['alerts']} decode_errors={s.decode_errors} "
        f"media_s={media_s:.1f} wall_s={elapsed:.1f} speed={media_s / elapsed if elapsed else 0:.1f}x{lines}{stopped}",
        file=sys.stderr,
    )
    return 130 if interrupted else 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.frames is not None:
        try:
            args.frames.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"xl-edge check: --frames {args.frames}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    findings = run_checks(args.config, args.broker, args.timeout, args.frames)
    for f in findings:
        print(f.line())
    problems = sum(f.problem for f in findings)
    print(f"xl-edge check: {problems} problem(s)" if problems else "xl-edge check: all good")
    return 1 if problems else 0


def _load_for_run(args: argparse.Namespace) -> StationConfig:
    cfg = load_station_config(args.config)
    if args.broker:
        cfg.mqtt.host, cfg.mqtt.port = args.broker
    if args.metrics:
        cfg.metrics.host, cfg.metrics.port = args.metrics
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_for_run(args)
    for cam in cfg.cameras:
        if not cam.is_url and not Path(cam.source).is_file():
            raise SourceError(
                f"{args.config}: cameras[{cam.id}].source: video file not found: {cam.source}. "
                f"Relative paths are resolved from the config file's folder."
            )
    agent = StationAgent(cfg, loader=lambda: _load_for_run(args))

    def _stop(signum: int, _frame: object) -> None:
        agent.stop.set()  # the main loop logs and stops within STOP_BUDGET_S

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, lambda _s, _f: agent.request_reload())
    agent.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO, log_format(args.log_format))
    try:
        return {"run": cmd_run, "replay": cmd_replay, "check": cmd_check}[args.command](args)
    except XueliangError as exc:
        print(f"xl-edge: error: {exc}", file=sys.stderr)
        return 2
