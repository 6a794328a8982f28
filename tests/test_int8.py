"""The int8 YOLOX-Nano (xltools.bench.int8): it loads, runs at several input sizes and batches, and
finds what the fp32 model finds on a real photo. The build is cached (XL_BENCH_CACHE or
~/.cache/xueliang/bench), so only the first run pays for calibration (well under a minute)."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.models import resolve_model
from edge.track import iou_matrix
from edge.types import Detections
from tests.conftest import PHOTOS
from xltools.bench import agreement, int8

PERSON = 0  # COCO class id


@pytest.fixture(scope="module")
def models():
    fp32 = resolve_model("yolox_nano_416").path
    return fp32, int8.build_int8(fp32)


def test_loads_and_runs_at_free_sizes_and_batches(models) -> None:
    _, q = models
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert all(isinstance(d, str) for d in (inp.shape[0], inp.shape[2], inp.shape[3])), inp.shape
    ops = {n.op_type for n in __import__("onnx").load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # it is quantized
    for w, h in ((416, 416), (320, 192), (416, 256)):
        x = np.full((2, 3, h, w), 114, np.float32)
        (out,) = sess.run(None, {inp.name: x})
        anchors = sum((h // s) * (w // s) for s in (8, 16, 32))
        assert out.shape == (2, anchors, 85)
        assert np.isfinite(out).all()


@pytest.mark.parametrize("size", [(416, 416), (320, 192)])
def test_finds_the_person_in_the_field_like_fp32(models, size) -> None:
    fp32, q = models
    img = cv2.imread(str(PHOTOS / "rural_person_dog_horse.jpg"))
    ref = int8.detector(int8.free_fp32(fp32), size).detect_bgr(img)
    got = int8.detector(q, size).detect_bgr(img)
    ref_people = ref.xyxy_norm[ref.class_id == PERSON]
    got_people = got.xyxy_norm[got.class_id == PERSON]
    assert len(ref_people) == 1 and len(got_people) >= 1, (ref, got)
    assert iou_matrix(ref_people, got_people).max() >= 0.5, (ref_people, got_people)


def test_match_fraction_counts_class_and_overlap() -> None:
    box = np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)
    ref = Detections(
        np.concatenate([box, box + 0.4]), np.array([0.9, 0.8], np.float32), np.array([0, 2], np.int32)
    )
    same_class_moved = Detections(box + 0.05, np.array([0.7], np.float32), np.array([0], np.int32))
    other_class = Detections(box + 0.4, np.array([0.7], np.float32), np.array([3], np.int32))
    assert agreement.match_fraction([ref], [same_class_moved]) == (0.5, 2)
    assert agreement.match_fraction([ref], [other_class]) == (0.0, 2)
    assert agreement.match_fraction([ref, Detections.empty()], [Detections.empty(), other_class]) == (0.0, 2)


def test_a_first_build_takes_the_kept_calibration_and_makes_the_same_model(models, tmp_path, monkeypatch) -> None:
    fp32, built = models
    table = int8.calibration_table(fp32)
    assert table.is_file(), f"no kept calibration for these weights and settings ({table.name}): " \
                            "run scripts/build-int8 --recalibrate"  # fmt: skip

    def no_calibration(*_a, **_k):
        raise AssertionError("calibrated although the ranges are kept")

    monkeypatch.setattr(int8, "CACHE", tmp_path)  # a machine's first build
    monkeypatch.setattr(int8, "_calib_inputs", no_calibration)
    fresh = int8.build_int8(fp32)
    assert fresh.parent == tmp_path and fresh.read_bytes() == built.read_bytes()
