"""A station-wide limit on how many cameras decode at the same moment.

Forty cameras on a two-core box are forty decoder threads, runnable whenever their frames come due.
The threads that carry an alert (analysis, evidence, the link) and the inference workers then wait
behind them in the run queue. The decoding needs the cores either way; letting only a few cameras
decode at once (the cores, and two more, so that a slot is not left idle while its holder is
preempted) gives them the cores first. Measured on a 2-core EPYC (docs/performance.md, nineteenth
session): at 42-48 quiet cameras the alert p99 had a median of 443 ms over twelve probes against
767 ms over ten without a limit, and the probes that kept up detected 98.6-100% of the motion frames
against 96.0-100%; with 26 busy cameras it changed nothing. But the delay partly moves rather than
goes: frames wait for a slot before they are decoded (source lag p99 0.2-0.3 s against 0.01-0.05),
and where decoding is what fills the box (14 1080p cameras) the decoders fell behind (lag p99
0.5-0.75 s, two probes of two) where without a limit they kept up (two of two). So the limit is an
operator's choice (``decoding.max_concurrent``), off by default.

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
