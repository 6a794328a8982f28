"""scripts/bench-dual: 1080p cameras recorded in full with detection on their sub-stream, the
deployment that docs/performance.md says closes main's gap to the decode ceiling, measured.

Each camera is a dual-stream camera as IP cameras offer: detection on the quiet workload (640x360,
15 fps) and clips cut from the main workload (1920x1080, 25 fps, 4 Mbit/s), both generated from the
same clip on the same timeline, paced at real time, staggered per camera. The record stream is
demuxed, never decoded (``edge.camera.RecordTap``). Sustained as in scripts/bench (the detect
stream's rate and lag, detection of moving frames, alert latency to a real centre over a real
Mosquitto). The figure is set beside main's decode-only ceiling: how many 1080p cameras a box
watches this way against how many it could only decode. Not a target of the issue's benchmark
(whose main workload has no sub-stream): a measure of what would close that gap.

Prints a line per probe and a final ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av

from xltools.bench import ceilings, workloads, xueliang
from xltools.bench.ramp import ramp
from xltools.bench.run import LABELS, LAST, _ours_probe, log, machine_id


def clip_sizes(media: Path) -> dict[str, int]:
    """'WxH' -> clips of that size among the clips the probes wrote (the record stream's, or not)."""
    sizes: dict[str, int] = {}
    for f in media.glob("*-media/**/*.mp4"):
        try:
            with av.open(str(f)) as c:
                cc = c.streams.video[0].codec_context
                key = f"{cc.width}x{cc.height}"
        except (av.error.FFmpegError, IndexError):
            key = "unreadable"
        sizes[key] = sizes.get(key, 0) + 1
    return sizes


def seed() -> int:
    """This machine's last full run's quiet count (the same detect stream), else 20."""
    if LAST.is_file():
        last = json.loads(LAST.read_text())
        if last.get("machine") == machine_id():
            return int(last["sustained"]["xueliang"].get("quiet", 20))
    return 20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench-dual", description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", type=int, help="cameras to try first (default: the last full run's quiet count)")
    ap.add_argument("--window", type=float, default=30.0, help="seconds measured per probe")
    ap.add_argument("--probes", type=int, default=6, help="probes in the ramp")
    a = ap.parse_args(argv)
    t_start = time.monotonic()
    detect, record = (workloads.ensure(workloads.WORKLOADS[n]) for n in ("quiet", "main"))
    log(f"machine: {machine_id()}; detect {detect.name}, record {record.name}")
    main_fps = workloads.WORKLOADS["main"].fps
    # Read once, not at the start and the end as scripts/bench does: the figure is a count, the
    # ceiling only its yardstick.
    dec_fps = ceilings.decode_only_fps(record, 2, 10.0)
    log(f"  decode-only 1080p25: {dec_fps:.0f} frames/s = {dec_fps / main_fps:.1f} cameras")

    work = Path(tempfile.mkdtemp(prefix="xl-bench-dual-"))
    with xueliang.centre(work) as c:
        probe = _ours_probe(detect, workloads.WORKLOADS["quiet"].fps, a.window, 5.0, c.broker.port, c.db, work,
                            LABELS["quiet"], workloads.WORKLOADS["quiet"].seconds, 3.0, 60.0, c.others,
                            record=record)  # fmt: skip
        r = ramp(probe, a.start or seed(), 128, a.probes)
    sizes = clip_sizes(work)
    log(f"clips written by the probes, by size: {sizes}; took {time.monotonic() - t_start:.0f} s")
    best = [info for n, ok, info in r.probes if ok and n == r.best]
    out = {
        "dual_cams": r.best,
        "main_ceiling_cams": dec_fps / main_fps,
        "dual_vs_main_ceiling": r.best / (dec_fps / main_fps),
        "p99_latency_ms": best[0].latency_p99_ms if best else 0.0,
        "clips_1080p": sizes.get("1920x1080", 0),
        "clips_other": sum(v for k, v in sizes.items() if k != "1920x1080"),
    }
    print("RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
