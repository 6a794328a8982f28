"""Sideways recordings (phones, body-cams: a display matrix) are analysed upright, as players and
OpenCV's VideoCapture show them; their clips keep the matrix, and the centre's H.264 copy too."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from central.media.renditions import make_h264_copy
from edge.check import probe_camera
from edge.clips import ClipCut, write_clip
from edge.config import CameraConfig
from edge.errors import SourceError
from edge.orient import Upright, file_turns, quarter_turns
from edge.sources import VideoSource
from tests.conftest import CLIPS
from tests.test_golden_replay import EXAMPLES, INDOOR_VISITS, replay

W, H = 320, 240


def marked(path: Path, rotation: int, codec: str = "libx264", frames: int = 5) -> np.ndarray:
    """A clip whose stored picture has a white block at its top left, shown turned by ``rotation``."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:60, :80] = 255
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        if codec == "libx265":
            s.codec_context.options = {"x265-params": "log-level=error"}
        if rotation:
            s.set_display_rotation(rotation)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            out.mux(s.encode(f))
        out.mux(s.encode())
    return img


def corner(img: np.ndarray) -> tuple[tuple[int, int], str]:
    """(width, height) and where the white block is."""
    g = img if img.ndim == 2 else img.mean(axis=2)
    ys, xs = np.nonzero(g > 128)
    h, w = g.shape
    return (w, h), ("top" if ys.mean() < h / 2 else "bottom") + "-" + ("left" if xs.mean() < w / 2 else "right")


@pytest.mark.parametrize("rotation", [0, 90, -90, 180])
def test_frames_are_turned_as_opencv_shows_them(tmp_path: Path, rotation: int) -> None:
    path = tmp_path / f"r{rotation}.mp4"
    marked(path, rotation)
    cap = cv2.VideoCapture(str(path))  # the reference: OpenCV turns by the display matrix itself
    ok, shown = cap.read()
    cap.release()
    assert ok
    turns = file_turns(path)
    assert turns == {0: 0, 90: 1, -90: 3, 180: 2}[rotation]
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert quarter_turns(frame) == turns
    ours = Upright(turns)(frame).to_ndarray(format="rgb24") if turns else frame.to_ndarray(format="rgb24")
    assert corner(ours) == corner(shown)
    if rotation:
        assert corner(ours) != corner(frame.to_ndarray(format="rgb24"))  # it did turn


def test_upright_follows_a_change_of_size_and_refuses_no_turn() -> None:
    up = Upright(1)
    for w, h in ((W, H), (W * 2, H * 2), (W, H)):
        f = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        out = up(f)
        assert (out.width, out.height, out.format.name) == (h, w, "yuv420p")
    with pytest.raises(ValueError):
        Upright(0)
    assert file_turns(Path("/nonexistent.mp4")) is None  # asked again once the file is there


def test_a_file_without_video_has_no_turns_to_read(tmp_path: Path) -> None:
    path = tmp_path / "audio.wav"  # the source then says "no video stream" itself
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    assert file_turns(path) is None


def test_a_file_that_appears_after_the_first_try_is_still_turned(tmp_path: Path) -> None:
    path = tmp_path / "later.mp4"
    src = VideoSource(str(path), detect_fps=None, realtime=False)
    with pytest.raises(SourceError):
        next(src.frames())
    marked(path, 90)  # the recording is copied in after the agent started
    frame = next(src.frames()).frame
    assert (frame.width, frame.height) == (H, W)  # shown as a player shows it: portrait


@pytest.fixture(scope="module")
def sideways(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 s of indoor_one_by_one.mp4 as a phone stores a portrait-held recording: each
    picture turned a quarter clockwise, with a display matrix that turns it back."""
    path = tmp_path_factory.mktemp("sideways") / "indoor_sideways.mp4"
    with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src, av.open(str(path), "w") as out:
        s = src.streams.video[0]
        o = out.add_stream("libx264", rate=10)
        o.width, o.height, o.pix_fmt = s.codec_context.height, s.codec_context.width, "yuv420p"
        o.codec_context.options = {"preset": "ultrafast", "crf": "20"}
        o.set_display_rotation(90)
        for i, f in enumerate(src.decode(s)):
            if i >= 600:
                break
            g = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(f.to_ndarray(format="rgb24"), -1)), format="rgb24")
            g.pts, g.time_base = i, Fraction(1, 10)
            out.mux(o.encode(g))
        out.mux(o.encode())
    return path


def test_a_sideways_recording_gives_the_upright_clips_alerts_snapshots_and_clips(
    sideways: Path, tmp_path: Path
) -> None:
    snaps, media = tmp_path / "snaps", tmp_path / "media"
    lines, summary = replay(sideways, EXAMPLES / "indoor_loitering.yaml", "--all-phases",
                            "--snapshots", str(snaps), "--media", str(media))  # fmt: skip
    starts = [x["pts_s"] for x in lines if x["phase"] == "start"]
    # The visits that start in the first 60 s, one loitering alert each (dwell 8 s), as upright.
    visits = [v for v in INDOOR_VISITS if v[0] + 8 < 60]
    assert len(starts) == len(visits), (starts, summary)
    for (enter, leave), t in zip(visits, starts, strict=True):
        assert enter + 6 <= t <= min(leave, enter + 12), (enter, t)
    for jpg in snaps.iterdir():  # snapshots as shown: landscape 768x432, not the stored 432x768
        assert cv2.imread(str(jpg)).shape[:2] == (432, 768)
    clips = sorted(media.rglob("*.mp4"))
    assert clips
    for clip in clips:  # remuxed with the display matrix: players turn them as they turned the source
        assert file_turns(clip) == 1
    # The installer's check says so too.
    found = probe_camera(CameraConfig.model_validate({"id": "phone", "source": str(sideways)}))
    assert found.ok and "432x768" in found.detail and "recorded sideways" in found.detail, found
    plain = probe_camera(CameraConfig.model_validate({"id": "room", "source": str(CLIPS / "indoor_one_by_one.mp4")}))
    assert plain.ok and "sideways" not in plain.detail


@pytest.mark.parametrize("rotation", [90, -90])
def test_a_transcoded_clip_of_a_sideways_file_keeps_its_display_matrix(tmp_path: Path, rotation: int) -> None:
    """An old phone's MPEG-4 part 2 recording: its clip is encoded anew as H.264, by a decoder that
    never sees the matrix; before, the clip played lying down."""
    src = tmp_path / "old_phone.mp4"
    marked(src, rotation, codec="mpeg4", frames=20)
    packets: list[av.Packet] = []
    for _ in VideoSource(str(src), detect_fps=5, realtime=False, on_packet=lambda p, _t: packets.append(p)).frames():
        pass
    ref = write_clip(ClipCut("c" * 32, tuple(packets), 0.0), tmp_path / "clips")
    assert ref is not None
    with av.open(ref.path) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    assert file_turns(ref.path) == file_turns(src) == {90: 1, -90: 3}[rotation]
    shown = []
    for path in (src, ref.path):
        cap = cv2.VideoCapture(str(path))
        ok, img = cap.read()
        cap.release()
        assert ok
        shown.append(corner(img))
    assert shown[0] == shown[1] and shown[0][0] == (H, W)  # shown upright, as the source is


def test_the_centres_h264_copy_keeps_the_display_matrix(tmp_path: Path) -> None:
    src = tmp_path / "phone.mp4"
    marked(src, 90, codec="libx265")  # a phone's H.265 portrait recording
    assert make_h264_copy(src, tmp_path / "phone.h264.mp4")
    with av.open(str(tmp_path / "phone.h264.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    assert file_turns(tmp_path / "phone.h264.mp4") == file_turns(src) == 1
