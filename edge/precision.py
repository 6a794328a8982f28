"""fp32 or int8: the int8 build of a model (``scripts/build-int8``) is used only where it keeps the
detections (its build record says how many of fp32's it matched) and is faster on this CPU.

Whether int8 pays depends on the CPU: on a 2-core AMD EPYC without AMX it ran at half the fp32
speed, while CPUs with VNNI/AMX usually gain. So ``auto`` measures both here, at start-up, on the
input shape the cameras use, rather than guessing from CPU flags.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.detect import Detector
from edge.errors import ModelError
from edge.models import ResolvedModel, search_dirs, sha256_file

log = logging.getLogger(__name__)

MIN_MATCH = 0.95  # share of fp32's detections the int8 build must find (same class, IoU >= 0.5)
MIN_SPEEDUP = 1.2  # below this a start-up probe cannot tell the gain from noise (1.05-1.15x measured here): fp32
PROBE_HW = (256, 416)  # a 16:9 stream at 416, the usual case
ROUNDS = 3


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
    # Alternating short rounds, best of each: a neighbour's burst on a shared box hits both alike.
    q_det, f_det = build(int8), build(fp32)
    q_ips = f_ips = 0.0
    for _ in range(ROUNDS):
        f_ips = max(f_ips, throughput(f_det, seconds=probe_s / ROUNDS))
        q_ips = max(q_ips, throughput(q_det, seconds=probe_s / ROUNDS))
    speedup = q_ips / f_ips
    if speedup < MIN_SPEEDUP:
        return fp32, PrecisionChoice("fp32", f"int8 runs at {speedup:.2f}x fp32 here", speedup)
    return int8, PrecisionChoice("int8", f"int8 runs at {speedup:.2f}x fp32 here, keeps {q.match:.1%}", speedup)
