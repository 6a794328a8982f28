"""Benchmark workloads, generated once from the shared clips with PyAV and cached outside the repo."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

CLIPS = Path(os.environ.get("XL_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "clips"
CACHE = Path(os.environ.get("XL_BENCH_CACHE", Path.home() / ".cache" / "xueliang" / "bench"))


@dataclass(frozen=True)
class Workload:
    name: str
    source: str  # file in the shared clips
    width: int
    height: int
    fps: int
    bitrate: int
    gop: int
    seconds: float  # length of the generated file; sources loop

    @property
    def path(self) -> Path:
        return CACHE / f"{self.name}_{self.width}x{self.height}_{self.fps}fps.mp4"


WORKLOADS = {
    w.name: w
    for w in (
        Workload("quiet", "parking_lot_cars.mp4", 640, 360, 15, 800_000, 30, 30.0),
        Workload("busy", "campus_pedestrians_vtest.avi", 640, 360, 15, 1_000_000, 30, 60.0),
        Workload("main", "parking_lot_cars.mp4", 1920, 1080, 25, 4_000_000, 50, 30.0),
    )
}


def _looped(path: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """(media time, frame) of a clip played forever, time increasing across loops."""
    offset = 0.0
    while True:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            tb = float(s.time_base)
            period = 1.0 / float(s.average_rate or 25)
            first: float | None = None
            last = 0.0
            for f in c.decode(s):
                t = f.pts * tb if f.pts is not None else last + period
                first = t if first is None else first
                last = t - first
                yield offset + last, f
            if first is None:
                raise RuntimeError(f"{path}: no frames decoded")
        offset += last + period


def ensure(w: Workload) -> Path:
    """The workload's file, generated on first use: source frames re-timed to the target rate."""
    if w.path.is_file() and w.path.stat().st_size > 0:
        return w.path
    src_path = CLIPS / w.source
    if not src_path.is_file():
        raise FileNotFoundError(
            f"benchmark source clip missing: {src_path} (shared clips expected beside the project)"
        )
    w.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = w.path.with_name(w.path.stem + ".part.mp4")
    frames = _looped(src_path)
    t_next, f_next = next(frames)
    current = f_next
    with av.open(str(tmp), "w", options={"movflags": "+faststart"}) as dst:
        out = dst.add_stream("libx264", rate=w.fps)
        out.width, out.height, out.pix_fmt = w.width, w.height, "yuv420p"
        out.bit_rate = w.bitrate
        out.codec_context.gop_size = w.gop
        out.codec_context.options = {"preset": "veryfast", "bf": "0", "sc_threshold": "0"}
        out.time_base = tb = Fraction(1, w.fps)
        for k in range(round(w.seconds * w.fps)):
            # Hold the latest source frame due at this output time (duplicates or drops as needed).
            while t_next <= k / w.fps + 1e-6:
                current = f_next
                t_next, f_next = next(frames)
            f = current.reformat(width=w.width, height=w.height, format="yuv420p")
            f.pts = k
            f.time_base = tb
            for pkt in out.encode(f):
                dst.mux(pkt)
        for pkt in out.encode():
            dst.mux(pkt)
    tmp.replace(w.path)
    return w.path
