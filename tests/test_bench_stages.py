"""scripts/bench's per-stage timing runs the real stages on a real clip."""

from __future__ import annotations

from edge.detect import build_detector
from edge.models import resolve_model
from tests.conftest import CLIPS
from xltools.bench.stages import stage_times


def test_stage_times_cover_every_stage_on_a_real_clip() -> None:
    det = build_detector(resolve_model("yolox_nano_416"))
    ms = stage_times(CLIPS / "indoor_one_by_one.mp4", det, frames=9, detect_every=3)
    assert set(ms) == {"decode", "convert", "motion", "infer", "postprocess", "track", "rules"}
    assert all(v > 0 for v in ms.values()), ms
    assert ms["infer"] > ms["rules"], ms  # a model run costs more than a polygon test
