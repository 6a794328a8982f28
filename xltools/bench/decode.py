"""scripts/bench-decode: what a camera's decoding costs the CPU, in software and on a hardware
decoder (``stream.hwaccel``), on the same machine and the same stream.

Two measurements per decoder:
- flat out: ``streams`` decoders in parallel, frames/s and CPU ms per frame (the decode ceiling's
  measure, through the agent's own decoder);
- paced cameras: N of the agent's camera sources at real time, each frame due at the detect rate
  through the motion gate and, while it moves, the downscale to the detector's input - the camera
  thread's work, inference aside. Sustained: every camera at >= 98% of the stream's rate and p99
  lag <= 0.5 s, as in scripts/bench. Run it under ``taskset -c 0,1`` for a 2-core box's count.

Prints a line per measurement and a final ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av

from edge.hwdecode import HwDecode
from edge.motion import MotionGate
from edge.scale import Downscaler
from edge.sources import VideoSource, input_fps
from xltools.bench.ceilings import parallel_decode, process_cpu_s
from xltools.bench.xueliang import keeps_real_time

DETECT_W, DETECT_H = 416, 234  # a 16:9 frame at the detector's 416


@dataclass
class Paced:
    cameras: int
    min_fps: float
    lag_p99_s: float
    cpu_pct_per_camera: float
    on_device: int  # cameras whose decoder ran on the device
    sustained: bool


def paced(path: Path, cameras: int, seconds: float, hw: HwDecode | None, warmup_s: float = 3.0,
          detect_fps: float = 5.0) -> Paced:  # fmt: skip
    stop = threading.Event()
    with av.open(str(path)) as c:
        clip_s = float(c.duration or 30_000_000) / 1e6
        rate = float(c.streams.video[0].average_rate or 25)
    sources = [
        VideoSource(str(path), detect_fps, realtime=True, loop=True, start_s=i * clip_s / cameras, hw=hw)
        for i in range(cameras)
    ]

    def run(src: VideoSource) -> None:
        gate, scale = MotionGate(alpha=0.2), Downscaler()
        for df in src.frames():
            if gate.moving(df.frame):
                scale(df.frame, DETECT_W, DETECT_H, "bgr24")
            if stop.is_set():
                return

    threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in sources]
    for t in threads:
        t.start()
    time.sleep(warmup_s)
    before = [(s.stats.due_mark, s.stats.lag_s.snapshot()) for s in sources]
    t0, c0 = time.monotonic(), process_cpu_s()
    time.sleep(seconds)
    dt, cpu = time.monotonic() - t0, process_cpu_s() - c0
    fps, lag = [], 0.0
    for s, (mark0, l0) in zip(sources, before, strict=True):
        fps.append(input_fps(mark0, s.stats.due_mark))
        lag = max(lag, (s.stats.lag_s.snapshot() - l0).quantile(0.99))
    stop.set()
    for t in threads:
        t.join(timeout=10)
    ok = keeps_real_time(min(fps), rate, lag)
    return Paced(cameras, min(fps), lag, cpu / dt * 100.0 / cameras, sum(s.stats.hw_decoding for s in sources), ok)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench-decode", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, help="H.264 stream to decode (default: the bench's main workload)")
    ap.add_argument("--hwaccel", default="cuda", help="device type to compare with software (stream.hwaccel)")
    ap.add_argument("--device", help="stream.hwaccel_device")
    ap.add_argument("--streams", default="1,4", help="flat-out decoders in parallel, comma-separated")
    ap.add_argument("--cameras", default="", help="paced camera counts to probe, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--decoders", default="sw,hw", help="which to measure: sw, hw or both")
    a = ap.parse_args(argv)
    if a.clip is None:
        from xltools.bench import workloads

        a.clip = workloads.ensure(workloads.WORKLOADS["main"])
    devices = av.codec.hwaccel.hwdevices_available()
    print(f"clip {a.clip}; cpus {sorted(os.sched_getaffinity(0))}; PyAV {av.__version__}; devices {devices}")
    hw = HwDecode(a.hwaccel, a.device)
    result: dict[str, object] = {"hwaccel": a.hwaccel}
    for label, dec in (("sw", None), ("hw", hw)):
        if label not in a.decoders.split(","):
            continue
        for n in (int(x) for x in a.streams.split(",") if x):
            f = parallel_decode(a.clip, n, a.seconds, dec)
            print(f"flat-out {label} streams={n} fps={f.fps:.0f} cpu_ms_per_frame={f.cpu_ms_per_frame:.2f} "
                  f"on_device={f.on_device}", flush=True)  # fmt: skip
            result[f"{label}_fps_{n}"] = round(f.fps)
            result[f"{label}_cpu_ms_{n}"] = round(f.cpu_ms_per_frame, 3)
            if label == "hw":
                result["hw_on_device"] = f.on_device
        best = 0
        for n in (int(x) for x in a.cameras.split(",") if x):
            p = paced(a.clip, n, a.seconds, dec)
            print(f"paced {label} cameras={n} sustained={p.sustained} min_fps={p.min_fps:.1f} "
                  f"lag_p99={p.lag_p99_s:.2f}s cpu_per_camera={p.cpu_pct_per_camera:.1f}% "
                  f"on_device={p.on_device}/{n}", flush=True)  # fmt: skip
            result[f"{label}_cam_cpu_pct_{n}"] = round(p.cpu_pct_per_camera, 1)
            if p.sustained:
                best = max(best, n)
        if a.cameras:
            result[f"{label}_cameras_sustained"] = best
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
