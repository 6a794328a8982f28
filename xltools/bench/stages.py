"""Per-stage CPU time per frame of the edge pipeline on one stream, measured stage by stage.

CPU time, not wall time, and the decoder on one thread. With FFmpeg's slice threads a frame's wall
time hides part of its work (Emerald Rapids box: 0.81 ms wall for a quiet 640x360 frame that is
1.04-1.08 ms of CPU on one thread; 2.73 ms for a 1080p frame of 4.1-4.4 ms), and their own CPU
grows with idle cores to spend, which a full box does not give them (1080p: 4.6 ms of CPU alone,
4.2 when two streams fill both cores as in the decode-only ceiling, 4.0 on one thread)."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import av

from edge.detect import Detector
from edge.geometry import Zone
from edge.motion import MotionGate
from edge.rules import FrameContext, IntrusionRule
from edge.scale import Downscaler
from edge.track import Tracker


def stage_times(path: Path, detector: Detector, frames: int = 150, detect_every: int = 3) -> dict[str, float]:
    """Mean CPU ms per frame (every thread of this process) of: decode, convert (to detector input),
    motion, infer, postprocess, track, rules. Infer and postprocess are split by timing the raw
    session run separately."""
    t: dict[str, float] = defaultdict(float)
    n: dict[str, int] = defaultdict(int)
    gate = MotionGate()
    tracker = Tracker()
    scale = Downscaler()
    rule = IntrusionRule("r", Zone("z", [(0, 0), (1, 0), (1, 1), (0, 1)]), [0, 2], detector.labels)
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.thread_count = 1
        it = c.decode(video=0)
        for i in range(frames):
            t0 = time.process_time()
            try:
                frame = next(it)
            except StopIteration:
                break
            t1 = time.process_time()
            t["decode"] += t1 - t0
            n["decode"] += 1
            if i % detect_every:
                continue  # decimated to the detect rate after decoding
            gate.moving(frame)
            t2 = time.process_time()
            t["motion"] += t2 - t1
            geo = detector.geometry(frame.width, frame.height)
            small = scale(frame, geo.resized_w, geo.resized_h, "bgr24")
            t3 = time.process_time()
            t["convert"] += t3 - t2
            hw = detector.input_hw(geo.resized_w, geo.resized_h)
            inputs, _ = detector.stage([small], hw)
            raw = detector.session.run(None, {detector.input_name: inputs})[0]
            t4 = time.process_time()
            t["infer"] += t4 - t3
            dets = detector._decode(raw[0], geo, hw)
            t5 = time.process_time()
            t["postprocess"] += t5 - t4
            tracks = tracker.update(dets, i / 15.0)
            t6 = time.process_time()
            t["track"] += t6 - t5
            rule.update(tracks, FrameContext("s", "c", i / 15.0, datetime.now(UTC)))
            t["rules"] += time.process_time() - t6
            for k in ("motion", "convert", "infer", "postprocess", "track", "rules"):
                n[k] += 1
    return {k: 1000.0 * t[k] / max(1, n[k]) for k in ("decode", "convert", "motion", "infer", "postprocess",
                                                       "track", "rules")}  # fmt: skip
