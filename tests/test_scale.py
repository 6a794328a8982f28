"""The downscaler that feeds the motion gate and the detector averages what it drops."""

import os

import av
import numpy as np
import pytest

from edge.scale import Downscaler


def _frame(gray: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="bgr24").reformat(format="yuv420p")


@pytest.mark.parametrize(("fmt", "size"), [("gray", (178, 100)), ("bgr24", (416, 234))])
def test_fine_detail_averages_out_instead_of_aliasing(fmt: str, size: tuple[int, int]) -> None:
    # One-pixel stripes of black and white: sampling a pixel here and there (point or fast
    # bilinear scaling) turns them into false edges that flicker as the sampling phase moves.
    stripes = np.zeros((1080, 1920), np.uint8)
    stripes[:, ::2] = 255
    out = Downscaler()(_frame(stripes), *size, fmt)
    assert out.shape[:2] == (size[1], size[0])
    assert abs(float(out.mean()) - 127.5) < 6
    assert float(out.std()) < 20  # area: 6-13; point or fast bilinear: 74-127


def test_a_flat_frame_keeps_its_level_and_shape_each_call() -> None:
    scale = Downscaler()
    for level in (40, 200):
        out = scale(_frame(np.full((360, 640), level, np.uint8)), 416, 234, "bgr24")
        assert out.shape == (234, 416, 3)
        assert np.all(np.abs(out.astype(int) - level) <= 4)  # the YUV round trip


def test_scaling_runs_in_the_calling_thread() -> None:
    # A pool per scaler (PyAV's default) was two threads per scaler on a 2-core box, two scalers
    # per camera: hundreds of threads on a busy station, for images that gain nothing from them.
    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = threads()
    scalers = [Downscaler() for _ in range(3)]
    frame = _frame(np.full((1080, 1920), 90, np.uint8))
    for s in scalers:
        s(frame, 416, 234, "bgr24")
        s(frame, 178, 100, "gray")
    assert threads() == before
