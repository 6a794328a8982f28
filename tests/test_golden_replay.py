"""Golden event timelines on the shared clips, written by looking at the frames (contact sheets of one
frame every 1-2 s), not by copying the program's output. Tolerances are in the assertions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import CLIPS, ROOT

EXAMPLES = ROOT / "configs" / "examples"

# indoor_one_by_one.mp4, looked at every 2 s: six visits, one person at a time, each standing at the
# table; the room is empty between them. (enter, leave) in media seconds, +-1 s.
INDOOR_VISITS = [(7, 20), (23, 45), (51, 70), (75, 87), (93, 120), (123, 136)]
# campus_pedestrians_vtest.avi, road strip around x = 0.30 looked at every 1 s. Single walkers that
# clearly cross the tripwire (drawn top to bottom, so b_to_a = walking to the left of the picture):
CAMPUS_CLEAR_CROSSINGS = [
    (18.0, "b_to_a"),  # light-blue jacket
    (20.0, "b_to_a"),  # dark jacket, right behind
    (24.5, "b_to_a"),  # man in black
    (52.0, "b_to_a"),  # woman in red
    (59.5, "b_to_a"),  # man from the upper path
    (65.0, "a_to_b"),  # woman in red, coming back
]
# Whole clip, counted by eye with groups passing each other: about 8 to the left and 5 to the right.
CAMPUS_B_TO_A = (6, 11)
CAMPUS_A_TO_B = (3, 8)


def replay(clip: Path, config: Path, *extra: str) -> tuple[list[dict], str]:
    r = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(clip), "--config", str(config), "--brief", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


@pytest.fixture(scope="module")
def indoor(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], str, Path]:
    media = tmp_path_factory.mktemp("media")
    lines, summary = replay(
        CLIPS / "indoor_one_by_one.mp4",
        EXAMPLES / "indoor_loitering.yaml",
        "--all-phases",
        "--media",
        str(media),
    )
    return lines, summary, media


def test_indoor_one_loitering_alert_per_visit_none_while_empty(indoor) -> None:
    lines, summary, _ = indoor
    starts = [a for a in lines if a["phase"] == "start"]
    assert len(starts) == len(INDOOR_VISITS), summary
    for a, (enter, leave) in zip(starts, INDOOR_VISITS, strict=True):
        assert a["rule_kind"] == "loitering" and a["label"] == "person"
        # Fires 8 s after the person came in (detector and tracker need a moment: +-2 s), while inside.
        assert enter + 8 - 2 <= a["pts_s"] <= min(enter + 8 + 2.5, leave), (a["pts_s"], enter)
    # The motion gate spares the detector on still frames (empty room, people standing still).
    fields = dict(kv.split("=", 1) for kv in summary.split() if "=" in kv)
    assert int(fields["static"]) >= 0.3 * (int(fields["static"]) + int(fields["detected"])), summary
    ends = {a["event_id"]: a for a in lines if a["phase"] == "end"}
    for a, (_, leave) in zip(starts, INDOOR_VISITS, strict=True):
        end = ends[a["event_id"]]  # every alert ends, with the same id, soon after the person left
        assert leave - 3 <= end["pts_s"] <= leave + 4, (end["pts_s"], leave)


def test_indoor_clips_cover_pre_and_post_window_and_play(indoor) -> None:
    lines, _, media = indoor
    ends = [a for a in lines if a["phase"] == "end"]
    assert ends
    pre_s = post_s = 3.0  # configs/examples/indoor_loitering.yaml
    gop_s = 1.0  # indoor_one_by_one.mp4 has a keyframe every second
    for a in ends:
        clip = a["clip"]
        path = Path(clip["path"])
        assert path.is_file() and path.parent.is_relative_to(media) and path.suffix == ".mp4"
        data = path.read_bytes()
        assert clip["size_bytes"] == len(data) and clip["content_type"] == "video/mp4"
        assert clip["sha256"] == hashlib.sha256(data).hexdigest()
        assert data.find(b"moov") < data.find(b"mdat"), "faststart: moov must come first for browsers"
        clip_end = min(a["pts_s"] + post_s, 139.3)  # the clip itself ends at 139.3 s
        window = clip_end - (a["started_pts_s"] - pre_s)
        assert window - 0.2 <= clip["duration_s"] <= window + gop_s + 0.2, (clip, window)
        assert (
            a["started_pts_s"] - pre_s - gop_s - 0.2
            <= clip["start_pts_s"]
            <= a["started_pts_s"] - pre_s + 0.2
        )
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            # What a browser <video> needs: H.264 in MP4, 4:2:0, starting on a keyframe.
            assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
            assert next(c.demux(s)).is_keyframe
        with av.open(str(path)) as c:
            frames = sum(1 for _ in c.decode(video=0))
        # 10 fps; the last B-frames whose reference lies beyond the cut may be skipped by a player.
        assert clip["duration_s"] - 0.5 <= frames / 10.0 <= clip["duration_s"] + 0.05


def test_campus_line_counts_crossings_per_direction() -> None:
    lines, summary = replay(CLIPS / "campus_pedestrians_vtest.avi", EXAMPLES / "campus_line.yaml")
    assert all(a["rule_kind"] == "line_crossing" and a["label"] == "person" for a in lines)
    by_dir = {"a_to_b": [a["pts_s"] for a in lines if a["direction"] == "a_to_b"]}
    by_dir["b_to_a"] = [a["pts_s"] for a in lines if a["direction"] == "b_to_a"]
    for t, d in CAMPUS_CLEAR_CROSSINGS:
        assert any(abs(x - t) <= 1.5 for x in by_dir[d]), (t, d, by_dir)
    assert CAMPUS_B_TO_A[0] <= len(by_dir["b_to_a"]) <= CAMPUS_B_TO_A[1], by_dir
    assert CAMPUS_A_TO_B[0] <= len(by_dir["a_to_b"]) <= CAMPUS_A_TO_B[1], by_dir
    assert f"line[road-line]={len(by_dir['a_to_b'])}/{len(by_dir['b_to_a'])}" in summary


def test_parking_lot_cars_driving_through_raise_no_stationary_alert() -> None:
    # Looked at every 1 s: cars enter at 5, 15-16 and 26 s and are gone within 3-4 s; never parked.
    lines, summary = replay(CLIPS / "parking_lot_cars.mp4", EXAMPLES / "parking_stationary.yaml")
    assert lines == [], summary
    assert "decoded=377" in summary
