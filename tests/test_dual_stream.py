"""A dual-stream camera (a detect sub-stream and a full-resolution record stream, as IP cameras
offer), replayed from two files: detection runs on the small stream, clips come from the large one,
on the window of the event, and `xl-edge check` probes both."""

from __future__ import annotations

import logging
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from edge.agent import StationAgent
from edge.check import probe_record
from edge.config import load_station_config
from tests.conftest import CLIPS, free_port
from tests.test_edge_runtime import per_camera, scrape
from wire.messages import AlertMessage
from wire.topics import parse_topic

# indoor_one_by_one.mp4 (768x432, 10 fps): one person comes in at about 75 s and leaves at about 87 s
# (tests/test_golden_replay.py), so from 71 s the room is empty for ~4 s, then one visit of ~12 s.
CUT_S, LENGTH_S = 71.0, 24.0
RECORD_SIZE, RECORD_GOP = (1280, 720), 10  # one keyframe a second
DETECT_SIZE = (640, 360)
PRE_S = POST_S = 2.0

STATION = """\
station: {{id: dual-s1}}
mqtt: {{host: 127.0.0.1, port: {port}}}
metrics: {{host: 127.0.0.1, port: {metrics}}}
outbox: {{path: "{tmp}/o.sqlite"}}
media: {{dir: "{tmp}/media", pre_s: {pre}, post_s: {post}}}
cameras:
  - id: room
    source: "{tmp}/detect.mp4"
    record_source: "{record}"
    zones: [{{id: all, points: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    rules: [{{id: anyone, zone: all, classes: [person]}}]
"""


def encode_h264(frames: list[av.VideoFrame], path: Path, size: tuple[int, int], gop: int) -> None:
    """``frames`` as H.264 MP4 at 10 fps, scaled to ``size``, a keyframe every ``gop`` frames."""
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = size[0], size[1], "yuv420p"
        st.codec_context.gop_size = gop
        st.codec_context.options = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0"}
        for i, f in enumerate(frames):
            g = f.reformat(width=size[0], height=size[1], format="yuv420p")
            g.pts, g.time_base = i, Fraction(1, 10)
            out.mux(st.encode(g))
        out.mux(st.encode(None))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 24 s of the room as a 640x360 detect stream and a 1280x720 record stream."""
    d = tmp_path_factory.mktemp("dual")
    frames = []
    with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src:
        st = src.streams.video[0]
        for f in src.decode(st):
            t = float(f.pts * st.time_base)
            if t >= CUT_S + LENGTH_S:
                break
            if t >= CUT_S:
                frames.append(f)
    encode_h264(frames, d / "detect.mp4", DETECT_SIZE, 20)
    encode_h264(frames, d / "record.mp4", RECORD_SIZE, RECORD_GOP)
    return d


def _events(q: queue.Queue) -> list[AlertMessage]:
    out = []
    while True:
        try:
            topic, payload = q.get_nowait()
        except queue.Empty:
            return out
        route = parse_topic(topic)
        if route is not None and route.kind == "event":
            out.append(AlertMessage.model_validate_json(payload))


def test_clips_come_from_the_record_stream_on_the_events_window(broker, mqtt_messages, pair: Path) -> None:
    q, _ = mqtt_messages
    cfg, mport = pair / "station.yaml", free_port()
    cfg.write_text(STATION.format(port=broker.port, metrics=mport, tmp=pair, record=pair / "record.mp4", pre=PRE_S, post=POST_S))
    agent = StationAgent(load_station_config(cfg))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    seen: list[AlertMessage] = []
    try:
        deadline = time.monotonic() + LENGTH_S + 30
        while not any(m.phase == "end" and m.clip for m in seen):
            assert time.monotonic() < deadline, f"no end with a clip: {[(m.phase, m.clip) for m in seen]}"
            time.sleep(0.2)
            seen += _events(q)
        tap = agent.cameras()[0].tap
        assert tap is not None and tap.packets > 0 and tap.errors == 0, vars(tap)
        m = scrape(mport)
        assert per_camera(m, "xl_edge_record_online") == {"room": 1.0}
        assert per_camera(m, "xl_edge_record_packets_total")["room"] > 100
        assert per_camera(m, "xl_edge_record_errors_total") == {"room": 0.0}
    finally:
        agent.stop.set()
        runner.join(20)
    assert not runner.is_alive()

    end = next(m for m in seen if m.phase == "end" and m.clip)
    start = next(m for m in seen if m.phase == "start" and m.event_id == end.event_id)
    # The person came in ~4 s into the replay: the rule fired on the detect stream then, not at once.
    assert start.started_pts_s is not None and 2.0 <= start.started_pts_s <= 8.0, start.started_pts_s
    clip = end.clip
    with av.open(clip.path) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == RECORD_SIZE  # not the detect stream's
        packets = [p for p in c.demux(v) if p.size]
        assert packets[0].is_keyframe
        decoded = sum(1 for p in packets for _ in v.codec_context.decode(p))
    # Paced at real time, the record file gave the event's window, not its whole length at once:
    # from the keyframe at or before start - pre to end + post (wall clock, as the ring places it).
    window = (end.ts - start.ts).total_seconds() + PRE_S + POST_S
    gop_s = RECORD_GOP / 10
    assert window - 0.6 <= clip.duration_s <= window + gop_s + 0.6, (clip.duration_s, window)
    assert clip.duration_s < LENGTH_S - 4.0
    assert decoded >= int(clip.duration_s * 10) - 2  # every frame of it plays
    assert 0.0 < clip.event_offset_s <= PRE_S + gop_s + 0.6


def test_a_missing_record_stream_is_counted_and_logged_once_while_detection_runs(
    broker, pair: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg, mport = pair / "missing.yaml", free_port()
    cfg.write_text(STATION.format(port=broker.port, metrics=mport, tmp=pair, record=pair / "nope.mp4", pre=PRE_S, post=POST_S))
    agent = StationAgent(load_station_config(cfg))
    for c in agent.cameras():
        c.tap.backoff.initial_s = c.tap.backoff.next_s = 0.2  # retry often in the test
    runner = threading.Thread(target=agent.run, daemon=True)
    with caplog.at_level(logging.INFO, logger="edge.camera"):
        runner.start()
        try:
            deadline = time.monotonic() + 30
            tap, cam = agent.cameras()[0].tap, agent.runners[0]
            while tap.errors < 3 or cam.source.stats.frames_decoded < 20:
                assert time.monotonic() < deadline, (tap.errors, cam.source.stats.frames_decoded)
                time.sleep(0.1)
            m = scrape(mport)
            assert per_camera(m, "xl_edge_record_online") == {"room": 0.0}
            assert per_camera(m, "xl_edge_record_errors_total")["room"] >= 3
        finally:
            agent.stop.set()
            runner.join(20)
    assert not tap.online and tap.packets == 0
    assert "record_source" in tap.last_error and "nope.mp4" in tap.last_error
    warned = [r for r in caplog.records if "record stream" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]  # once per outage, not once per retry


def test_check_probes_the_record_stream(pair: Path) -> None:
    cfg = pair / "check.yaml"
    cfg.write_text(STATION.format(port=1, metrics=free_port(), tmp=pair, record=pair / "record.mp4", pre=PRE_S, post=POST_S))
    cam = load_station_config(cfg).cameras[0]
    good = probe_record(cam)
    assert good.ok and good.subject == "room record", good.line()
    assert "h264 1280x720" in good.detail and "remuxed" in good.detail
    cam.record_source = str(pair / "nope.mp4")
    bad = probe_record(cam)
    assert bad.problem and "record_source" in bad.fix and "nope.mp4" in bad.detail, bad.line()
