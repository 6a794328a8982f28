"""The real ONNX models on real photos."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detect import Geometry, build_detector, nms
from edge.models import REPO_ROOT, resolve_model
from edge.onnxshape import load_lean
from tests.conftest import PHOTOS

VEHICLES = {"car", "truck", "bus"}


def _found(det, labels) -> list[tuple[str, float, tuple[float, ...]]]:
    return [
        (labels[c], float(s), tuple(map(float, b)))
        for b, s, c in zip(det.xyxy_norm, det.score, det.class_id, strict=True)
    ]


@pytest.fixture(scope="module", params=["yolox_nano_416", "fastestdet_352"])
def detector(request):
    return build_detector(resolve_model(request.param))


def test_finds_the_person_in_the_field(detector) -> None:
    img = cv2.imread(str(PHOTOS / "rural_person_dog_horse.jpg"))
    found = _found(detector.detect_bgr(img), detector.labels)
    people = [f for f in found if f[0] == "person"]
    assert len(people) == 1, found
    x1, y1, x2, y2 = people[0][2]
    # The person stands left of centre, head near the top third, feet near the bottom.
    assert 0.2 < (x1 + x2) / 2 < 0.5 and y1 < 0.35 and y2 > 0.75, people


def test_finds_the_cars_in_the_rainy_street() -> None:
    det = build_detector(resolve_model("yolox_nano_416"))
    img = cv2.imread(str(PHOTOS / "rainy_street_1.jpg"))
    found = _found(det.detect_bgr(img), det.labels)
    vehicles = [f for f in found if f[0] in VEHICLES]
    assert len(vehicles) >= 2, found
    # The car parked at the right edge of the picture.
    assert any(f[2][0] > 0.8 and f[2][2] > 0.95 for f in vehicles), vehicles


def test_batch_gives_the_same_result_as_single_runs() -> None:
    det = build_detector(resolve_model("yolox_nano_416"))
    imgs = [cv2.imread(str(PHOTOS / n)) for n in ("rural_person_dog_horse.jpg", "bicycle_truck_dog.jpg")]
    resized = []
    for im in imgs:
        g = det.geometry(im.shape[1], im.shape[0])
        resized.append(cv2.resize(im, (g.resized_w, g.resized_h)))
    batch = det.infer(resized)
    for r, b in zip(resized, batch, strict=True):
        single = det.infer([r])[0]
        np.testing.assert_allclose(single.xyxy_norm, b.xyxy_norm, atol=1e-4)
        np.testing.assert_array_equal(single.class_id, b.class_id)


def test_letterbox_geometry_keeps_aspect() -> None:
    assert Geometry.fit(1920, 1080, 416, 416, keep_aspect=True) == Geometry(416, 234)
    assert Geometry.fit(480, 640, 416, 416, keep_aspect=True) == Geometry(312, 416)
    assert Geometry.fit(1920, 1080, 352, 352, keep_aspect=False) == Geometry(352, 352)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.6, 0.9, 0.5], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_unknown_class_name_is_named() -> None:
    det = build_detector(resolve_model("yolox_nano_416"))
    with pytest.raises(ValueError, match="tractor"):
        det.class_ids(["person", "tractor"])


def test_upstream_batch1_file_is_a_working_fallback(tmp_path, monkeypatch) -> None:
    models = PHOTOS.parent / "models"
    (tmp_path / "yolox_nano_416.onnx").symlink_to(models / "yolox_nano_416.onnx")
    monkeypatch.setattr("edge.models.search_dirs", lambda: [tmp_path, REPO_ROOT / "models"])
    resolved = resolve_model("yolox_nano_416")
    assert resolved.path.name == "yolox_nano_416.onnx"
    det = build_detector(resolved)
    assert det.fixed_batch
    img = cv2.imread(str(PHOTOS / "rural_person_dog_horse.jpg"))
    g = det.geometry(img.shape[1], img.shape[0])
    small = cv2.resize(img, (g.resized_w, g.resized_h))
    a, b = det.infer([small, small])
    assert len(a) == len(b) >= 3


def test_flexible_input_runs_each_frame_at_its_own_shape() -> None:
    """A 16:9 frame runs as 416x256 (no square padding), other sizes on request, and a batch that
    mixes shapes gives what each image gives alone."""
    det = build_detector(resolve_model("yolox_nano_416"))
    assert det.flexible
    g = det.geometry(1920, 1080)
    assert (g.resized_w, g.resized_h) == (416, 234)
    assert det.input_hw(g.resized_w, g.resized_h) == (256, 416)
    g320 = det.geometry(640, 360, 320)
    assert det.input_hw(g320.resized_w, g320.resized_h) == (192, 320)

    img = cv2.imread(str(PHOTOS / "rural_person_dog_horse.jpg"))
    square = np.full((416, 416, 3), 114, np.uint8)
    gs = Geometry.fit(img.shape[1], img.shape[0], 416, 416, True)
    square[: gs.resized_h, : gs.resized_w] = cv2.resize(img, (gs.resized_w, gs.resized_h))
    ref = det.infer([square])[0]  # the image as the model was trained: letterboxed into 416x416
    person = ref.xyxy_norm[[det.labels[c] == "person" for c in ref.class_id]][0]
    person *= np.array([416 / gs.resized_w, 416 / gs.resized_h] * 2, np.float32)
    for size in (None, 320):
        found = det.detect_bgr(img, size)
        people = found.xyxy_norm[[det.labels[c] == "person" for c in found.class_id]]
        assert len(people) == 1, (size, found)
        assert np.abs(people[0] - person).max() < 0.03, (size, people[0], person)

    mixed = []
    for im, size in ((img, None), (cv2.imread(str(PHOTOS / "bicycle_truck_dog.jpg")), 320), (img, 288)):
        g = det.geometry(im.shape[1], im.shape[0], size)
        mixed.append(cv2.resize(im, (g.resized_w, g.resized_h)))
    assert len({det.input_hw(m.shape[1], m.shape[0]) for m in mixed}) == 3
    for m, b in zip(mixed, det.infer(mixed), strict=True):
        single = det.infer([m])[0]
        assert len(single) == len(b) > 0
        np.testing.assert_allclose(single.xyxy_norm, b.xyxy_norm, atol=1e-4)


def test_the_free_input_model_is_cached_so_the_agent_never_imports_onnx(tmp_path, monkeypatch) -> None:
    model = resolve_model("yolox_nano_416").path
    monkeypatch.setenv("XL_CACHE_DIR", str(tmp_path / "cache"))
    first = load_lean(model)
    assert isinstance(first, bytes)  # made now, and written to the cache
    again = load_lean(model)
    assert isinstance(again, str) and Path(again).read_bytes() == first
    # A fresh process with the cache in place builds a detector without the onnx package.
    code = ("import sys; from edge.detect import build_detector; from edge.models import resolve_model; "
            "import numpy as np; d = build_detector(resolve_model('yolox_nano_416')); "
            "d.detect_bgr(np.zeros((360, 640, 3), np.uint8)); print('onnx' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "XL_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert out.stdout.strip() == "False"
    # Where the cache cannot be written the model still loads, from memory.
    (tmp_path / "ro").write_text("a file where the cache folder should be")
    monkeypatch.setenv("XL_CACHE_DIR", str(tmp_path / "ro"))
    assert isinstance(load_lean(model), bytes)


def test_inputs_of_many_sizes_share_one_staging_buffer() -> None:
    """Crops come in dozens of sizes: the staging memory must not grow with their number, and an
    image must give the same detections after other sizes left their pixels in the buffer."""
    photo = cv2.imread(str(PHOTOS / "bicycle_truck_dog.jpg"))
    fresh = build_detector(resolve_model("yolox_nano_416"))
    g = fresh.geometry(photo.shape[1], photo.shape[0])
    full = cv2.resize(photo, (g.resized_w, g.resized_h))
    expected = fresh.infer([full])[0]
    assert len(expected) > 0

    det = build_detector(resolve_model("yolox_nano_416"))
    rng = np.random.default_rng(1)
    det.infer([full, full, full, full])  # the largest input first: the buffers' size is set here
    held = det.staging_bytes()
    for h in range(64, 256, 24):  # crops of eight heights and widths, some batched
        for w in (96, 200, 300):
            crops = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(1 + h % 3)]
            det.infer(crops)
    assert det.staging_bytes() == held
    # Smaller inputs left other values past their own rows and columns: padding must be re-written.
    again = det.infer([full])[0]
    np.testing.assert_allclose(again.xyxy_norm, expected.xyxy_norm, atol=1e-5)
    np.testing.assert_array_equal(again.class_id, expected.class_id)


_ARENA_PROBE = """
import sys, numpy as np
import edge.detect as D
from edge.models import resolve_model
if sys.argv[1] == "own":
    D._arena_state = False  # as where onnxruntime cannot register a shared arena
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
dets = [D.build_detector(resolve_model("yolox_nano_416")) for _ in range(2)]
base = rss()
rng = np.random.default_rng(0)
for d in dets:  # one after the other: what the first grew, the second may reuse
    for hw in [(256, 416), (160, 224), (96, 128), (192, 320), (224, 288), (128, 416), (256, 256), (160, 416)]:
        for b in (1, 2, 4):
            shape = (b, 12, hw[0] // 2, hw[1] // 2) if d.focus_input else (b, 3) + hw
            x = rng.random(shape, dtype=np.float32)
            for _ in range(2):  # the second run of a shape allocates its planned memory pattern
                d.session.run(None, {d.input_name: x})
print(rss() - base)
"""


def test_sessions_share_one_cpu_arena() -> None:
    """The agent's inference workers (one session each) grow one arena between them, not one each:
    on inputs of many sizes that is tens of MB less resident memory."""
    grown: dict[str, float] = {}
    for mode in ("own", "shared"):
        # The median of three processes: one reading of resident memory varies by about 1.5 MB (a
        # 2-core Zen 4 saved 19.7 MB once, 21.0-22.3 MB in four other runs).
        runs = [
            float(subprocess.run([sys.executable, "-c", _ARENA_PROBE, mode], capture_output=True, text=True,
                                 check=True, cwd=REPO_ROOT).stdout.strip().splitlines()[-1])  # fmt: skip
            for _ in range(3)
        ]
        grown[mode] = statistics.median(runs)
    assert grown["shared"] < grown["own"] - 20.0, grown
