"""Test media made from the shared clips: pieces remuxed with the clock an encoder would give them."""

from __future__ import annotations

import threading
import time

import av

from tests.conftest import CLIPS

CLIP = str(CLIPS / "indoor_one_by_one.mp4")  # 10 fps, a keyframe every second


def remux_piece(
    out: av.container.OutputContainer, o: av.VideoStream, from_s: float, to_s: float, clock_s: float,
    pace: threading.Event | None = None,
) -> None:  # fmt: skip
    """Remux the clip's ``from_s``-``to_s`` into ``out``, its clock starting at ``clock_s`` (as an
    encoder started then stamps it); ``pace``: in real time until the event is set."""
    with av.open(CLIP) as src:
        v = src.streams.video[0]
        src.seek(int(from_s / v.time_base), stream=v, backward=True)
        base: int | None = None
        t0 = time.monotonic()
        for pkt in src.demux(v):
            if pkt.dts is None:
                continue
            if pkt.pts * v.time_base >= to_s:
                break
            base = pkt.dts if base is None else base
            t = float((pkt.dts - base) * v.time_base)
            if pace is not None and pace.wait(max(0.0, t0 + t - time.monotonic())):
                return
            shift = int(clock_s / v.time_base) - base
            pkt.pts, pkt.dts, pkt.stream = pkt.pts + shift, pkt.dts + shift, o
            out.mux(pkt)
