"""The console's live stream: frames reach the open streams, and cost nothing while none is open."""

from __future__ import annotations

import asyncio

from central.alerts.broadcast import Audience, Broadcaster


def test_frames_reach_open_streams_and_no_stream_costs_no_wakeup() -> None:
    loop = asyncio.new_event_loop()
    hops: list[object] = []
    real_hop = loop.call_soon_threadsafe

    def hop(*args: object) -> object:
        hops.append(args[0])
        return real_hop(*args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = hop  # type: ignore[method-assign]
    b = Broadcaster()
    b.bind(loop)
    try:
        assert not b.listening
        b.publish_threadsafe("nobody\\n\\n", Audience("st-1"))
        assert hops == []  # the loop was not woken for nobody
        q = b.subscribe()
        assert b.listening
        b.publish_threadsafe("one\\n\\n", Audience("st-1"))
        assert len(hops) == 1
        assert loop.run_until_complete(asyncio.wait_for(q.get(), 2)) == "one\\n\\n"
        b.unsubscribe(q)
        b.publish_threadsafe("after\\n\\n")
        assert len(hops) == 1 and not b.listening
    finally:
        loop.close()
