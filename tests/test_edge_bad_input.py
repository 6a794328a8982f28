"""Bad input never crashes the agent: each broken camera gets a clear status and error count while a
good camera on the same station keeps running."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import av
import pytest

from edge.agent import StationAgent
from edge.config import StationConfig
from edge.errors import SourceError, redact
from edge.sources import VideoSource
from edge.types import CameraState
from tests.conftest import CLIPS, free_port

GOOD = CLIPS / "parking_lot_cars.mp4"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    data = GOOD.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 5])
    garbage = d / "garbage.mp4"
    mid = len(data) // 2
    junk = bytes((i * 7919 + 13) % 251 for i in range(200_000))
    garbage.write_bytes(data[:mid] + junk + data[mid + len(junk) :])
    audio = d / "audio_only.m4a"
    with av.open(str(GOOD)) as src, av.open(str(audio), "w", format="mp4") as out:
        a_in = src.streams.audio[0]
        a_out = out.add_stream_from_template(a_in)
        for pkt in src.demux(a_in):
            if pkt.dts is None:
                continue
            pkt.stream = a_out
            out.mux(pkt)
    return {"truncated": truncated, "garbage": garbage, "audio": audio}


def test_garbage_in_the_middle_costs_frames_not_the_stream(broken) -> None:
    src = VideoSource(str(broken["garbage"]), None, realtime=False)
    n = sum(1 for _ in src.frames())
    assert src.stats.decode_errors > 0
    assert 150 < n < 377  # frames before and after the damage still decode


def test_no_video_stream_and_unreachable_url_say_what_is_wrong(broken) -> None:
    with pytest.raises(SourceError, match="has no video stream"):
        next(VideoSource(str(broken["audio"]), None, realtime=False).frames())
    with pytest.raises(SourceError, match="cannot open rtsp://127.0.0.1"):
        next(VideoSource(f"rtsp://127.0.0.1:{free_port()}/x", None, open_timeout_s=2).frames())


def test_agent_survives_bad_cameras_and_keeps_the_good_one_running(
    broken, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fast = {
        "open_timeout_s": 2,
        "read_timeout_s": 2,
        "watchdog_s": 3,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 1,
    }
    cams = [{"id": "good", "source": str(GOOD), "loop": True, "realtime": True, "detect_fps": 2}]
    cams += [
        {"id": k, "source": str(v), "realtime": False, "detect_fps": 2, "stream": fast}
        for k, v in broken.items()
    ]
    # Its password must stay out of the log, last_error and so the centre's fleet view (FFmpeg's own
    # message repeats the URL).
    cams.append({"id": "unreachable", "source": f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/x", "stream": fast})
    cfg = StationConfig.model_validate(
        {
            "station": {"id": "bad-input"},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: publishing only queues
            "detector": {"model": "fastestdet_352"},
            "media": {"dir": str(tmp_path / "media")},
            "cameras": cams,
        }
    )
    agent = StationAgent(cfg)
    runner = threading.Thread(target=agent.run, daemon=True)
    caplog.set_level(logging.INFO)
    runner.start()
    try:
        time.sleep(3.0)
        first = {s.camera: s for s in agent.camera_status()}
        time.sleep(4.0)
        st = {s.camera: s for s in agent.camera_status()}
    finally:
        agent.stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    assert st["good"].state is CameraState.ONLINE
    assert st["good"].frames_decoded > first["good"].frames_decoded > 0
    assert st["good"].fps_in > 5  # 12.5 fps clip paced at real time

    # Damaged files: what could be read was read, the damage was counted, the camera ended cleanly.
    assert st["garbage"].state is CameraState.ENDED and st["garbage"].decode_errors > 0
    assert st["garbage"].frames_decoded > 0
    trunc = st["truncated"]  # the first 40 % of the file: 147 frames, then a read error
    assert trunc.state is CameraState.ENDED and trunc.decode_errors >= 1 and trunc.frames_decoded > 100, trunc
    # Nothing to decode: offline, retried with backoff, with the reason.
    for cam, reason in (("audio", "has no video stream"), ("unreachable", "cannot open")):
        s = st[cam]
        assert s.state in (CameraState.OFFLINE, CameraState.RECONNECTING), s
        assert s.open_errors >= 2 and reason in s.last_error, s
        assert s.frames_decoded == 0 and s.last_frame_ts is None
    assert "rtsp://admin:***@127.0.0.1" in st["unreachable"].last_error
    assert "s3cret" not in st["unreachable"].last_error and "s3cret" not in caplog.text
    assert "rtsp://admin:***@127.0.0.1" in caplog.text  # it was logged, redacted


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("cannot open rtsp://admin:pa55@10.0.0.2:554/ch1: refused: 'rtsp://admin:pa55@10.0.0.2:554/ch1'",
         "cannot open rtsp://admin:***@10.0.0.2:554/ch1: refused: 'rtsp://admin:***@10.0.0.2:554/ch1'"),
        ("rtsp://10.0.0.3:554/user=admin&password=pa55&channel=1&stream=0.sdp",
         "rtsp://10.0.0.3:554/user=admin&password=***&channel=1&stream=0.sdp"),
        ("http://cam/live.flv?token=abc123;x", "http://cam/live.flv?token=***;x"),
        ("rtsp://10.0.0.4/Streaming/Channels/102", "rtsp://10.0.0.4/Streaming/Channels/102"),
    ],
)  # fmt: skip
def test_camera_passwords_are_redacted_from_errors(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert str(SourceError(text)) == shown
