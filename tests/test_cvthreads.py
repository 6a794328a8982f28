"""The agent runs OpenCV in the calling thread: no pool worker spins beside its cameras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLIPS
from xltools.procs import free_port

# Threads that appear while the motion gate runs, in a fresh process: after the agent is built
# (argv[1] == "agent") or with OpenCV as it comes.
GATE_THREADS = """
import os, sys
import numpy as np
from edge.motion import MotionGate
if sys.argv[1] == "agent":
    from edge.agent import StationAgent
    from edge.config import load_station_config
    StationAgent(load_station_config(sys.argv[2]))
before = set(os.listdir("/proc/self/task"))
gate, rng = MotionGate(threshold=20), np.random.default_rng(0)
for _ in range(50):
    gate.moving_gray(rng.integers(0, 255, (360, 640), np.uint8))
print(len(set(os.listdir("/proc/self/task")) - before))
"""

STATION = """
station: {{id: cv}}
mqtt: {{host: 127.0.0.1, port: {port}}}
detector: {{precision: fp32}}
outbox: {{path: "{tmp}/o.sqlite"}}
media: {{dir: "{tmp}/media"}}
cameras:
  - id: lot
    source: "{clips}/parking_lot_cars.mp4"
"""


def _new_threads(*args: str) -> int:
    out = subprocess.run([sys.executable, "-c", GATE_THREADS, *args], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are read from /proc")
def test_the_agent_runs_the_motion_gate_without_opencvs_pool(tmp_path: Path) -> None:
    if _new_threads("plain") == 0:
        pytest.skip("this OpenCV build starts no thread pool")
    cfg = tmp_path / "station.yaml"
    cfg.write_text(STATION.format(port=free_port(), tmp=tmp_path, clips=CLIPS))
    assert _new_threads("agent", str(cfg)) == 0
