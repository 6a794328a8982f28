"""scripts/bench-decode's two measures, in software on a shared clip (the device path needs a GPU:
docs/performance.md has its numbers)."""

from __future__ import annotations

from edge.hwdecode import HwDecode
from tests.conftest import CLIPS
from xltools.bench.ceilings import parallel_decode
from xltools.bench.decode import main, paced

CLIP = CLIPS / "dashcam_short_720p.mp4"


def test_flat_out_counts_frames_and_their_cpu() -> None:
    sw = parallel_decode(CLIP, 2, 1.0)
    assert sw.fps > 50 and 0.05 < sw.cpu_ms_per_frame < 50 and not sw.on_device
    # A device that cannot be opened decodes in software, and the run says it was not on the device.
    assert not parallel_decode(CLIP, 1, 0.5, HwDecode("cuda", "99")).on_device


def test_paced_cameras_keep_real_time_and_report_their_cpu() -> None:
    p = paced(CLIP, 2, 2.0, None, warmup_s=1.0)
    assert p.sustained and p.min_fps >= 0.98 * 25 and p.on_device == 0  # the clip is 25 fps
    assert 0.0 < p.cpu_pct_per_camera < 100.0


def test_result_line_names_what_was_measured(capsys) -> None:
    assert main(["--clip", str(CLIP), "--decoders", "sw", "--streams", "1", "--cameras", "2", "--seconds", "1"]) == 0
    result = capsys.readouterr().out.strip().splitlines()[-1]
    keys = dict(kv.split("=") for kv in result.removeprefix("RESULT ").split())
    assert {"sw_fps_1", "sw_cpu_ms_1", "sw_cam_cpu_pct_2", "sw_cameras_sustained"} <= keys.keys()
    assert not any(k.startswith("hw_") for k in keys) and keys["sw_cameras_sustained"] == "2"
