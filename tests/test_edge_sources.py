"""Sources other than RTSP: MPEG-TS, FLV, HLS and MJPEG over HTTP from a local server, MPEG-TS over
UDP, per-scheme options, and paced replays decoded a detect period at a time."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import pytest

from edge import sources
from edge.check import probe_camera
from edge.clips import ClipCut, write_clip
from edge.config import CameraConfig
from edge.errors import SourceError
from edge.sources import VideoSource, input_fps, network_options
from tests.conftest import CLIPS, free_port
from tests.mediakit import remux_piece, serve_folder


@pytest.fixture(scope="module")
def http_ts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("http")
    ts = d / "cam.ts"
    # Remux (no re-encode) the first 4 s of an H.264 clip into MPEG-TS and FLV, as an encoder serves them.
    for name, fmt in (("cam.ts", "mpegts"), ("cam.flv", "flv")):
        with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src, av.open(str(d / name), "w", format=fmt) as out:
            v = src.streams.video[0]
            o = out.add_stream_from_template(v)
            for pkt in src.demux(v):
                if pkt.dts is None:
                    continue
                if pkt.pts is not None and pkt.pts * v.time_base > 4:
                    break
                pkt.stream = o
                out.mux(pkt)
    with serve_folder(d) as url:
        yield f"{url}/{ts.name}"


@pytest.mark.parametrize("container", ["ts", "flv"])
def test_http_mpegts_and_flv_streams_decode_and_report_their_end_as_a_drop(http_ts: str, container: str) -> None:
    src = VideoSource(http_ts.replace(".ts", f".{container}"), detect_fps=5, open_timeout_s=5, read_timeout_s=5)
    got = []
    with pytest.raises(SourceError, match="stream ended"):
        for df in src.frames():
            got.append(df.pts_s)
    assert 18 <= len(got) <= 22  # 4 s at 5 fps
    assert got == sorted(got) and src.stats.decode_errors == 0


def test_an_mpegts_stream_over_udp_decodes_at_its_rate_and_a_silent_one_drops() -> None:
    """An encoder pushing MPEG-TS to the station's port in real time, as multicast cameras do."""
    port = free_port()
    stop = threading.Event()

    def send() -> None:
        with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src, \
                av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts") as out:  # fmt: skip
            v = src.streams.video[0]
            o = out.add_stream_from_template(v)
            t0 = time.monotonic()
            for pkt in src.demux(v):
                if pkt.dts is None:
                    continue
                t = float(pkt.dts * v.time_base)
                if t > 6 or stop.wait(max(0.0, t0 + t - time.monotonic())):
                    break
                pkt.stream = o
                out.mux(pkt)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    src = VideoSource(f"udp://127.0.0.1:{port}", detect_fps=5, open_timeout_s=5, read_timeout_s=2, watchdog_s=2)
    got: list[float] = []
    try:
        with pytest.raises(SourceError):  # the encoder stops sending: no data, the camera reconnects
            for df in src.frames():
                got.append(df.pts_s)
    finally:
        stop.set()
        sender.join(timeout=5)
    assert 20 <= len(got) <= 31, got  # up to 6 s at 5 fps (joined mid-stream, from its first keyframe)
    assert got == sorted(got) and src.stats.decode_errors <= 2  # a datagram lost on a loaded box costs a frame
    assert src.stats.frames_decoded >= 1.8 * len(got)  # the 10 fps clip: every frame decoded


def _ts_segment(path: Path, from_s: float, to_s: float, clock_s: float) -> float:
    """The clip's ``from_s``-``to_s`` remuxed into one MPEG-TS segment, its clock at ``clock_s``
    where the segment starts; returns the segment's length."""
    with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src, av.open(str(path), "w", format="mpegts") as out:
        o = out.add_stream_from_template(src.streams.video[0])
        remux_piece(out, o, from_s, to_s, clock_s)
    return to_s - from_s


@pytest.fixture(scope="module")
def http_hls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HLS playlists of 2 s segments, as stream servers and video platforms publish cameras:
    ``vod`` (8 s, ended), ``disc`` (4 s, then 4 s whose encoder started again: a discontinuity)
    and ``stale`` (a live playlist whose encoder stopped: it is never updated)."""
    d = tmp_path_factory.mktemp("hls")
    plans = {
        "vod": [(0, 2, 0), (2, 4, 2), (4, 6, 4), (6, 8, 6)],
        "disc": [(0, 2, 0), (2, 4, 2), None, (10, 12, 0), (12, 14, 2)],
        "stale": [(0, 2, 0), (2, 4, 2)],
    }
    for name, plan in plans.items():
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
        for i, seg in enumerate(plan):
            if seg is None:
                lines.append("#EXT-X-DISCONTINUITY")
                continue
            length = _ts_segment(d / f"{name}{i}.ts", *seg)
            lines += [f"#EXTINF:{length:.3f},", f"{name}{i}.ts"]
        if name != "stale":
            lines.append("#EXT-X-ENDLIST")
        (d / f"{name}.m3u8").write_text("\n".join(lines) + "\n")
    with serve_folder(d) as url:
        yield url


@pytest.mark.parametrize("playlist", ["vod", "disc"])
def test_an_hls_stream_decodes_at_its_rate_across_a_discontinuity_and_reports_its_end(
    http_hls: str, playlist: str
) -> None:
    src = VideoSource(f"{http_hls}/{playlist}.m3u8", detect_fps=5, open_timeout_s=5, read_timeout_s=5)
    got: list[float] = []
    with pytest.raises(SourceError, match="stream ended"):  # the playlist ended: a drop, reconnected
        for df in src.frames():
            got.append(df.pts_s)
    # 8 s at 5 detect frames a second on one timeline; at the discontinuity the encoder's clock
    # started again, and before edge.timeline the next 4 s had no detect frame.
    assert 39 <= len(got) <= 41 and all(b > a for a, b in zip(got, got[1:], strict=False)), got
    assert src.stats.frames_decoded == 80 and src.stats.decode_errors == 0
    assert src.stats.time_jumps == (1 if playlist == "disc" else 0)


def test_a_live_hls_playlist_that_stops_growing_is_a_drop(http_hls: str) -> None:
    """The encoder behind a live playlist stopped: the playlist is reloaded a few times (FFmpeg's
    ``max_reload``) and the connection ends, so the camera goes offline and reconnects."""
    src = VideoSource(f"{http_hls}/stale.m3u8", detect_fps=5, open_timeout_s=5, read_timeout_s=2)
    got: list[float] = []
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="stream ended|no data for 2 s"):
        for df in src.frames():
            got.append(df.pts_s)
    assert 18 <= len(got) <= 21  # the 4 s there were
    assert time.monotonic() - t0 < 20  # 9.5 s measured: 4 s of frames, then the reloads


class _MjpegCamera(http.server.BaseHTTPRequestHandler):
    """A cheap IP camera: JPEGs over HTTP as multipart/x-mixed-replace, at FPS frames a second."""

    jpegs: list[bytes] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        t0 = time.monotonic()
        try:
            for i in range(10**6):
                j = self.jpegs[i % len(self.jpegs)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n" % (len(j), j))
                # Not time.sleep: other tests here count the source's sleeps by patching it.
                self.server.stopping.wait(max(0.0, t0 + (i + 1) / MJPEG_FPS - time.monotonic()))  # type: ignore[attr-defined]
                if self.server.stopping.is_set():  # type: ignore[attr-defined]
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


MJPEG_FPS = 10


@pytest.fixture
def http_mjpeg() -> Iterator[str]:
    with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(60), src.decode(video=0), strict=False)]
    _MjpegCamera.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegCamera)
    server.daemon_threads = True
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    server.stopping.set()  # type: ignore[attr-defined]
    server.shutdown()


def test_an_mjpeg_camera_over_http_keeps_real_time_and_its_clip_its_length(http_mjpeg: str, tmp_path: Path) -> None:
    """Its demuxer stamps frames at 25 fps whatever the camera sends: a 10 fps camera's media time
    ran at 0.4 of real time, detection at 2 fps, and its clips played 2.5 times too fast."""
    packets: list[av.Packet] = []
    src = VideoSource(http_mjpeg, detect_fps=5, open_timeout_s=5, read_timeout_s=5,
                      on_packet=lambda p, _t: packets.append(p))  # fmt: skip
    got: list[tuple[float, float]] = []
    t0 = time.monotonic()
    for df in src.frames():
        got.append((df.pts_s, time.monotonic() - t0))
        if len(got) == 20:
            break
    media, wall = got[-1][0] - got[0][0], got[-1][1] - got[0][1]
    assert abs(media - wall) < 0.25, got  # media time is real time
    assert 3.4 <= wall <= 4.4  # 20 detect frames at 5 a second
    assert src.stats.frames_decoded >= 1.8 * len(got)  # every frame of the 10 fps camera decoded
    assert all(b.pts > a.pts for a, b in zip(packets, packets[1:], strict=False))
    cut = ClipCut("d" * 32, tuple(packets), 0.0)
    ref = write_clip(cut, tmp_path)  # MJPEG: transcoded to H.264
    assert ref is not None
    with av.open(ref.path) as c:
        frames = sum(1 for _ in c.decode(video=0))
        plays_s = c.duration / av.time_base  # as a player sees it
    span = float((packets[-1].pts - packets[0].pts) * packets[0].time_base)
    assert frames == len(packets) and abs(ref.duration_s - span) < 0.3, (ref, span)
    assert abs(plays_s - span) < 0.3, (plays_s, span)  # at the camera's own rate
    found = probe_camera(CameraConfig.model_validate({"id": "cheap", "source": http_mjpeg}))
    assert found.ok and "mjpeg 768x432 timed on arrival" in found.detail, found  # not "@ 25.0 fps"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("rtsp://cam/1", "rtsp_transport"),
        ("rtmp://srv/live/cam", "rw_timeout"),
        ("http://cam/stream.flv", "rw_timeout"),
        ("udp://0.0.0.0:5000", "overrun_nonfatal"),
    ],
)
def test_each_scheme_gets_a_timeout(url: str, key: str) -> None:
    opts = network_options(url, "tcp", 3.0)
    assert key in opts and any(v == "3000000" for v in opts.values())


def test_media_time_keeps_increasing_across_loops(tmp_path: Path) -> None:
    src = VideoSource(str(CLIPS / "dashcam_short_720p.mp4"), detect_fps=5, realtime=False, loop=True)
    times = []
    for df in src.frames():
        times.append(df.pts_s)
        if len(times) >= 20:  # the clip is 1.5 s: this spans two loops
            break
    assert src.stats.loops >= 1 and all(b > a for a, b in zip(times, times[1:], strict=False))


def test_packets_kept_after_a_loop_do_not_keep_that_pass_decoder_open() -> None:
    kept: list[av.Packet] = []
    src = VideoSource(str(CLIPS / "dashcam_short_720p.mp4"), detect_fps=5, realtime=False, loop=True,
                      on_packet=lambda p, _t: kept.append(p))  # fmt: skip
    decoded = 0
    for _ in src.frames():
        decoded += 1
        if src.stats.loops >= 1:
            break
    first_pass = kept[0].stream
    assert first_pass is not kept[-1].stream  # the ring spans two passes, as after a reconnect
    # The first pass's packets hold its container; its decoder (and frame pool) went with the pass.
    assert decoded > 5 and not first_pass.codec_context.is_open


def test_start_s_begins_the_first_pass_later_in_the_file() -> None:
    clip = str(CLIPS / "indoor_one_by_one.mp4")
    frames = []
    for start in (0.0, 60.0):
        src = VideoSource(clip, None, realtime=False, start_s=start)
        first = next(iter(src.frames()))
        frames.append(first.frame.pts * float(first.frame.time_base))
        assert first.pts_s == 0.0  # media time still starts at 0 for the rules
    assert frames[0] == 0.0 and 50.0 <= frames[1] <= 60.0  # the keyframe at or before 60 s


def _replay(src: VideoSource, seconds: float, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list[float]]:
    """The due frames of a paced replay over ``seconds``, each with the time it came (from the
    start) and the source's ``due_mark`` then; and every sleep the source took."""
    sleeps: list[float] = []
    real_sleep = sources.time.sleep

    def counted(s: float) -> None:
        sleeps.append(s)
        real_sleep(s)

    monkeypatch.setattr(sources.time, "sleep", counted)
    out, t0 = [], time.monotonic()
    for df in src.frames():
        out.append((df, time.monotonic() - t0, src.stats.due_mark))
        if out[-1][1] >= seconds:
            break
    return out, sleeps


def test_a_paced_sub_stream_is_decoded_a_detect_period_at_a_time_and_never_ahead_of_real_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clip = str(CLIPS / "dashcam_highway.mp4")  # 960x540 at 25 fps: five frames per detect period
    src = VideoSource(clip, detect_fps=5.0, realtime=True)
    assert src.bursts
    due, sleeps = _replay(src, 2.0, monkeypatch)
    first = due[0][0].pts_s
    for df, at, _ in due:
        assert at >= df.pts_s - first - 0.02, (df.pts_s, at)  # a replay never runs ahead of its clock
    # The input rate read between two detect frames is the stream's, bursts or not.
    assert 24.0 <= input_fps(due[1][2], due[-1][2]) <= 26.0
    assert 9 <= len(due) <= 12  # 5 due frames a second
    assert src.stats.frames_decoded >= 5 * (len(due) - 1)  # every frame is still decoded
    # One wake-up per detect period, not one per frame (25 a second).
    assert len(sleeps) <= len(due) + 3, (len(sleeps), len(due))
    # The first frames of a burst wait for its due frame: at most a period late, plus the decoding.
    assert src.stats.lag_s.snapshot().quantile(0.99) <= 0.5


def test_large_frames_and_unpaced_or_udp_sources_are_not_decoded_in_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    clip = str(CLIPS / "dashcam_highway.mp4")
    monkeypatch.setattr(sources, "BURST_MAX_PIXELS", 640 * 360)  # 960x540 now counts as large
    src = VideoSource(clip, detect_fps=5.0, realtime=True)
    due, sleeps = _replay(src, 1.0, monkeypatch)
    assert len(sleeps) >= 3 * len(due), (len(sleeps), len(due))  # paced frame by frame
    assert not VideoSource(clip, detect_fps=5.0, realtime=False).bursts  # as fast as it decodes
    assert VideoSource("rtsp://cam/1", transport="tcp").bursts  # the kernel buffers TCP meanwhile
    assert not VideoSource("rtsp://cam/1", transport="udp").bursts  # a sleeping reader drops UDP
    assert not VideoSource("udp://239.0.0.1:5000").bursts
    assert VideoSource("http://cam/live.ts").bursts
