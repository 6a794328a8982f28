"""Evidence clips play in a real browser <video> (Debian's chromium) and in PyAV, whatever the
camera's codec: H.264 is remuxed as it is, older codecs are transcoded to H.264 once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from edge.clips import ClipCut, write_clip
from tests.conftest import CLIPS
from tests.mediakit import serve_folder

CHROMIUM = Path("/usr/bin/chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium missing: scripts/install-os-deps installs it"
)


def cut_from(clip: Path, start_s: float, seconds: float) -> ClipCut:
    """Packets from the keyframe at or before ``start_s``, as the packet ring hands them over."""
    c = av.open(str(clip))
    s = c.streams.video[0]
    tb = float(s.time_base)
    packets: list[av.Packet] = []
    for p in c.demux(s):
        if not p.size or p.pts is None:
            continue
        t = p.pts * tb
        if t > start_s + seconds:
            break
        if p.is_keyframe and t <= start_s:
            packets = []
        packets.append(p)
    assert packets and packets[0].is_keyframe
    return ClipCut("c" * 32, tuple(packets), packets[0].pts * tb, from_t_s=start_s)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("clips")
    with serve_folder(root) as url:
        yield url, root


@pytest.mark.parametrize(
    ("clip", "codec", "transcoded"),
    [
        ("indoor_one_by_one.mp4", "h264", False),  # an IP camera's H.264: remuxed, no re-encode
        ("campus_pedestrians_vtest.avi", "msmpeg4", True),  # an old encoder's MS-MPEG4
        ("motorway_pedestrian.avi", "mpeg4", True),  # MPEG-4 part 2 (packed xvid)
    ],
)
def test_alert_clip_plays_in_the_browser_and_in_pyav(served, clip: str, codec: str, transcoded: bool) -> None:
    url, root = served
    with av.open(str(CLIPS / clip)) as c:
        assert c.streams.video[0].codec_context.name == codec
    folder = root / clip.replace(".", "_")
    ref = write_clip(cut_from(CLIPS / clip, 6.0, 5.0), folder)
    assert ref is not None and ref.content_type == "video/mp4" and Path(ref.path).suffix == ".mp4"
    data = Path(ref.path).read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart
    with av.open(ref.path) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        frames = sum(1 for _ in c.decode(video=0))
    if transcoded:  # decoded anyway: trimmed to the window asked for
        assert abs(ref.start_pts_s - 6.0) < 0.2 and 4.5 <= ref.duration_s <= 5.5, ref
    else:  # remuxed: from the keyframe at or before the window (indoor: a keyframe every second)
        assert 5.0 <= ref.start_pts_s <= 6.0 and 4.5 <= ref.duration_s <= 6.5, ref
    assert frames > 0
    if not transcoded:
        # Remuxed, not re-encoded: the same compressed bytes as the camera sent.
        with av.open(str(CLIPS / clip)) as src, av.open(ref.path) as out:
            first_out = bytes(next(p for p in out.demux(video=0) if p.size))
            assert any(bytes(p) == first_out for _, p in zip(range(400), src.demux(video=0), strict=False))
    rel = Path(ref.path).relative_to(root).as_posix()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS, headless=True)
        page = browser.new_page()
        page.set_content(f'<video id="v" src="{url}/{rel}" muted playsinline></video>')
        page.wait_for_function("document.getElementById('v').readyState >= 1", timeout=10000)
        info = page.evaluate("(() => { const v = document.getElementById('v'); v.play(); "
                             "return {d: v.duration, w: v.videoWidth, h: v.videoHeight}; })()")  # fmt: skip
        page.wait_for_function("document.getElementById('v').currentTime > 0.5", timeout=10000)
        error = page.evaluate("document.getElementById('v').error && document.getElementById('v').error.code")
        browser.close()
    assert error is None
    assert info["w"] > 0 and info["h"] > 0 and abs(info["d"] - ref.duration_s) < 1.0, info
