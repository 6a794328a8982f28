"""Test media made from the shared clips: pieces remuxed with the clock an encoder would give them,
and a folder served over HTTP as a recorder or a stream server would serve it."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """``folder`` on a local HTTP server (no range requests: an MP4 needs its moov first); yields
    its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
