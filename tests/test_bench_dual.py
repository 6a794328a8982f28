"""scripts/bench-dual's parts: dual-stream cameras on the bench's workloads, and the count of the
clips they wrote by size (which tells whether the clips came from the record stream)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from tests.test_dual_stream import encode_h264
from xltools.bench.dual import clip_sizes
from xltools.bench.xueliang import station_config


def test_each_camera_detects_on_one_stream_and_records_the_other(tmp_path: Path) -> None:
    cfg = station_config(tmp_path / "quiet.mp4", 3, 1883, tmp_path, ["car"], 30.0, tmp_path / "main.mp4")
    assert [c.source for c in cfg.cameras] == [str(tmp_path / "quiet.mp4")] * 3
    assert [c.record_source for c in cfg.cameras] == [str(tmp_path / "main.mp4")] * 3
    assert [c.start_s for c in cfg.cameras] == [0.0, 10.0, 20.0]  # staggered, both streams alike
    assert all(c.realtime and c.loop for c in cfg.cameras)
    plain = station_config(tmp_path / "quiet.mp4", 1, 1883, tmp_path, ["car"])
    assert plain.cameras[0].record_source is None


def _clip(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), format="rgb24") for i in range(3)]
    encode_h264(frames, path, (w, h), 10)


def test_clip_sizes_counts_the_probes_clips_by_size(tmp_path: Path) -> None:
    _clip(tmp_path / "bench-a-media" / "cam00" / "e1.mp4", 1920, 1080)
    _clip(tmp_path / "bench-a-media" / "cam01" / "e2.mp4", 1920, 1080)
    _clip(tmp_path / "bench-b-media" / "cam00" / "e3.mp4", 640, 360)
    (tmp_path / "bench-b-media" / "cam00" / "e4.mp4").write_bytes(b"not a clip")
    _clip(tmp_path / "elsewhere" / "e5.mp4", 1920, 1080)  # not a probe's media folder
    assert clip_sizes(tmp_path) == {"1920x1080": 2, "640x360": 1, "unreadable": 1}
