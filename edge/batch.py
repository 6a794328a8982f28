"""Batched inference across the cameras of a station: one worker owns the detector.

Camera threads hand a detector-sized image to their own ``InferenceSlot`` and wait; the worker
collects up to ``max_batch`` images, or what arrived within ``max_wait_ms`` of the first, and runs
them as one ``session.run``. Slots are allocated once per camera, so the hot path allocates nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.detect import Detector
from edge.meters import BATCH_BUCKETS, INFER_BUCKETS_MS, Histogram
from edge.types import Detections


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    max_seen: int = 0
    errors: int = 0  # failed session.run calls (their frames get no detections)
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    infer_ms: Histogram = field(default_factory=lambda: Histogram(INFER_BUCKETS_MS))  # per call


class InferenceSlot:
    """One camera's seat at the batcher; ``infer`` blocks the calling camera thread only. A frame's
    crops (``infer_many``) go in together, so they never wait for each other."""

    def __init__(self, batcher: InferenceBatcher) -> None:
        self._batcher = batcher
        self._done = threading.Event()
        self.images: Sequence[np.ndarray] = ()
        self.results: list[Detections] = []

    def infer(self, image: np.ndarray) -> Detections:
        return self.infer_many((image,))[0]

    def infer_many(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.images = images
        self._done.clear()
        self._batcher.submit(self)
        while not self._done.wait(0.5):
            if not self._batcher.alive:
                raise RuntimeError("inference worker stopped")
        return self.results

    def _finish(self, results: list[Detections]) -> None:
        self.results = results
        self.images = ()
        self._done.set()


class InferenceBatcher:
    """One worker thread per detector (each with its own onnxruntime session and buffers), all
    taking batches from one queue: on a small CPU two single-threaded sessions running side by side
    beat one session with two intra-op threads for a model this small."""

    def __init__(
        self, detectors: Detector | Sequence[Detector], max_batch: int = 4, max_wait_ms: float = 15.0
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.detectors = [detectors] if isinstance(detectors, Detector) else list(detectors)
        if not self.detectors:
            raise ValueError("at least one detector is needed")
        self.detector = self.detectors[0]
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._stats_lock = threading.Lock()
        self._q: queue.Queue[InferenceSlot | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"inference-{i}", daemon=True)
            for i in range(len(self.detectors))
        ]
        self._started = False
        self._stopping = False
        # Heartbeats for the watchdog: when each worker's running session.run began (0.0: idle).
        self._busy = [0.0] * len(self.detectors)

    @property
    def busy_since(self) -> float:
        """Start of the longest-running inference call now (0.0 when every worker is idle)."""
        running = [b for b in self._busy if b]
        return min(running) if running else 0.0

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self._stopping

    def slot(self) -> InferenceSlot:
        return InferenceSlot(self)

    def start(self) -> None:
        if not self._started:
            self._started = True
            for t in self._threads:
                t.start()

    def stop(self) -> None:
        self._stopping = True
        for _ in self._threads:
            self._q.put(None)
        if self._started:
            for t in self._threads:
                t.join(timeout=5.0)

    def submit(self, slot: InferenceSlot) -> None:
        self._q.put(slot)

    def _run(self, worker: int) -> None:
        detector = self.detectors[worker]
        batch: list[InferenceSlot] = []
        while True:
            first = self._q.get()
            if first is None:
                return
            batch.append(first)
            n = len(first.images)
            deadline = time.monotonic() + self.max_wait_s
            while n < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stopping = True
                    self._q.put(None)  # the other workers stop too
                    break
                batch.append(nxt)
                n += len(nxt.images)
            images = [im for s in batch for im in s.images]
            t0 = time.perf_counter()
            self._busy[worker] = time.monotonic()
            failed = False
            try:
                results = detector.infer(images)
            except Exception:
                failed = True
                results = [Detections.empty()] * len(images)
            self._busy[worker] = 0.0
            at = 0
            for s in batch:
                k = len(s.images)
                s._finish(results[at : at + k])
                at += k
            with self._stats_lock:
                if failed:
                    self.stats.errors += 1
                else:
                    self.stats.infer_ms.observe((time.perf_counter() - t0) * 1000.0)
                self.stats.batches += 1
                self.stats.images += len(images)
                self.stats.max_seen = max(self.stats.max_seen, len(images))
                self.stats.batch_size.observe(len(images))
            batch.clear()
            if self._stopping:
                return


class DirectInference:
    """The same ``infer`` verb without a worker thread: replay and tests with one camera."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def infer(self, image: np.ndarray) -> Detections:
        return self.detector.infer([image])[0]

    def infer_many(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.detector.infer(images)
