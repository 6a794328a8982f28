"""Hand-over from a camera's decode thread to its analysis thread.

Decoding a live stream must keep real time whatever inference does, so the decode side never waits:
when the analysis side falls behind, the oldest waiting frame is dropped (and counted). Only
decimated frames travel here; the decoder's reference frames and the clip ring's packets never do.
A file replayed as fast as possible has no real time to keep: there (``lossless``) the decode side
waits for room instead, and every frame is analysed.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, capacity: int = 2, lossless: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.lossless = lossless
        self.dropped = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> bool:
        """Queue ``item``; returns True when the oldest waiting item was dropped to make room."""
        with self._cond:
            while self.lossless and len(self._items) >= self.capacity and not self._closed:
                self._cond.wait()
            dropped = len(self._items) >= self.capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
        return dropped

    def close(self) -> None:
        """No more items; ``get`` returns what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self) -> T | None:
        """Next item, waiting for one; None once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            item = self._items.popleft() if self._items else None
            self._cond.notify_all()  # a lossless producer may be waiting for room
            return item
