"""Decode -> analysis hand-over: drops the oldest frame for live sources, waits for files."""

from __future__ import annotations

import threading
import time

import pytest

from edge.handoff import Handoff


def test_live_handoff_drops_the_oldest_and_counts() -> None:
    h: Handoff[int] = Handoff(2)
    assert [h.put(i) for i in range(5)] == [False, False, True, True, True]
    assert h.dropped == 3
    h.close()
    assert [h.get(), h.get(), h.get()] == [3, 4, None]


def test_lossless_handoff_waits_for_room_and_loses_nothing() -> None:
    h: Handoff[int] = Handoff(2, lossless=True)
    got: list[int] = []

    def consume() -> None:
        while (x := h.get()) is not None:
            time.sleep(0.002)  # a slow analysis side
            got.append(x)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        assert h.put(i) is False
    h.close()
    t.join(5)
    assert got == list(range(50)) and h.dropped == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Handoff(0)
