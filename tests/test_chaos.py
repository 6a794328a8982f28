"""The chaos harness as a test: broker killed, central killed, an edge SIGKILLed; nothing lost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_chaos_run_loses_nothing_and_stores_nothing_twice(shared_dir: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos"), "--no-realtime", "--stations", "3",
         "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    m = re.search(r"^RESULT (.*)$", run.stdout, re.M)
    assert m, f"no RESULT line:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    result = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    assert result["raised"] > 0
    assert result["lost"] == 0 and result["stored"] == result["raised"], run.stdout[-3000:]
    assert result["duplicated"] == 0 and result["missing_media"] == 0, run.stdout[-3000:]
    assert run.returncode == 0
