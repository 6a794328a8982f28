"""The station-wide limit on cameras decoding at once (edge/decodeslots.py)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edge.config import StationConfig, load_station_config
from edge.decodeslots import EXTRA_SLOTS, DecodeSlots
from edge.errors import ConfigError
from edge.sources import VideoSource
from tests.conftest import CLIPS


def test_no_more_than_size_holders_at_once_and_waits_are_counted() -> None:
    slots = DecodeSlots(2)
    inside = peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        for _ in range(20):
            with slots:
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.001)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert peak == 2 and slots.waits > 0 and slots.free == 2


def test_a_slot_comes_back_when_the_decode_raises() -> None:
    slots = DecodeSlots(1)
    with pytest.raises(RuntimeError), slots:
        raise RuntimeError("corrupt packet")
    assert slots.free == 1


def test_sources_sharing_one_slot_take_turns_and_decode_every_frame() -> None:
    clip = str(CLIPS / "dashcam_short_720p.mp4")
    alone = sum(1 for _ in VideoSource(clip, None, realtime=False).frames())
    slots = DecodeSlots(1)
    counts = [0] * 3

    def run(i: int) -> None:
        for _ in VideoSource(clip, None, realtime=False, decode_slots=slots).frames():
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert alone > 20 and counts == [alone] * 3
    # Three decoders flat out on one slot: they queued for it (PyAV decodes without the GIL).
    assert slots.waits > 0 and slots.free == 1


def _station(extra: str, tmp: Path) -> Path:
    p = tmp / "station.yaml"
    p.write_text(
        f"station: {{id: s1}}\n{extra}cameras:\n"
        f"  - {{id: a, source: {CLIPS / 'parking_lot_cars.mp4'}}}\n"
        f"  - {{id: b, source: {CLIPS / 'indoor_one_by_one.mp4'}}}\n"
    )
    return p


def test_no_limit_by_default_auto_is_the_cores_and_two_and_a_bad_value_names_its_field(tmp_path: Path) -> None:
    assert load_station_config(_station("", tmp_path)).decoding.slots == 0
    auto = load_station_config(_station("decoding: {max_concurrent: auto}\n", tmp_path))
    assert auto.decoding.slots == (os.cpu_count() or 1) + EXTRA_SLOTS
    assert load_station_config(_station("decoding: {max_concurrent: 3}\n", tmp_path)).decoding.slots == 3
    for bad in ("-1", "many"):
        with pytest.raises(ConfigError) as e:
            load_station_config(_station(f"decoding: {{max_concurrent: {bad}}}\n", tmp_path))
        assert "decoding.max_concurrent" in str(e.value) and "station.yaml" in str(e.value)


def test_the_agents_cameras_share_one_set_of_slots(tmp_path: Path) -> None:
    from edge.agent import StationAgent

    def sources(extra: dict) -> list[VideoSource]:
        cfg = StationConfig.model_validate({
            "station": {"id": "s1"}, "detector": {"precision": "fp32"}, **extra,
            "outbox": {"path": str(tmp_path / "o.sqlite")}, "media": {"dir": str(tmp_path / "media")},
            "cameras": [{"id": c, "source": str(CLIPS / "parking_lot_cars.mp4")} for c in ("a", "b", "c")],
        })  # fmt: skip
        return [r.source for r in StationAgent(cfg).runners]

    shared = sources({"decoding": {"max_concurrent": 3}})
    assert shared[0].decode_slots is not None and shared[0].decode_slots.size == 3
    assert all(s.decode_slots is shared[0].decode_slots for s in shared)
    assert all(s.decode_slots is None for s in sources({}))  # no limit unless asked for
