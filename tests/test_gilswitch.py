"""The agent hands the GIL over after 1 ms of a thread's Python, not CPython's 5 ms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge.gilswitch import SWITCH_INTERVAL_S
from tests.conftest import CLIPS
from tests.test_cvthreads import STATION
from xltools.procs import free_port

# The switch interval of a fresh process, before and after the agent is built.
INTERVALS = """
import sys
from edge.agent import StationAgent
from edge.config import load_station_config
before = sys.getswitchinterval()
StationAgent(load_station_config(sys.argv[1]))
print(before, sys.getswitchinterval())
"""


def test_building_the_agent_shortens_the_gil_switch_interval(tmp_path: Path) -> None:
    cfg = tmp_path / "station.yaml"
    cfg.write_text(STATION.format(port=free_port(), tmp=tmp_path, clips=CLIPS))
    out = subprocess.run([sys.executable, "-c", INTERVALS, str(cfg)], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    before, after = map(float, out.stdout.split()[-2:])
    assert before == 0.005  # CPython's own default, so the assertion below shows a change
    assert after == SWITCH_INTERVAL_S < before
