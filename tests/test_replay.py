"""`xl-edge replay` on real clips, checked against timelines written by looking at the frames."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import av
import pytest

from edge.rules import Zone
from tests.conftest import CLIPS, ROOT
from tests.mediakit import remux_piece, serve_folder
from wire import AlertMessage

LAWN_CONFIG = ROOT / "configs" / "examples" / "campus_lawn.yaml"
INDOOR_CONFIG = ROOT / "configs" / "examples" / "indoor_loitering.yaml"


def replay(clip, config, *extra: str, rc: int = 0) -> tuple[list[dict], str]:
    r = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(clip), "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == rc, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


@pytest.fixture(scope="module")
def served_recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The first 40 s of the indoor clip (two visits) as an MP4 on a local HTTP server."""
    folder = tmp_path_factory.mktemp("served")
    # moov first: the test server cannot answer the range request that finds a moov at the end
    with av.open(str(folder / "room.mp4"), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        with av.open(str(CLIPS / "indoor_one_by_one.mp4")) as src:
            o = out.add_stream_from_template(src.streams.video[0])
        remux_piece(out, o, 0.0, 40.0, 0.0)
    with serve_folder(folder) as url:
        yield url


def test_campus_lawn_alerts_only_while_people_are_on_the_lawn() -> None:
    # Looked at one frame every 4 s: until 48 s everyone walks on the road; from ~50 s to ~70 s
    # people cross the lawn (a pair at the right edge, a couple lower left, a woman walking down).
    alerts, summary = replay(CLIPS / "campus_pedestrians_vtest.avi", LAWN_CONFIG, "--brief")
    assert "alerts=" in summary and "decoded=795" in summary
    assert len(alerts) >= 2, summary
    lawn = Zone(
        "lawn", [(0.0, 0.50), (0.30, 0.56), (0.55, 0.68), (0.80, 0.82), (1.0, 0.90), (1.0, 1.0), (0.0, 1.0)]
    )
    for a in alerts:
        assert a["rule_kind"] == "intrusion" and a["label"] == "person" and a["zone"] == "lawn"
        assert 48.0 <= a["pts_s"] <= 76.0, a
        foot = ((a["box"]["x1"] + a["box"]["x2"]) / 2, a["box"]["y2"])
        assert lawn.contains(*foot), a
    assert len({a["track_id"] for a in alerts}) == len(alerts)  # once per tracked person


def test_replay_lines_are_the_published_payload(tmp_path) -> None:
    alerts, _ = replay(CLIPS / "campus_pedestrians_vtest.avi", LAWN_CONFIG, "--snapshots", str(tmp_path))
    assert alerts
    msg = AlertMessage.model_validate(alerts[0])
    jpeg = msg.snapshot.payload()  # verifies the sha256
    assert jpeg[:2] == b"\xff\xd8" and msg.snapshot.width_px == 768 and msg.snapshot.height_px == 576
    assert (tmp_path / f"{msg.event_id}.jpg").read_bytes() == jpeg


def test_a_recording_served_over_http_replays_from_its_url(served_recording: str) -> None:
    # An engineer replays a recording where it is kept (a DVR's or a platform's HTTP export): the
    # visits at 14.8 and 31.2 s, as from the file, read as fast as it comes (not paced a detect
    # period at a time as a live stream is), and its end ends the replay (no reconnect).
    alerts, summary = replay(f"{served_recording}/room.mp4", INDOOR_CONFIG, "--brief")
    assert [round(a["pts_s"]) for a in alerts] in ([15, 31], [14, 31]), alerts
    media_s, wall_s = (float(x) for x in re.search(r"media_s=([\d.]+) wall_s=([\d.]+)", summary).groups())  # type: ignore[union-attr]
    assert media_s > 39 and wall_s < media_s / 2, summary
    assert "ended=(" in summary and "stream ended" in summary, summary
    # A URL that serves nothing is named as it was given, not read as a file path.
    _, err = replay(f"{served_recording}/missing.mp4", INDOOR_CONFIG, rc=2)
    assert f"{served_recording}/missing.mp4" in err and "file not found" not in err, err


def test_annotate_writes_the_analysed_frames_with_tracks_and_open_events(tmp_path) -> None:
    out = tmp_path / "annotated.mp4"
    alerts, summary = replay(CLIPS / "campus_pedestrians_vtest.avi", LAWN_CONFIG, "--brief", "--annotate", str(out))
    detected = int(re.search(r"detected=(\d+)", summary).group(1))
    assert f"annotated={detected}:{out}" in summary, summary
    with av.open(str(out)) as c:
        st = c.streams.video[0]
        assert (st.codec_context.name, st.codec_context.width, st.codec_context.height) == ("h264", 768, 576)
        assert st.average_rate == 5  # the camera's detect_fps: one video frame per analysed frame
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(st)]
    assert len(frames) == detected and alerts

    def banner(img) -> tuple[float, float, float]:
        return tuple(img[2:20, 300:].reshape(-1, 3).mean(axis=0))

    # Before any alert the banner is dark; on the first alert's frame it is red, and the alert's own
    # box is drawn red (its track is the one alerting) where the alert says it is: on the frame its
    # snapshot was taken from, the best within the event's first second (media.snapshot_window_s).
    assert max(banner(frames[0])) < 60
    first = alerts[0]
    start = round(first["pts_s"] * 5)
    b, g, r = banner(frames[start])
    assert r > 180 and b < 90 and g < 90, (b, g, r)
    box = first["box"]

    def red_top_edge(img) -> float:
        y, x1, x2 = round(box["y1"] * 575), round(box["x1"] * 767) + 4, round(box["x2"] * 767) - 4
        rows = img[max(0, y - 2) : y + 3, x1:x2]  # a pixel either way: the detector's boxes are not bit-exact
        return max(float(((row[:, 2] > 170) & (row[:, 0] < 110)).mean()) for row in rows)

    assert max(red_top_edge(f) for f in frames[start : start + 6]) > 0.5
    # A path it cannot write is refused at once, naming the option, before the clip is read.
    (tmp_path / "blocker").write_text("")
    _, err = replay(CLIPS / "campus_pedestrians_vtest.avi", LAWN_CONFIG, "--annotate", str(tmp_path / "blocker" / "x.mp4"), rc=2)
    assert "--annotate" in err and "decoded=" not in err, err
