"""Media time across a stream's clock jumps (edge.timeline): recordings joined end to end, as DVR
exports are, and an encoder that restarts while the station listens."""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path

import av
import pytest

from edge.check import probe_camera
from edge.clips import ClipRecorder, write_clip
from edge.config import CameraConfig
from edge.errors import SourceError
from edge.sources import VideoSource
from edge.timeline import BACK_S, JUMP_S, Timeline
from tests.conftest import free_port
from tests.mediakit import CLIP, remux_piece
from tests.test_rtsp_reconnect import rtsp_server  # noqa: F401 (a fixture)


def _encoded(out: av.container.OutputContainer, codec: str, from_s: float, to_s: float, clock_s: float) -> None:
    """The clip's ``from_s``-``to_s`` encoded anew with ``codec``, its clock starting at ``clock_s``."""
    with av.open(CLIP) as src:
        v = src.streams.video[0]
        o = out.add_stream(codec, rate=v.average_rate)
        o.width, o.height, o.pix_fmt = v.width, v.height, "yuv420p"
        o.time_base = Fraction(1, 90000)
        step = int(90000 / v.average_rate)
        n = 0
        for f in src.decode(v):
            t = float(f.pts * v.time_base)
            if from_s <= t < to_s:
                g = f.reformat(format="yuv420p")
                g.pts, g.time_base = round(clock_s * 90000) + n * step, o.time_base
                n += 1
                out.mux(o.encode(g))
        out.mux(o.encode())


def _joined(path: Path, pieces: list[tuple[float, float, float]], codec: str = "") -> str:
    """MPEG-TS files of the pieces, each from its own muxer, joined byte for byte. ``codec``:
    encoded anew with it (empty: the clip's H.264, remuxed)."""
    with path.open("wb") as joined:
        for i, (a, b, clock) in enumerate(pieces):
            part = path.with_suffix(f".{i}.ts")
            with av.open(str(part), "w", format="mpegts") as out:
                if codec:
                    _encoded(out, codec, a, b, clock)
                else:
                    with av.open(CLIP) as src:
                        o = out.add_stream_from_template(src.streams.video[0])
                    remux_piece(out, o, a, b, clock)
            joined.write(part.read_bytes())
    return str(path)


@pytest.mark.parametrize("second_clock_s", [0.0, 3600.0], ids=["back", "ahead"])
def test_a_joined_recording_keeps_its_detect_rate_and_its_clip_ring_in_order(
    tmp_path: Path, second_clock_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 4 s recordings joined: the second's clock starts again (back), or an hour on (ahead)."""
    path = _joined(tmp_path / "dvr.ts", [(0, 4, 0.0), (10, 14, second_clock_s)])
    ring: list[float] = []
    src = VideoSource(path, detect_fps=5, realtime=False, on_packet=lambda _p, t: ring.append(t))
    with caplog.at_level(logging.WARNING, logger="edge.sources"):
        got = [df.pts_s for df in src.frames()]
    # 8 s of video at 5 detect frames a second, on one timeline. Without the jump handled, a jump
    # back gave no detect frame for the second recording's first 4 s, and a jump ahead an hour.
    assert 38 <= len(got) <= 41, got
    assert all(b > a for a, b in zip(got, got[1:], strict=False))
    assert 7.6 <= got[-1] - got[0] <= 8.0
    assert max(b - a for a, b in zip(got, got[1:], strict=False)) <= 0.25
    # The clip ring's times run on with them, so a clip cut across the join is one ordered slice.
    assert all(b >= a for a, b in zip(ring, ring[1:], strict=False)) and 7.8 <= ring[-1] - ring[0] <= 8.0
    assert src.stats.frames_decoded == 80 and src.stats.time_jumps == 1
    said = [r.getMessage() for r in caplog.records if "timestamps jumped" in r.getMessage()]
    assert len(said) == 1 and f"{second_clock_s - 3.9:+.1f} s" in said[0], said  # from the last frame, 3.9 s


@pytest.mark.parametrize(("fmt", "gap_kept"), [("mp4", True), ("matroska", True), ("mpegts", False)])
def test_a_gap_ahead_is_real_time_in_mp4_and_mkv_and_a_jump_in_mpegts(tmp_path: Path, fmt: str, gap_kept: bool) -> None:
    """A recorder that paused 12 s (motion-only recording): MP4 and MKV times are the camera's
    clock, as FFmpeg trusts them; MPEG-TS may jump (FFmpeg's AVFMT_TS_DISCONT), as a joined export does."""
    path = tmp_path / f"paused.{fmt}"
    with av.open(str(path), "w", format=fmt) as out, av.open(CLIP) as src:
        o = out.add_stream_from_template(src.streams.video[0])
        remux_piece(out, o, 0, 4, 0.0)
        remux_piece(out, o, 10, 14, 16.0)  # 4 s of video, then 12 s of none
    ring: list[float] = []
    src = VideoSource(str(path), detect_fps=5, realtime=False, on_packet=lambda _p, t: ring.append(t))
    got = [df.pts_s for df in src.frames()]
    span = 19.9 if gap_kept else 7.9
    assert abs((got[-1] - got[0]) - span) < 0.15 and abs((ring[-1] - ring[0]) - span) < 0.15, (got[-1], ring[-1])
    assert src.stats.time_jumps == (0 if gap_kept else 1)


@pytest.mark.parametrize("codec", ["", "mpeg2video"], ids=["remuxed", "transcoded"])
def test_a_clip_across_the_join_plays_its_window_in_order(tmp_path: Path, codec: str) -> None:
    """An event from 3 s to 5 s of a recording joined at 4 s, its clip 2 s either side."""
    path = _joined(tmp_path / "dvr.ts", [(0, 4, 0.0), (10, 14, 0.0)], codec)
    ring = ClipRecorder(pre_s=2.0, post_s=2.0)
    src = VideoSource(path, detect_fps=5, realtime=False, on_packet=ring.push)
    begun = ended = False
    for df in src.frames():  # the ring gets the packets as they are read, the event on detect frames
        if not begun and df.pts_s >= 3.0:
            ring.begin("e1", df.pts_s)
            begun = True
        if not ended and df.pts_s >= 5.0:
            ring.end("e1", df.pts_s)
            ended = True
    ring.flush()
    (cut,) = ring.take_ready()
    ref = write_clip(cut, tmp_path / "clips")  # before: the muxer refused the join's time going back
    assert ref is not None
    with av.open(ref.path) as c:
        v = c.streams.video[0]
        times = [float(f.pts * v.time_base) for f in c.decode(v)]
    # From the keyframe at or before 1 s (a transcode trims to 1 s) to 7 s, at 10 fps, in order;
    # before, a transcode dropped what followed the join as "before the window".
    assert 58 <= len(times) <= 62 and all(b > a for a, b in zip(times, times[1:], strict=False)), times
    assert 5.8 <= ref.duration_s <= 6.2 and 5.7 <= times[-1] - times[0] <= 6.1


def test_an_encoder_restarting_while_the_station_listens_costs_no_detect_frame() -> None:
    """MPEG-TS over UDP: the encoder stops and starts again (its clock from zero), the station's
    socket stays open throughout."""
    port = free_port()
    stop = threading.Event()

    def encoder() -> None:
        for _ in range(2):  # two runs of the encoder, each a new muxer with a clock from zero
            with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts") as out:
                with av.open(CLIP) as src:
                    o = out.add_stream_from_template(src.streams.video[0])
                remux_piece(out, o, 0, 3, 0.0, pace=stop)
            if stop.is_set():
                return

    sender = threading.Thread(target=encoder, daemon=True)
    sender.start()
    src = VideoSource(f"udp://127.0.0.1:{port}", detect_fps=5, open_timeout_s=5, read_timeout_s=2, watchdog_s=2)
    got: list[float] = []
    try:
        with pytest.raises(SourceError):  # the encoder stops for good: no data, the camera reconnects
            for df in src.frames():
                got.append(df.pts_s)
    finally:
        stop.set()
        sender.join(timeout=5)
    # Up to 6 s at 5 fps, joined mid-stream: the second run's 3 s are all detected (before, none
    # were: media time stood still at the restart until the new clock passed the old one).
    assert 24 <= len(got) <= 31, got
    assert all(b > a for a, b in zip(got, got[1:], strict=False))
    assert max(b - a for a, b in zip(got, got[1:], strict=False)) <= 0.4
    assert src.stats.time_jumps == 1


def test_a_raw_h264_file_replays_at_its_own_rate_and_gives_clips(tmp_path: Path) -> None:
    """An ``.h264`` export (an elementary stream, no container times): its demuxer states 25 fps
    and leaves the packets unstamped. Before, this 10 fps file replayed 2.5 times too fast (every
    frame taken as 0.04 s), and the clip ring, given no stamp, never had a packet to cut."""
    raw = tmp_path / "bodycam.h264"
    with av.open(CLIP) as src, av.open(str(raw), "w", format="h264") as out:
        v = src.streams.video[0]
        o = out.add_stream_from_template(v)
        for pkt in src.demux(v):
            if pkt.dts is None:
                continue
            if pkt.pts * v.time_base >= 6:
                break
            pkt.stream = o
            out.mux(pkt)
    ring = ClipRecorder(pre_s=10.0)
    src = VideoSource(str(raw), detect_fps=5, realtime=False, on_packet=ring.push)
    got = [df.pts_s for df in src.frames()]
    assert src.stats.frames_decoded == 60
    assert 29 <= len(got) <= 31 and 5.7 <= got[-1] <= 6.0 and all(b > a for a, b in zip(got, got[1:], strict=False))
    cut = ring.recent("last4", 4.0)
    assert cut is not None
    ref = write_clip(cut, tmp_path / "clips")
    assert ref is not None and 4.0 <= ref.duration_s <= 5.1, ref
    with av.open(ref.path) as c:
        assert 40 <= sum(1 for _ in c.decode(video=0)) <= 51
    found = probe_camera(CameraConfig.model_validate({"id": "bodycam", "source": str(raw)}))
    assert found.ok and "h264 768x432 @ 10.0 fps" in found.detail, found


def test_rtsp_stamps_of_a_stream_with_b_frames_keep_the_clip_ring_on_the_stream_clock(rtsp_server) -> None:  # noqa: F811
    """Over RTSP, some packets of a stream with B-frames come with a presentation time and no decode
    time, so the ring's stamps step back a few frames now and then (0.3 s here). Held, not taken
    as jumps: a jump moves the ring's clock a frame ahead of the stream's for good."""
    port, _kill, _start = rtsp_server
    seen: list[tuple[float, float]] = []  # (the packet's stamp: decode time, else presentation; its ring time)

    def sink(p: av.Packet, t: float) -> None:
        seen.append((float((p.dts if p.dts is not None else p.pts) * p.time_base), t))

    src = VideoSource(f"rtsp://127.0.0.1:{port}/cam", detect_fps=5, open_timeout_s=10, read_timeout_s=5, on_packet=sink)
    for df in src.frames():
        if df.pts_s >= 6.0:
            break
    # Ring time less stamp: the first packet's, the pass's own offset, is every packet's once the
    # few held back have passed (before: a frame more from the first step back on).
    offsets = [t - d for d, t in seen]
    assert len(offsets) > 50 and all(o >= offsets[0] - 1e-6 for o in offsets)
    assert all(abs(o - offsets[0]) < 1e-6 for o in offsets[-40:]), sorted({round(o, 3) for o in offsets})
    assert src.stats.time_jumps == 0


def test_a_clip_whose_packets_have_only_presentation_times_for_a_while_is_written(tmp_path: Path) -> None:
    """Stamps as RTSP gives the first packets of a stream with B-frames: a P-frame with a
    presentation time and no decode time, ahead of the B-frames that follow it. The ring holds
    them at the latest time; the clip's decode times must still rise, or the muxer refuses it."""
    src = av.open(CLIP)  # open while its packets are in use, as a source's is
    v = src.streams.video[0]
    packets = []
    for pkt in src.demux(v):
        if pkt.dts is None:
            continue
        if pkt.pts * v.time_base >= 3:
            break
        packets.append(pkt)
    assert any(p.pts > p.dts for p in packets)  # B-frames: presentation order is not decode order
    for p in packets[1:6]:
        p.dts = None  # as RTSP leaves them
    ring = ClipRecorder(pre_s=10.0)
    for p in packets:
        ring.push(p, float(p.pts * p.time_base) if p.dts is None else float(p.dts * p.time_base))
    cut = ring.recent("rtsp", 10.0)
    assert cut is not None and len(cut.packets) == len(packets)
    ref = write_clip(cut, tmp_path)  # before: EINVAL, two packets with the same decode time
    src.close()
    assert ref is not None
    with av.open(ref.path) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(packets)


def test_timeline_rules() -> None:
    step = 0.04
    live = Timeline(100.0, step, live=True)
    assert live(5.0, now=0.0) == 100.0
    assert live(5.04, now=0.04) == pytest.approx(100.04)
    # A network stall: the stream's clock moved as the wall clock did. Real time, not a jump.
    assert live(35.04, now=30.04) == pytest.approx(130.04) and live.jumps == 0
    # The clock an hour on after a second of wall time: a jump, media time goes on a frame later.
    assert live(3635.04, now=31.0) == pytest.approx(130.08) and live.jumps == 1
    assert live(3635.08, now=31.04) == pytest.approx(130.12)
    # Stamps a few frames back (presentation times in decode order, with B-frames) are no jump:
    # held at the latest time, media time never goes back, and no drift follows.
    assert live(3635.00, now=31.08) == pytest.approx(130.12) and live.jumps == 1
    assert live(3635.04, now=31.12) == pytest.approx(130.12)
    assert live(3635.20, now=31.16) == pytest.approx(130.24) and live.jumps == 1
    # Back by more than BACK_S: a jump.
    assert live(3635.20 - BACK_S - 0.01, now=31.2) == pytest.approx(130.28) and live.jumps == 2
    assert live.last_jump_s < 0

    # A file has no wall time to account for a gap: ahead by more than JUMP_S is a jump.
    replay = Timeline(0.0, step)
    replay(0.0, now=0.0)
    assert replay(JUMP_S - 1, now=0.0) == pytest.approx(JUMP_S - 1) and replay.jumps == 0
    assert replay(3 * JUMP_S, now=0.0) == pytest.approx(JUMP_S - 1 + step) and replay.jumps == 1
