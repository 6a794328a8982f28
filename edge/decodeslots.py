"""A station-wide limit on how many cameras decode at the same moment.

Forty cameras on a two-core box are forty decoder threads, runnable whenever their frames come due.
The threads that carry an alert (analysis, evidence, the link) and the inference workers then wait
behind them in the run queue. The decoding needs the cores either way; letting only a few cameras
decode at once (the cores, and two more, so that a slot is not left idle while its holder is
preempted) leaves the rest of the station a short queue to wait in. Measured on a 2-core EPYC
(docs/performance.md): at 42-48 quiet cameras the alert p99 fell from 570-1010 ms to 210-600 ms,
and the motion frames detected rose from 0.96-0.99 to 1.00 in the probes that kept up.

Only software decoding takes a slot: a hardware decoder's thread mostly waits on its device. The
slot is held for ``decode()`` alone, never while reading from the network or pacing a file.
"""

from __future__ import annotations

import os
import queue
from types import TracebackType

EXTRA_SLOTS = 2  # beyond the cores: a holder preempted by inference does not stall the others


def auto_slots() -> int:
    return (os.cpu_count() or 1) + EXTRA_SLOTS


class DecodeSlots:
    """``with slots:`` around one software decode call. FIFO and allocation-free: a C-level queue of
    tokens (``queue.SimpleQueue`` waits without the GIL). ``waits`` counts calls that found every
    slot taken."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"decode slots must be >= 1, got {size}")
        self.size = size
        self.waits = 0
        self._tokens: queue.SimpleQueue[bool] = queue.SimpleQueue()
        for _ in range(size):
            self._tokens.put(True)

    def __enter__(self) -> None:
        try:
            self._tokens.get_nowait()
        except queue.Empty:
            self.waits += 1  # racy across threads: a gauge of contention, not an exact count
            self._tokens.get()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tokens.put(True)

    @property
    def free(self) -> int:
        return self._tokens.qsize()
