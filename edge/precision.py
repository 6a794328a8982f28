"""fp32 or int8: the int8 build of a model (``scripts/build-int8``) is used only where it keeps the
detections (its build record says how many of fp32's it matched) and is faster on this CPU.

Whether int8 pays depends on the CPU: on a 2-core AMD EPYC without AMX it ran at half the fp32
speed, while CPUs with VNNI/AMX usually gain. So ``auto`` measures both here, at start-up, on the
input shape the cameras use, rather than guessing from CPU flags.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.detect import Detector
from edge.errors import ModelError
from edge.models import ResolvedModel, search_dirs, sha256_file
from edge.onnxshape import cache_dir

log = logging.getLogger(__name__)

MIN_MATCH = 0.95  # share of fp32's detections the int8 build must find (same class, IoU >= 0.5)
# The probe timing the same weights twice reads 0.96-1.03 (Zen 4, idle and under load), so a gain
# under 5% cannot be told from noise. Over it int8 pays: 1.07-1.16x in the probe there, and ~8%
# less inference CPU per detection in the agent. The result is remembered, so it cannot flip.
MIN_SPEEDUP = 1.05
PROBE_HW = (256, 416)  # a 16:9 stream at 416, the usual case
ROUNDS = 6


@dataclass(frozen=True)
class Int8Build:
    path: Path
    match: float  # from the build record (<file>.json), 0.0 when it has none


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" | "int8"
    reason: str
    speedup: float | None = None


def find_int8(model: ResolvedModel) -> Int8Build | None:
    """The int8 build of ``model`` on the model search path, with its recorded match (0.0 without a
    record, or when the record is of other fp32 weights: a stale build is never trusted)."""
    name = model.spec.int8_file
    if not name:
        return None
    for d in search_dirs():
        p = d / name
        if p.is_file():
            record = p.with_suffix(".json")
            try:
                meta = json.loads(record.read_text()) if record.is_file() else {}
            except (OSError, ValueError):
                meta = {}
            if meta.get("fp32_sha256") not in (None, sha256_file(model.path)):
                meta = {}
            return Int8Build(p, float(meta.get("match", 0.0)))
    return None


def throughput(det: Detector, hw: tuple[int, int] = PROBE_HW, batch: int = 2, seconds: float = 0.3) -> float:
    """Images per second of CPU through ``det`` on a ``hw`` input (after one warm-up call).

    With one intra-op thread onnxruntime runs in the calling thread, so that thread's CPU time is
    the work itself, whatever else the box is doing (wall time swung 0.8-1.4x under load)."""
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (hw[0], hw[1], 3), np.uint8) for _ in range(batch)]
    det.infer(imgs)
    clock = time.thread_time if det.threads == 1 else time.perf_counter
    n, t0 = 0, clock()
    while (dt := clock() - t0) < seconds:
        det.infer(imgs)
        n += batch
    return n / dt


def choose(
    precision: str, fp32: ResolvedModel, build: Callable[[ResolvedModel], Detector], probe_s: float = 0.9
) -> tuple[ResolvedModel, PrecisionChoice]:
    """The model to run for ``precision`` (auto | fp32 | int8); ``build`` makes a detector to time."""
    if precision == "fp32":
        return fp32, PrecisionChoice("fp32", "configured")
    q = find_int8(fp32)
    int8 = ResolvedModel(fp32.spec, q.path, fp32.labels) if q else None
    if precision == "int8":
        if int8 is None:
            raise ModelError(
                f"detector.precision is int8 but no int8 build of {fp32.spec.name!r} "
                f"({fp32.spec.int8_file or 'none in the manifest'}) is on the model path "
                f"({', '.join(map(str, search_dirs()))}); run scripts/build-int8"
            )
        return int8, PrecisionChoice("int8", "configured")
    if q is None or int8 is None:
        return fp32, PrecisionChoice("fp32", "no int8 build (scripts/build-int8 makes one)")
    if q.match < MIN_MATCH:
        return fp32, PrecisionChoice("fp32", f"the int8 build keeps {q.match:.1%} of fp32's detections "
                                             f"(< {MIN_MATCH:.0%})")  # fmt: skip
    key = probe_key(fp32.path, q.path)
    speedup = remembered(key)
    how = "measured earlier" if speedup is not None else "measured now"
    if speedup is None:
        # Alternating short rounds, the median of their ratios: a neighbour's burst or a cache
        # shared with other work hits both models of a round alike, and one bad round is outvoted.
        q_det, f_det = build(int8), build(fp32)
        ratios = []
        for _ in range(ROUNDS):
            f_ips = throughput(f_det, seconds=probe_s / ROUNDS)
            ratios.append(throughput(q_det, seconds=probe_s / ROUNDS) / f_ips)
        speedup = statistics.median(ratios)
        remember(key, speedup)
    if speedup < MIN_SPEEDUP:
        return fp32, PrecisionChoice("fp32", f"int8 runs at {speedup:.2f}x fp32 here ({how})", speedup)
    return int8, PrecisionChoice(
        "int8", f"int8 runs at {speedup:.2f}x fp32 here ({how}), keeps {q.match:.1%}", speedup
    )


# The probe's result is remembered per CPU, onnxruntime and pair of weights: a restart (a config
# reload, a crash, a reboot) then starts at once and makes the same choice, where a new probe
# (+-0.1x of noise) could flip a close call. Anything in the key changing probes again.
def _probes_file() -> Path:
    return cache_dir().parent / "precision-probes.json"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform reports."""
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def probe_key(fp32: Path, int8: Path) -> str:
    parts = [
        cpu_model(),
        str(os.cpu_count()),
        ort.__version__,
        sha256_file(fp32),
        sha256_file(int8),
        str(PROBE_HW),
    ]
    return "|".join(parts)


def remembered(key: str) -> float | None:
    try:
        entry = json.loads(_probes_file().read_text()).get(key)
        return float(entry["speedup"]) if entry else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def remember(key: str, speedup: float) -> None:
    """Best effort: a read-only or full cache only costs the next start a probe."""
    path = _probes_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[key] = {
        "speedup": round(speedup, 4),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(path)
    except OSError as exc:
        log.debug("precision: cannot remember the probe in %s: %s", path, exc)
