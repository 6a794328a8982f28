"""Ceilings: decode-only throughput (PyAV, no conversion) and inference-only throughput."""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort

from edge.hwdecode import HwDecode
from edge.onnxshape import load_free_hw
from edge.sources import own_decoder


@dataclass
class DecodeRun:
    streams: int
    fps: float  # frames/s of all decoders together
    cpu_ms_per_frame: float  # this process's CPU per decoded frame
    on_device: bool  # every decoder ran on ``hw``'s device


def parallel_decode(path: Path, streams: int, seconds: float, hw: HwDecode | None = None) -> DecodeRun:
    """``streams`` decoders of ``path`` running flat out side by side, no pixel conversion; on
    ``hw``'s device through the agent's own decoder, else in software as the ceiling defines it."""
    counts = [0] * streams
    device = [False] * streams
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(streams + 1)

    def work(i: int) -> None:
        barrier.wait()
        while time.monotonic() < stop:
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                dec = own_decoder(s, hw) if hw is not None else s.codec_context
                device[i] = hw is not None and dec.is_hwaccel
                for packet in c.demux(s):
                    counts[i] += len(dec.decode(packet))
                    if time.monotonic() >= stop:
                        return

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    barrier.wait()
    t0, c0 = time.monotonic(), process_cpu_s()
    for t in threads:
        t.join()
    dt, cpu = time.monotonic() - t0, process_cpu_s() - c0
    n = max(sum(counts), 1)
    return DecodeRun(streams, n / dt, cpu * 1000.0 / n, all(device))


def decode_only_fps(path: Path, streams: int, seconds: float) -> float:
    """The decode-only ceiling: total frames/s of ``streams`` software decoders flat out."""
    return parallel_decode(path, streams, seconds).fps


def process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _spin(sess: ort.InferenceSession, feed: dict, until: float, counts: list[int], i: int) -> None:
    """Run ``sess`` until ``until``, counting images; onnxruntime releases the GIL in run()."""
    n = len(next(iter(feed.values())))
    while time.monotonic() < until:
        sess.run(None, feed)
        counts[i] += n


def inference_only(
    model: Path, seconds: float, batches=(1, 2, 4, 8), threads=(1, 2), hw: tuple[int, int] | None = None,
    settings: list[tuple[int, int]] | None = None,
) -> dict:  # fmt: skip
    """Best inferences/s on preprocessed tensors over batch sizes and thread settings: one session
    with ``threads`` intra-op threads, and (the agent's layout) one single-threaded session per
    core side by side; ``settings`` (sessions, threads) pairs replace those. ``hw``: the input
    (height, width) to run at (None: the model's own)."""
    results = {}
    source = load_free_hw(model) if hw else str(model)
    cores = max(threads)
    settings = settings or [(1, th) for th in threads] + ([(cores, 1)] if cores > 1 else [])
    for sessions, th in settings:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = th
        opts.inter_op_num_threads = 1
        sess = [
            ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"]) for _ in range(sessions)
        ]
        inp = sess[0].get_inputs()[0]
        h, w = hw or (inp.shape[2], inp.shape[3])
        for b in batches:
            x = (np.random.default_rng(0).random((b, 3, h, w), dtype=np.float32) * 255).astype(np.float32)
            counts = [0] * sessions
            for s in sess:
                s.run(None, {inp.name: x})  # warm up
            t0 = time.monotonic()
            pool = [threading.Thread(target=_spin, args=(s, {inp.name: x}, t0 + seconds, counts, i))
                    for i, s in enumerate(sess)]  # fmt: skip
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            results[(b, sessions, th)] = sum(counts) / (time.monotonic() - t0)
    best = max(results, key=results.get)
    return {"best_ips": results[best], "best_batch": best[0], "best_sessions": best[1], "best_threads": best[2],
            "hw": (h, w), "table": results}  # fmt: skip
