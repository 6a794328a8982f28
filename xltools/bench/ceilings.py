"""Ceilings: decode-only throughput (PyAV, no conversion) and inference-only throughput."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort


def decode_only_fps(path: Path, streams: int, seconds: float) -> float:
    """Total frames/s of ``streams`` parallel decoders running flat out, no pixel conversion."""
    counts = [0] * streams
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(streams + 1)

    def work(i: int) -> None:
        barrier.wait()
        while time.monotonic() < stop:
            with av.open(str(path)) as c:
                for _ in c.decode(video=0):
                    counts[i] += 1
                    if time.monotonic() >= stop:
                        return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def inference_only(model: Path, seconds: float, batches=(1, 2, 4, 8), threads=(1, 2)) -> dict:
    """Best inferences/s over batch sizes and intra-op thread counts, on preprocessed tensors."""
    results = {}
    for th in threads:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = th
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        h, w = inp.shape[2], inp.shape[3]
        for b in batches:
            x = (np.random.default_rng(0).random((b, 3, h, w), dtype=np.float32) * 255).astype(np.float32)
            sess.run(None, {inp.name: x})  # warm up
            n = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                sess.run(None, {inp.name: x})
                n += b
            results[(b, th)] = n / (time.monotonic() - t0)
    best = max(results, key=results.get)
    return {"best_ips": results[best], "best_batch": best[0], "best_threads": best[1], "table": results}
