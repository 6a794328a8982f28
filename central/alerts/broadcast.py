"""Fan-out of Server-Sent Events to every connected browser.

Lives on the asyncio loop; other threads (the MQTT ingest worker) hand messages in through
``publish_threadsafe``, which hops onto the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Pushed to a subscriber to end its stream (shutdown, or it fell too far behind).
_CLOSE = None


@dataclass(frozen=True)
class Audience:
    """Who a frame concerns: its station and, for orders, the assigned worker and the alerts' ids."""

    station: str | None = None
    worker_id: str | None = None


Accept = Callable[[Audience | None], bool]


def _everyone(_audience: Audience | None) -> bool:
    return True


def sse_frame(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE message; ``data`` must be a single line (compact JSON is)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


class Broadcaster:
    def __init__(self, queue_size: int = 256) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._queue_size = queue_size
        self._subscribers: dict[asyncio.Queue[str | None], Accept] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.slow_clients_dropped = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop that serves the streams (called from the app's lifespan)."""
        self._loop = loop

    @property
    def client_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, accept: Accept = _everyone) -> asyncio.Queue[str | None]:
        """A queue of frames; ``accept`` decides, per frame's audience, whether this subscriber gets it."""
        q: asyncio.Queue[str | None] = asyncio.Queue(self._queue_size)
        self._subscribers[q] = accept
        return q

    def unsubscribe(self, q: asyncio.Queue[str | None]) -> None:
        self._subscribers.pop(q, None)

    def publish(self, frame: str, audience: Audience | None = None) -> None:
        """Queue ``frame`` for every subscriber that accepts ``audience``. Loop thread only."""
        for q, accept in list(self._subscribers.items()):
            if not accept(audience):
                continue
            try:
                q.put_nowait(frame)
            except asyncio.QueueFull:
                # Cut off a client that cannot keep up rather than grow without bound; its
                # EventSource reconnects and the console refetches the list.
                self._end(q)
                self.slow_clients_dropped += 1
                log.warning("SSE client too slow, disconnected (%d so far)", self.slow_clients_dropped)

    @property
    def listening(self) -> bool:
        """Whether any stream is open: with none, announcing costs nothing (any thread may ask; a
        console that connects a moment later loads the current list first)."""
        return bool(self._subscribers)

    def publish_threadsafe(self, frame: str, audience: Audience | None = None) -> None:
        """Queue ``frame`` from any thread; a no-op once the loop is gone (shutdown), and while no
        stream is open (the loop was woken for every alert and order, to queue it for nobody)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._subscribers:
            return
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            loop.call_soon_threadsafe(self.publish, frame, audience)

    def close(self) -> None:
        """End every stream. Loop thread only."""
        for q in list(self._subscribers):
            self._end(q)

    def _end(self, q: asyncio.Queue[str | None]) -> None:
        self._subscribers.pop(q, None)
        while not q.empty():
            q.get_nowait()
        q.put_nowait(_CLOSE)
