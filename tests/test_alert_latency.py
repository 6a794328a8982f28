"""Where a new alert's latency goes on the station: a real agent on a real clip, publishing to a real
broker, measures each start from its frame's capture to each stage, in order."""

from __future__ import annotations

import threading
from pathlib import Path

from edge.agent import StationAgent
from edge.config import load_station_config
from edge.meters import ALERT_STAGES
from tests.conftest import CLIPS
from tests.linkkit import wait_for
from tests.test_edge_runtime import STOPPED as STATION  # people on a lawn (alerts) and a parking lot


def test_each_new_alert_is_timed_from_capture_to_each_station_stage(broker, tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    cfg.write_text(STATION.format(port=broker.port, tmp=tmp_path, clips=CLIPS))
    agent = StationAgent(load_station_config(cfg))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: agent.alert_latency.snapshot()["sent"].count >= 3, "three new alerts sent")
    finally:
        agent.stop.set()
        runner.join(20)
    assert not runner.is_alive()
    snap = agent.alert_latency.snapshot()
    assert tuple(snap) == ALERT_STAGES
    starts = snap["raised"].count
    # Every start handed to the evidence worker was rendered and committed (the link commits what
    # it was handed before it stops); only what was still unpublished at the stop is not "sent".
    assert starts >= 3 and snap["rendered"].count == starts and snap["committed"].count == starts
    assert 3 <= snap["sent"].count <= starts
    # The same alerts pass the stages in order, so their summed latencies are ordered too.
    assert 0.0 < snap["raised"].total <= snap["rendered"].total <= snap["committed"].total
    # Replayed at real time on an idle box: each stage is reached well within a second or two.
    for stage in ALERT_STAGES:
        assert snap[stage].mean() < 2.0, (stage, snap[stage].mean())
    # Stopped alerts are not chased for ever: what was sent is no longer tracked.
    assert len(agent.link._unsent_starts) == starts - snap["sent"].count
