"""H.265 cameras: the station remuxes their clips (tagged 'hvc1'), the centre adds an H.264 copy,
and the console plays whichever of the two the browser decodes.

Real parts: an H.265 MPEG-TS recording (what an RTSP camera's main stream carries: parameter sets
in band, no extradata), the station's own clip writer, a real StationLink through Mosquitto to a
real central app behind uvicorn, and the console in Debian's chromium, which has no H.265 decoder
without a GPU.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import db
from central.alerts.service import clip_file, store_alert
from central.app import create_app
from central.media import service as media
from central.media.models import MediaItem
from central.media.renditions import Renditions, make_h264_copy
from central.models import import_all
from central.settings import CentralSettings
from edge.clips import write_clip
from edge.models import sha256_file
from tests.authkit import AUTH, TEST_AUTH_SETTINGS
from tests.conftest import CLIPS, ROOT, Broker, free_port
from tests.dispatchkit import alert_msg
from tests.linkkit import make_link, serve_central, wait_for
from tests.test_clip_browser import CHROME_ARGS, CHROMIUM, cut_from
from tests.test_console_browser import login
from wire.link import MEDIA_CHUNK_BYTES, MediaChunk
from wire.mp4 import sample_tag

pytest_plugins = ["tests.dispatchkit"]

STATION, CAMERA = "ly-s01", "cam-lawn"  # in the reference data: the console's operator sees it
OP_PASSWORD = "operator-pass-02"
FPS, SECONDS = 10, 6
HVC1 = 'video/mp4; codecs="hvc1.1.6.L93.B0"'


def _bar_ts(path: Path, width: int, height: int, first: int, count: int) -> bytes:
    """H.265 MPEG-TS of a bar moving, ``count`` frames from frame ``first`` (its clock runs on)."""
    with av.open(str(path), "w", format="mpegts") as out:
        s = out.add_stream("libx265", rate=FPS)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.time_base = Fraction(1, FPS)
        s.codec_context.options = {"x265-params": f"keyint={FPS}:min-keyint={FPS}:log-level=error"}
        for i in range(first, first + count):
            img = np.full((height, width, 3), 40, np.uint8)
            img[:, (i * 5) % (width - 20) : (i * 5) % (width - 20) + 20] = 230
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, FPS)
            out.mux(s.encode(f))
        out.mux(s.encode())
    return path.read_bytes()


@pytest.fixture(scope="module")
def hevc_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s H.265 MPEG-TS recording, 320x240 at 10 fps, a keyframe every second: a bar moving."""
    path = tmp_path_factory.mktemp("hevc") / "camera.ts"
    _bar_ts(path, 320, 240, 0, FPS * SECONDS)
    return path


@pytest.fixture(scope="module")
def hevc_switch_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, its picture switched from 320x240 to 240x160 at 3 s, the clock running on: a camera
    reconfigured while it streams, or a DVR export joining two recordings."""
    folder = tmp_path_factory.mktemp("hevc-switch")
    half = FPS * SECONDS // 2
    path = folder / "camera.ts"
    path.write_bytes(_bar_ts(folder / "a.ts", 320, 240, 0, half) + _bar_ts(folder / "b.ts", 240, 160, half, half))
    return path


@pytest.fixture(scope="module")
def hevc_clip(hevc_ts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = write_clip(cut_from(hevc_ts, 1.0, 4.0), tmp_path_factory.mktemp("clip"))
    assert ref is not None
    return Path(ref.path)


def _frames(path: Path) -> tuple[str, str, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.codec_tag, sum(1 for _ in c.decode(s))


def _pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def test_the_station_remuxes_h265_as_hvc1_and_the_clip_decodes(hevc_ts: Path, hevc_clip: Path) -> None:
    codec, tag, frames = _frames(hevc_clip)
    assert (codec, tag) == ("hevc", "hvc1")  # Apple's players need 'hvc1'; FFmpeg writes 'hev1'
    assert 40 <= frames <= 52  # 4 s from the keyframe at or before 1.0 s, at 10 fps
    data = hevc_clip.read_bytes()
    assert data.find(b"hvcC") > 0 and data.find(b"moov") < data.find(b"mdat")  # parameter sets; faststart
    # Remuxed, not re-encoded (MPEG-TS start codes become MP4 length prefixes): the clip decodes to
    # exactly the camera's pictures, a run of them from a keyframe.
    camera, clip = _pictures(hevc_ts), _pictures(hevc_clip)
    first = next(i for i, pic in enumerate(camera) if np.array_equal(pic, clip[0]))
    assert all(np.array_equal(a, b) for a, b in zip(clip, camera[first:], strict=False))
    assert first + len(clip) <= len(camera) and first % FPS == 0


def test_a_clip_across_new_parameter_sets_keeps_them_in_band(hevc_switch_ts: Path, tmp_path: Path) -> None:
    # 'hvc1' would drop the in-band sets: the pictures after the switch decoded with the first
    # ones, as garbage of the first size. 'hev1' keeps them, and the clip is the camera's pictures.
    ref = write_clip(cut_from(hevc_switch_ts, 2.5, 3.5), tmp_path)  # MPEG-TS clock from 1.4 s
    assert ref is not None
    codec, tag, _ = _frames(Path(ref.path))
    assert (codec, tag) == ("hevc", "hev1")
    camera, clip = _pictures(hevc_switch_ts), _pictures(Path(ref.path))
    assert {pic.shape for pic in camera} == {pic.shape for pic in clip} == {(240, 320), (160, 240)}
    first = next(i for i, pic in enumerate(camera) if np.array_equal(pic, clip[0]))
    assert len(clip) >= 30 and all(np.array_equal(a, b) for a, b in zip(clip, camera[first:], strict=False))
    copy = tmp_path / "copy.h264.mp4"  # the centre's copy plays where 'hev1' does not (Safari)
    assert make_h264_copy(Path(ref.path), copy) and _frames(copy)[2] == len(clip)


def test_the_sample_entry_name_follows_the_parameter_sets() -> None:
    vps, sps, pps, idr = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1", b"\x26\x01\xaf"
    annexb = lambda *units: b"".join(b"\x00\x00\x00\x01" + u for u in units)  # noqa: E731
    same = [annexb(vps, sps, pps, idr), annexb(b"\x02\x01\xd0"), annexb(vps, sps, pps, idr)]
    assert sample_tag("hevc", None, same) == "hvc1"  # the first packet's sets, repeated
    assert sample_tag("hevc", annexb(vps, sps, pps), same[1:]) == "hvc1"  # the SDP's, not repeated
    new_sps = annexb(vps, b"\x42\x01\x02", pps, idr)
    assert sample_tag("hevc", None, [*same, new_sps]) == "hev1"
    assert sample_tag("hevc", annexb(vps, sps, pps), [new_sps]) == "hev1"  # in band differs from the SDP's
    # Length-prefixed packets (from MP4 or MKV), whatever the extradata (hvcC): kept as they are.
    assert sample_tag("hevc", b"\x01\x00\x00\x01\x00\x00\x01", [b"\x00\x00\x00\x03" + sps]) == "hvc1"
    assert sample_tag("h264", None, [new_sps]) is None


def test_the_h264_copy_has_every_frame_and_nothing_is_written_for_h264(hevc_clip: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.h264.mp4"
    assert make_h264_copy(hevc_clip, copy)
    name, _tag, frames = _frames(copy)
    assert name == "h264" and frames == _frames(hevc_clip)[2]
    with av.open(str(copy)) as c, av.open(str(hevc_clip)) as o:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert abs(float(c.duration - o.duration) / av.time_base) < 0.15
    assert not make_h264_copy(copy, tmp_path / "again.mp4")  # H.264 plays everywhere: no copy
    assert not (tmp_path / "again.mp4").exists()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(hevc_clip.read_bytes()[:2000])  # cut off: no frame can be decoded
    with pytest.raises((av.error.FFmpegError, ValueError)):
        make_h264_copy(bad, tmp_path / "bad.h264.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "copy.h264.mp4"]  # no part file left


def _store_clip(session: Session, clip: Path, media_dir: Path, event_id: str | None) -> MediaItem:
    """Store ``clip`` chunk by chunk, as the ingest does with what a station sends."""
    data, media_id = clip.read_bytes(), uuid.uuid4().hex
    count = -(-len(data) // MEDIA_CHUNK_BYTES)
    for i in range(count):
        part = data[i * MEDIA_CHUNK_BYTES : (i + 1) * MEDIA_CHUNK_BYTES]
        chunk = MediaChunk(media_id=media_id, station=STATION, camera=CAMERA, kind="clip", content_type="video/mp4",
                           event_id=event_id, sha256=sha256_file(clip), size_bytes=len(data),
                           chunk_bytes=MEDIA_CHUNK_BYTES, index=i, count=count,
                           data_b64=base64.b64encode(part).decode())  # fmt: skip
        media.store_chunk(session, chunk, media_dir)
    item = session.get(MediaItem, media_id)
    assert item is not None and item.state == "complete"
    return item


def test_the_worker_copies_each_clip_once_links_it_beside_the_alert_and_retention_takes_it(
    hevc_clip: Path, tmp_path: Path, fresh_db_url: str
) -> None:
    """On SQLite and on the private PostgreSQL."""
    import_all()
    engine = db.make_engine(fresh_db_url)
    db.migrate(engine)
    sessions = db.make_session_factory(engine)
    media_dir = tmp_path / "media"
    worker = Renditions(sessions, media_dir)
    with sessions() as session:
        msg = alert_msg(STATION, CAMERA, datetime.now(UTC))
        alert, _ = store_alert(session, msg, media_dir)
        item = _store_clip(session, hevc_clip, media_dir, msg.event_id)
        ref = write_clip(cut_from(CLIPS / "indoor_one_by_one.mp4", 2.0, 2.0), tmp_path / "h264")
        assert ref is not None
        h264 = _store_clip(session, Path(ref.path), media_dir, None)
        # A run that died mid-copy left its claim: start() takes it again.
        item.rendition = "working"
        session.commit()
    worker.start()
    try:
        wait_for(lambda: worker.stats.made == 1 and worker.stats.not_needed == 1, "both clips looked at")
    finally:
        worker.stop()
    with sessions() as session:
        states = {m: r for m, r in session.execute(select(MediaItem.media_id, MediaItem.rendition))}
        assert states == {item.media_id: "ready", h264.media_id: "none"}
        assert not worker.run_once()  # nothing left: each clip is looked at once
        row = session.get(type(alert), alert.id)
        copy = clip_file(row, media_dir, h264=True)
        assert copy is not None and _frames(copy)[0] == "h264"
        assert copy.samefile(media.h264_copy(media_dir / item.path))  # one file, two names
        assert clip_file(row, media_dir) is not None
        media.sweep_retention(session, media_dir, 0, now=datetime.now(UTC) + timedelta(seconds=1))
        assert clip_file(row, media_dir) is None and clip_file(row, media_dir, h264=True) is None
        assert not list(media_dir.rglob("*.h264.mp4"))
    engine.dispose()


@contextmanager
def serve(broker: Broker, tmp_path: Path, renditions: bool = True) -> Iterator[str]:
    """The central app behind uvicorn, consuming Mosquitto, with an operator of the station."""
    settings = CentralSettings(
        database_url=f"sqlite:///{tmp_path}/central.db", media_dir=tmp_path / "media", mqtt_host=broker.host,
        mqtt_port=broker.port, mqtt_client_id=f"xl-central-h265-{uuid.uuid4().hex[:8]}", clip_renditions=renditions,
        **TEST_AUTH_SETTINGS,
    )  # fmt: skip
    with serve_central(create_app(settings), free_port()) as url:
        user = {"username": "op2", "display_name": "op2", "password": OP_PASSWORD, "role": "operator",
                "station_id": STATION}  # fmt: skip
        assert httpx.post(f"{url}/api/users", json=user, headers=AUTH).status_code == 201
        yield url


def send(broker: Broker, tmp_path: Path, url: str, clip: Path, ready: Callable[[dict], bool]) -> dict:
    """An alert and its clip, sent as a station sends them; the alert once ``ready`` holds."""
    msg = alert_msg(STATION, CAMERA, datetime.now(UTC))
    link = make_link(broker.host, broker.port, STATION, tmp_path / "o.sqlite", cameras=[CAMERA])
    link.start()
    try:
        link.submit_event(msg)
        link.submit_media_file(clip, sha256_file(clip), camera=CAMERA, kind="clip", content_type="video/mp4",
                               event_id=msg.event_id)  # fmt: skip
        with httpx.Client(base_url=url, headers=AUTH) as admin:
            def found() -> dict | None:
                a = admin.get("/api/alerts").json()["items"]
                return a[0] if a and a[0]["incident_id"] and ready(a[0]) else None

            return wait_for(found, "the alert with its clip")
    finally:
        link.stop()


@contextmanager
def incident_page(url: str, incident_id: int) -> Iterator[Any]:
    """Debian's chromium, signed in as the operator, on the incident's page."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            login(page, url, "op2", OP_PASSWORD)
            page.goto(f"{url}/#/incident/{incident_id}")
            page.wait_for_selector("#incident-clip")
            yield page
        finally:
            browser.close()


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium missing: scripts/install-os-deps installs it")


@needs_chromium
def test_the_console_plays_an_h265_cameras_clip(broker: Broker, hevc_clip: Path, tmp_path: Path) -> None:
    with serve(broker, tmp_path) as url:
        alert = send(broker, tmp_path, url, hevc_clip, lambda a: bool(a["clip_h264_url"]))
        with httpx.Client(base_url=url, headers=AUTH) as admin:
            original, copy = admin.get(alert["clip_url"]), admin.get(alert["clip_h264_url"])
            assert original.content == hevc_clip.read_bytes()  # the evidence as the station sent it
            assert copy.status_code == 200 and copy.headers["content-type"] == "video/mp4"
            assert copy.content != original.content
            metrics = admin.get("/metrics").text
            assert 'xl_central_clip_renditions_total{result="made"} 1.0' in metrics
            media_rows = admin.get("/api/media", params={"event_id": alert["event_id"]}).json()["items"]
            assert [m["rendition"] for m in media_rows] == ["ready"]
        with incident_page(url, alert["incident_id"]) as page:
            v = "document.querySelector('#incident-clip')"
            page.wait_for_function(f"{v}.readyState >= 1", timeout=10000)
            played = page.evaluate(f"""async () => {{ const v = {v}; v.muted = true; await v.play();
                await new Promise(r => setTimeout(r, 800)); v.pause();
                return {{t: v.currentTime, src: v.currentSrc, w: v.videoWidth, err: v.error && v.error.code,
                         h265: MediaSource.isTypeSupported('{HVC1}')}}; }}""")  # fmt: skip
            assert not page.is_visible("#incident-clip-unplayable")
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "test-artifacts" / "13-incident-h265-clip.png"), full_page=True)
    assert played["err"] is None and played["t"] > 0.3 and played["w"] == 320, played
    # This browser plays the station's H.265 where it decodes it, else the centre's copy.
    want = alert["clip_url"] if played["h265"] else alert["clip_h264_url"]
    assert played["src"] == url + want, played


@needs_chromium
def test_without_a_copy_the_console_says_why_the_clip_does_not_play_and_offers_the_file(
    broker: Broker, hevc_clip: Path, tmp_path: Path
) -> None:
    with serve(broker, tmp_path, renditions=False) as url:  # as while the copy is being made
        alert = send(broker, tmp_path, url, hevc_clip, lambda a: bool(a["clip_url"]))
        assert alert["clip_h264_url"] is None
        with incident_page(url, alert["incident_id"]) as page:
            if page.evaluate(f"MediaSource.isTypeSupported('{HVC1}')"):
                pytest.skip("this browser decodes H.265: the clip plays as it is")
            page.wait_for_selector("#incident-clip-unplayable", state="visible", timeout=10000)
            text = page.inner_text("#incident-clip-unplayable")
            href = page.get_attribute("#incident-clip-unplayable a[download]", "href")
    assert "H.265" in text, text
    assert href == alert["clip_url"]
