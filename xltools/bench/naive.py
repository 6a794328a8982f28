"""The naive contender: ../shared/bench/naive_loop.py, used as it is, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from xltools.bench.workloads import CLIPS

NAIVE = CLIPS.parent / "bench" / "naive_loop.py"


def run_naive(clip: Path, cameras: int, seconds: float, detect_fps: float = 5.0) -> dict:
    """One naive run; returns its JSON (``sustained`` and per-camera figures)."""
    if not NAIVE.is_file():
        raise FileNotFoundError(f"naive contender not found at {NAIVE}")
    r = subprocess.run(
        [sys.executable, str(NAIVE), "--clip", str(clip), "--cameras", str(cameras), "--seconds", str(seconds),
         "--detect-fps", str(detect_fps)],
        capture_output=True, text=True, timeout=seconds * 4 + 120,
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"naive loop failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
