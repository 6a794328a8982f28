"""`xl-edge replay` on real clips, checked against timelines written by looking at the frames."""

from __future__ import annotations

import json
import subprocess
import sys

from edge.rules import Zone
from tests.conftest import CLIPS, ROOT
from wire import AlertMessage

LAWN_CONFIG = ROOT / "configs" / "examples" / "campus_lawn.yaml"


def replay(clip, config, *extra: str) -> tuple[list[dict], str]:
    r = subprocess.run(
        [sys.executable, "-m", "edge", "replay", str(clip), "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


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
