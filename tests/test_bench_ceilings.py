"""scripts/bench reads the ceilings at its start and again at its end, and keeps the higher."""

from __future__ import annotations

from edge.models import resolve_model
from tests.conftest import CLIPS
from xltools.bench import ceilings
from xltools.bench.run import Ceilings


def test_each_ceiling_keeps_the_higher_of_two_real_readings() -> None:
    model = resolve_model("yolox_nano_416").path
    clip = CLIPS / "dashcam_short_720p.mp4"

    def read() -> Ceilings:
        return Ceilings(
            ceilings.decode_only_fps(clip, 1, 0.5),
            ceilings.inference_only(model, 0.3, (1,), (1,), (256, 416)),
            ceilings.inference_only(model, 0.3, (1,), (1,)),
        )

    first, second = read(), read()
    assert first.dec_fps > 0 and first.inf["best_ips"] > 0 and first.inf_sq["best_ips"] > 0
    # A slowed box (a neighbour's minute) reads half: the best of the two is the faster reading.
    slow = Ceilings(first.dec_fps / 2, {**first.inf, "best_ips": first.inf["best_ips"] / 2}, second.inf_sq)
    best = slow.best(second)
    assert best.dec_fps == max(first.dec_fps / 2, second.dec_fps)
    assert best.inf["best_ips"] == max(first.inf["best_ips"] / 2, second.inf["best_ips"])
    assert best.inf_sq is second.inf_sq and best.inf["hw"] == (256, 416)
    assert slow.best(slow).dec_fps == slow.dec_fps  # the same reading twice stays as it is
