"""RTSP against a real server: Debian's GStreamer RTSP server (run by the system python3, which has
``gi``) streams a recorded H.264 clip; the test kills it mid-stream and starts it again."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.agent import StationAgent
from edge.config import StationConfig
from edge.types import CameraState
from tests.conftest import CLIPS, Broker, free_port, wait_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, clip = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={clip} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
GLib.MainLoop().run()
"""


def _have_gst_rtsp() -> str:
    probe = 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if r.returncode == 0 else r.stderr.decode(errors="replace")[-300:]


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[tuple[int, Callable[[], None], Callable[[], None]]]:
    missing = _have_gst_rtsp()
    if missing:
        pytest.skip(f"GStreamer RTSP server not installed (run scripts/install-os-deps): {missing}")
    script = tmp_path / "rtsp_server.py"
    script.write_text(SERVER)
    port = free_port()
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [SYSTEM_PYTHON, str(script), str(port), str(CLIPS / "indoor_one_by_one.mp4")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port("127.0.0.1", port, timeout_s=15)

    def kill() -> None:
        procs[-1].kill()
        procs[-1].wait(timeout=10)

    start()
    yield port, kill, start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_agent_reconnects_after_rtsp_server_restart(rtsp_server, broker: Broker, tmp_path: Path) -> None:
    port, kill, start = rtsp_server
    fast = {
        "open_timeout_s": 3,
        "read_timeout_s": 2,
        "watchdog_s": 3,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 2,
    }
    cfg = StationConfig.model_validate(
        {
            "station": {"id": "rtsp-test"},
            "mqtt": {"host": broker.host, "port": broker.port},
            "detector": {"model": "fastestdet_352"},
            "media": {"dir": str(tmp_path / "media"), "clips": False},
            "cameras": [
                {"id": "ipcam", "source": f"rtsp://127.0.0.1:{port}/cam", "detect_fps": 2, "stream": fast},
                {
                    "id": "filecam",
                    "source": str(CLIPS / "parking_lot_cars.mp4"),
                    "loop": True,
                    "realtime": True,
                    "detect_fps": 2,
                },
            ],
        }
    )
    agent = StationAgent(cfg)
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:

        def status(cam: str):
            return next(s for s in agent.camera_status() if s.camera == cam)

        _wait(lambda: status("ipcam").state is CameraState.ONLINE, 30, "the RTSP camera online")
        assert status("ipcam").last_frame_ts is not None
        kill()
        _wait(
            lambda: status("ipcam").state in (CameraState.OFFLINE, CameraState.RECONNECTING),
            20,
            "the RTSP camera reported offline",
        )
        down = status("ipcam")
        assert down.last_error, down
        file_frames = status("filecam").frames_decoded
        time.sleep(2.0)  # the server stays down a while: the other camera keeps running
        assert status("filecam").frames_decoded > file_frames
        assert status("filecam").state is CameraState.ONLINE
        frames_before = status("ipcam").frames_decoded
        start()
        _wait(
            lambda: (
                status("ipcam").state is CameraState.ONLINE and status("ipcam").frames_decoded > frames_before
            ),
            30,
            "the RTSP camera back online",
        )
        back = status("ipcam")
        assert back.reconnects >= 1 and back.open_errors >= 0
    finally:
        agent.stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()


def test_a_record_stream_over_rtsp_reconnects_while_detection_runs(
    rtsp_server, broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A dual-stream camera whose record stream is the RTSP server: its tap goes down with the server
    # and comes back by itself; the detect stream (a file here) never stops. The URL's password
    # stays out of what the tap reports.
    port, kill, start = rtsp_server
    fast = {"open_timeout_s": 3, "read_timeout_s": 2, "backoff_initial_s": 0.5, "backoff_max_s": 2}
    cfg = StationConfig.model_validate(
        {
            "station": {"id": "rtsp-rec"},
            "mqtt": {"host": broker.host, "port": broker.port},
            "detector": {"model": "fastestdet_352"},
            "media": {"dir": str(tmp_path / "media")},
            "cameras": [
                {
                    "id": "dual",
                    "source": str(CLIPS / "parking_lot_cars.mp4"),
                    "record_source": f"rtsp://admin:s3cret@127.0.0.1:{port}/cam",
                    "loop": True,
                    "detect_fps": 2,
                    "stream": fast,
                }
            ],
        }
    )
    agent = StationAgent(cfg)
    tap = agent.cameras()[0].tap
    assert tap is not None
    runner = threading.Thread(target=agent.run, daemon=True)
    caplog.set_level("INFO", logger="edge.camera")
    runner.start()
    try:
        _wait(lambda: tap.online and tap.packets > 20, 30, "the record stream online")
        kill()
        _wait(lambda: not tap.online and tap.errors >= 1, 20, "the record stream reported down")
        decoded = agent.runners[0].source.stats.frames_decoded
        time.sleep(2.0)  # the server stays down a while: detection goes on
        assert agent.runners[0].source.stats.frames_decoded > decoded
        assert agent.runners[0].state is CameraState.ONLINE
        packets = tap.packets
        start()
        _wait(lambda: tap.online and tap.packets > packets + 20, 30, "the record stream back")
    finally:
        agent.stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive()
    assert "admin:***@" in tap.last_error and "s3cret" not in tap.last_error, tap.last_error
    assert "s3cret" not in caplog.text
    down = [r for r in caplog.records if "record stream:" in r.getMessage() and r.levelname == "WARNING"]
    back = [r for r in caplog.records if "record stream back" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1, [r.getMessage() for r in caplog.records if "record" in r.getMessage()]
