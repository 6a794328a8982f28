"""`xl-edge check`: is this box ready to run its station? One finding per check, each problem with its fix.

The same probes run inside the agent (``StationAgent`` at start-up and on a timer: model, disk,
clock), where each problem goes to the centre in the stats payload (``wire.link.StationProblem``).
Cameras and the broker are checked there by the camera runners and the link themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import paho.mqtt.client as mqtt
from av.video.reformatter import VideoReformatter

from edge.config import CameraConfig, MqttConfig, StationConfig, load_station_config
from edge.detect import Detector, build_detector
from edge.errors import SourceError, XueliangError, redact
from edge.hwdecode import resolve, to_host
from edge.link import configure_tls, outbox_path
from edge.models import MANIFEST_PATH, load_manifest, resolve_model, search_dirs, sha256_file
from edge.orient import Upright, file_turns
from edge.setupview import describe, draw_detections, draw_setup, write_jpeg
from edge.sources import ARRIVAL_STAMPED, open_container, own_decoder
from edge.timeline import stream_fps
from wire.mp4 import BROWSER_CODECS, REMUX_CODECS

DISK_MIN_FREE_PCT = 10.0


@dataclass(frozen=True)
class Finding:
    check: str  # config | camera | model | broker | disk | clock (wire.link.StationProblem.check)
    subject: str  # camera id, file, host:port, folder
    ok: bool | None  # None: could not be told (not a problem)
    detail: str
    fix: str = ""

    @property
    def problem(self) -> bool:
        return self.ok is False

    def line(self) -> str:
        mark = {True: "ok     ", False: "PROBLEM", None: "unknown"}[self.ok]
        text = f"{mark} {self.check:<7} {self.subject}: {self.detail}"
        return f"{text} -> fix: {self.fix}" if self.problem and self.fix else text


# -- config ---------------------------------------------------------------------------------------


def check_config(path: Path) -> tuple[StationConfig | None, Finding]:
    try:
        cfg = load_station_config(path)
    except XueliangError as exc:
        detail = " ".join(str(exc).split())
        return None, Finding("config", str(path), False, detail, "edit the file; every field named above")
    cams = ", ".join(c.id for c in cfg.cameras)
    return cfg, Finding("config", str(path), True, f"station {cfg.station.id}, cameras {cams}")


# -- cameras --------------------------------------------------------------------------------------


def probe_camera(cam: CameraConfig, timeout_s: float = 5.0, keep: dict[str, np.ndarray] | None = None) -> Finding:
    """Open the camera's detect stream once and decode one frame (bounded by ``timeout_s``); with
    ``keep``, that frame goes into it under the camera's id, upright as the agent analyses it (BGR)."""
    url = cam.source
    shown = redact(url)
    t = min(timeout_s, cam.stream.open_timeout_s)
    try:
        container = open_container(url, t, t, cam.stream.transport)
    except SourceError as exc:
        fix = (
            "check the camera's address, port, user and password, that it is powered and on the network "
            "(try its sub-stream URL in VLC)"
            if cam.is_url
            else "correct `source` (relative paths start at the config file's folder)"
        )
        return Finding("camera", cam.id, False, redact(str(exc)), fix)
    try:
        st = container.streams.video[0]
        codec = st.codec_context.name
        arrival = cam.is_url and container.format.name in ARRIVAL_STAMPED  # its stated rate is invented
        fps = 0.0 if arrival else stream_fps(st)
        w, h = st.codec_context.width, st.codec_context.height
        hw = resolve(cam.stream.hwaccel, cam.stream.hwaccel_device)
        hw_fallback: list[str] = []
        decoder = own_decoder(st, hw, hw_fallback.append) if hw else st.codec_context
        first: av.VideoFrame | None = None
        try:
            for packet in container.demux(st):
                frames = decoder.decode(packet)
                if frames:
                    first = frames[0]
                    w, h = first.width, first.height
                    break
            else:
                return Finding("camera", cam.id, False, f"{shown}: opened but no frame decoded",
                               "check the stream's codec and the camera's encoder settings")  # fmt: skip
        except (av.error.FFmpegError, OSError) as exc:
            return Finding("camera", cam.id, False, f"{shown}: {codec} stream but decoding failed: {exc}",
                           "set the camera to H.264 (or H.265) on this stream")  # fmt: skip
    finally:
        container.close()
    detail = f"{shown}: {codec} {w}x{h} " + ("timed on arrival (MJPEG over HTTP)" if arrival else f"@ {fps:.1f} fps")
    turns = 0 if cam.is_url else (file_turns(url) or 0)
    if turns:
        detail += f", recorded sideways: analysed turned {turns * 90} degrees counter-clockwise"
    if keep is not None and first is not None:
        keep[cam.id] = upright_bgr(first, turns)
    if hw is not None:
        if hw_fallback and not hw.explicit:
            detail += f" ({cam.stream.hwaccel}: {hw_fallback[0]})"
        elif hw_fallback:  # it works, but not as the box was sized for
            return Finding("camera", cam.id, False, f"{detail}, {hw_fallback[0]}",
                           f"install the {hw.device_type} driver and give the agent's user its device "
                           "(video/render groups), or set stream.hwaccel: none")  # fmt: skip
        else:
            detail += f", decoded on {hw.device_type}"
    if fps and cam.detect_fps > fps + 0.01:
        return Finding("camera", cam.id, False, f"{detail}, but detect_fps is {cam.detect_fps}",
                       f"lower detect_fps to {fps:.0f} or less, or raise the stream's frame rate")  # fmt: skip
    return Finding("camera", cam.id, True, detail)


def upright_bgr(frame: av.VideoFrame, turns: int) -> np.ndarray:
    frame = to_host(frame, VideoReformatter())  # a frame decoded on a GPU is copied out first
    return (Upright(turns)(frame) if turns else frame).to_ndarray(format="bgr24")


def probe_record(cam: CameraConfig, timeout_s: float = 5.0) -> Finding:
    """Open the camera's record stream once and read up to its first keyframe (never decoded:
    clips are cut from its packets); says whether its clips are remuxed or must be transcoded."""
    url = cam.record_source or cam.source
    subject, shown = f"{cam.id} record", redact(url)
    t = min(timeout_s, cam.stream.open_timeout_s)
    try:
        container = open_container(url, t, t, cam.stream.transport, field="record_source")
    except SourceError as exc:
        fix = (
            "check the record (main) stream's URL: same host, user and password as the detect stream, "
            "usually another channel or path"
            if "://" in url
            else "correct `record_source` (relative paths start at the config file's folder)"
        )
        return Finding("camera", subject, False, redact(str(exc)), fix)
    try:
        st = container.streams.video[0]
        codec, w, h = st.codec_context.name, st.codec_context.width, st.codec_context.height
        for n, packet in enumerate(container.demux(st)):
            if packet.is_keyframe:
                break
            if n >= 600:  # a keyframe at least every 24 s at 25 fps, or the clips cannot start
                return Finding("camera", subject, False, f"{shown}: no keyframe in its first 600 packets",
                               "set the record stream's I-frame interval (GOP) to 2 s or less")  # fmt: skip
        else:
            return Finding("camera", subject, False, f"{shown}: opened but sent no keyframe",
                           "check the record stream's encoder settings")  # fmt: skip
    except (av.error.FFmpegError, OSError) as exc:
        return Finding("camera", subject, False, f"{shown}: reading failed: {exc}", "check the record stream")
    finally:
        container.close()
    how = "remuxed" if codec in REMUX_CODECS else "transcoded to H.264 (costs CPU per clip)"
    if codec in REMUX_CODECS and codec not in BROWSER_CODECS:
        how += " (the centre adds an H.264 copy for browsers that cannot play it)"
    return Finding("camera", subject, True, f"{shown}: {codec} {w}x{h}, clips {how}")


# -- model ----------------------------------------------------------------------------------------


def check_model(name: str, config_path: Path | None = None) -> list[Finding]:
    """Every copy of the model's weights on the search path, each against the manifest's sha256."""
    specs, _labels = load_manifest()
    if name not in specs:
        return [Finding("model", name, False, f"not in the manifest {MANIFEST_PATH} ({sorted(specs)})",
                        "set detector.model to one of those")]  # fmt: skip
    spec = specs[name]
    candidates = [(spec.file, spec.sha256)]
    if spec.upstream_file and spec.upstream_sha256:
        candidates.append((spec.upstream_file, spec.upstream_sha256))
    fetch = "scripts/fetch_models" + (f" --config {config_path}" if config_path else "")
    out: list[Finding] = []
    good: Path | None = None
    for d in search_dirs():
        for file, sha in candidates:
            p = d / file
            if not p.is_file():
                continue
            actual = sha256_file(p)
            if actual == sha:
                good = good or p
            else:
                out.append(Finding("model", str(p), False,
                                   f"sha256 {actual[:16]}... but the manifest says {sha[:16]}... (damaged or "
                                   f"another file)", f"delete it, then run {fetch} --dest {d}"))  # fmt: skip
    if good is None and not out:
        where = ", ".join(str(d) for d in search_dirs())
        out.append(Finding("model", name, False, f"weights {spec.file} not found in {where}",
                           f"run {fetch} --dest DIR (or set XL_MODELS_DIR to a folder that holds them)"))  # fmt: skip
    elif good is not None and not out:
        out.append(Finding("model", name, True, f"{good} (sha256 matches the manifest)"))
    return out


# -- broker ---------------------------------------------------------------------------------------


def check_broker(m: MqttConfig, station: str, timeout_s: float = 5.0) -> Finding:
    """Connect (MQTT 5) with the station's credentials; a refusal is reported with its reason code."""
    where = f"{m.host}:{m.port}"
    done = threading.Event()
    result: dict[str, object] = {}

    def on_connect(_c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        result["rc"] = rc
        done.set()

    def on_fail(_c: object, _u: object) -> None:
        result.setdefault("error", "connection failed")
        done.set()

    # Not the agent's client id: a check must never take over a running agent's session.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"xl-check-{station}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    if m.username:
        client.username_pw_set(m.username, m.password)
    client.on_connect = on_connect
    client.on_connect_fail = on_fail
    try:
        configure_tls(client, m)
        client.connect(m.host, m.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return Finding("broker", where, False, f"unreachable: {exc}",
                       "check mqtt.host/port, the network and that the broker runs")  # fmt: skip
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return Finding("broker", where, False, f"no answer (CONNACK) within {timeout_s:.0f} s",
                           "check mqtt.host/port and mqtt.tls (TLS port with a plain client, or the reverse)")  # fmt: skip
    finally:
        client.disconnect()
        client.loop_stop()
    rc = result.get("rc")
    if rc is None:
        return Finding("broker", where, False, str(result.get("error")), "check mqtt.host/port")
    assert isinstance(rc, mqtt.ReasonCode)
    user = m.username or "(anonymous)"
    if rc.is_failure:
        creds = (
            f"the broker refused user {user}'s password (Mosquitto answers 135 for a wrong password and for "
            "an unknown user alike): copy mqtt.username/password from the broker's credentials.json "
            "(scripts/provision-broker), or reset it with mosquitto_passwd"
        )
        fix = {
            134: creds,
            135: creds,
            133: "set mqtt.client_id to a valid id, or remove it",
        }.get(rc.value, "see the broker's log (journalctl -u mosquitto)")
        return Finding(
            "broker", where, False, f"refused user {user}: MQTT reason code {rc.value} ({rc})", fix
        )
    return Finding("broker", where, True, f"connected as {user}")


# -- disk and clock -------------------------------------------------------------------------------


def check_disk(dirs: list[Path], min_free_pct: float = DISK_MIN_FREE_PCT) -> list[Finding]:
    """Writable, and at least ``min_free_pct`` free on each file system (once per file system)."""
    out: list[Finding] = []
    seen: set[int] = set()
    for d in dirs:
        probe = d
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            out.append(Finding("disk", str(d), False, f"{probe} is not writable by this user",
                               f"chown it to the service user (install-edge does): chown -R xueliang {probe}"))  # fmt: skip
            continue
        dev = probe.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        u = shutil.disk_usage(probe)
        free_pct = 100.0 * u.free / u.total if u.total else 0.0
        detail = f"{u.free / 2**30:.1f} GiB free of {u.total / 2**30:.1f} GiB ({free_pct:.0f} %)"
        if free_pct < min_free_pct:
            out.append(Finding("disk", str(d), False, detail,
                               "free space (old files under /var/lib/xueliang/media go first) or lower media.quota_mb"))  # fmt: skip
        else:
            out.append(Finding("disk", str(d), True, detail))
    return out


def check_clock() -> Finding:
    """NTP synchronisation as systemd-timesyncd/chrony report it to timedated; unknown elsewhere."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return Finding("clock", "ntp", None, "timedatectl not available; synchronisation unknown")
    try:
        r = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                           text=True, timeout=3)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("clock", "ntp", None, f"timedatectl failed ({exc}); synchronisation unknown")
    value = r.stdout.strip()
    if r.returncode == 0 and value == "yes":
        return Finding("clock", "ntp", True, "synchronised")
    if r.returncode == 0 and value == "no":
        return Finding("clock", "ntp", False, "not synchronised: alert times and clips will be off",
                       "timedatectl set-ntp true (and allow UDP 123 to the NTP server)")  # fmt: skip
    return Finding(
        "clock", "ntp", None, "unknown (" + (r.stderr.strip().splitlines() or ["no answer"])[-1] + ")"
    )


# -- all of it ------------------------------------------------------------------------------------


def data_dirs(cfg: StationConfig) -> list[Path]:
    return [Path(cfg.media.dir), outbox_path(cfg.outbox, cfg.station.id).parent]


def run_checks(
    config_path: Path,
    broker: tuple[str, int] | None = None,
    timeout_s: float = 5.0,
    frames_dir: Path | None = None,
) -> list[Finding]:
    cfg, first = check_config(config_path)
    pictures: dict[str, np.ndarray] | None = {} if frames_dir is not None else None
    findings = [first]
    if cfg is None:
        return findings
    if broker:
        cfg.mqtt.host, cfg.mqtt.port = broker
    # Each camera's detect stream, then each record stream, in that order.
    jobs = [(probe_camera, c) for c in cfg.cameras] + [(probe_record, c) for c in cfg.cameras if c.record_source]
    results: list[Finding | None] = [None] * len(jobs)

    def probe(i: int) -> None:
        fn, cam = jobs[i]
        results[i] = probe_camera(cam, timeout_s, pictures) if fn is probe_camera else fn(cam, timeout_s)

    # Streams in parallel: an unreachable one costs its timeout once, not once per stream.
    threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    findings += check_model(cfg.detector.model, config_path)
    findings.append(check_broker(cfg.mqtt, cfg.station.id, timeout_s))
    findings += check_disk(data_dirs(cfg))
    findings.append(check_clock())
    for t in threads:
        t.join(timeout_s * 3 + 5)
    cams = [r or Finding("camera", c.id, False, "probe did not finish", "check the camera")
            for r, (_, c) in zip(results, jobs, strict=True)]  # fmt: skip
    if frames_dir is not None and pictures:
        cams = add_pictures(cfg, cams, dict(pictures), frames_dir)
    return [first, *cams, *findings[1:]]


def add_pictures(cfg: StationConfig, cams: list[Finding], pictures: dict[str, np.ndarray], folder: Path) -> list[Finding]:
    """Writes each probed camera's picture with its config and what the detector finds on it drawn
    (edge/setupview.py), and names the file in the camera's finding."""
    detector = picture_detector(cfg)
    out = []
    for f in cams:
        img = pictures.pop(f.subject, None) if f.check == "camera" and f.ok else None
        if img is None:
            out.append(f)
            continue
        cam = cfg.camera(f.subject)
        seen = ""
        if detector is not None:
            dets = detector.detect_bgr(img, cam.detect_size)
            wanted = {c for r in cam.rules for c in r.classes}
            seen = ", detected: " + (describe(dets, detector.labels, wanted) or "nothing")
        path = folder / f"{cam.id}.jpg"
        try:
            draw_setup(img, cam)
            if detector is not None:  # on top: the boxes stay readable over masks and zones
                draw_detections(img, dets, detector.labels, wanted)
            write_jpeg(img, path)
        except (OSError, RuntimeError) as exc:
            out.append(replace(f, ok=False, detail=f"{f.detail}, but its picture could not be written: {exc}",
                               fix=f"make {folder} writable, or leave out --frames"))  # fmt: skip
            continue
        out.append(replace(f, detail=f"{f.detail}, picture {path}{seen}"))
    return out


def picture_detector(cfg: StationConfig) -> Detector | None:
    """The station's model at fp32 on one thread, or None when it cannot be loaded (the model
    findings say why; the pictures are then drawn without detections)."""
    d = cfg.detector
    try:
        return build_detector(resolve_model(d.model), score_threshold=d.score_threshold, nms_iou=d.nms_iou)
    except Exception:  # noqa: BLE001 - any failure here is already reported by check_model
        return None
