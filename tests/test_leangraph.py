"""The detector's graph without its layout passes (edge/leangraph.py): cut only where exact."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge.detect import PAD_VALUE, build_detector
from edge.leangraph import INPUT_LAYOUT, OUTPUT_LAYOUT, focus_order, lean
from edge.models import resolve_model
from edge.onnxshape import load_free_hw
from edge.precision import find_int8
from tests.conftest import PHOTOS

# YOLOX's Focus: (dy, dx) = (0, 0), (1, 0), (0, 1), (1, 1), each a Slice on H then one on W.
YOLOX_ORDER = [(0, 0), (1, 0), (0, 1), (1, 1)]


def tiny_focus_model(order=YOLOX_ORDER, scale_first: bool = False) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    """image -> [Div] -> Focus (Slices, Concat) -> Conv -> Reshape [0, 4, -1] -> Transpose."""
    rng = np.random.default_rng(1)
    inits = [
        helper.make_tensor(
            "w", TensorProto.FLOAT, [4, 12, 3, 3], rng.normal(size=4 * 12 * 9).astype(np.float32)
        ),
        helper.make_tensor("shape", TensorProto.INT64, [3], [0, 4, -1]),
        helper.make_tensor("big", TensorProto.INT64, [1], [1 << 30]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
        helper.make_tensor("ax2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("ax3", TensorProto.INT64, [1], [3]),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("k255", TensorProto.FLOAT, [], [255.0]),
    ]
    nodes = []
    src = "images"
    if scale_first:
        nodes.append(helper.make_node("Div", ["images", "k255"], ["scaled"]))
        src = "scaled"
    parts = []
    for k, (dy, dx) in enumerate(order):
        start_y, start_x = ("one" if dy else "zero"), ("one" if dx else "zero")
        nodes.append(helper.make_node("Slice", [src, start_y, "big", "ax2", "two"], [f"r{k}"]))
        nodes.append(helper.make_node("Slice", [f"r{k}", start_x, "big", "ax3", "two"], [f"p{k}"]))
        parts.append(f"p{k}")
    nodes += [
        helper.make_node("Concat", parts, ["focus"], axis=1),
        helper.make_node("Conv", ["focus", "w"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["conv", "shape"], ["rows"]),
        helper.make_node("Transpose", ["rows"], ["output"], perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "A", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def layouts(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def test_focus_and_the_final_transpose_are_cut_and_the_output_is_the_same() -> None:
    stock = tiny_focus_model()
    cut = lean(tiny_focus_model())
    assert layouts(cut) == {INPUT_LAYOUT: "focus2x2", OUTPUT_LAYOUT: "channels_first"}
    assert [n.op_type for n in cut.graph.node] == ["Conv", "Reshape"]
    assert {t.name for t in cut.graph.initializer} == {"w", "shape"}  # the Slices' bounds went with them
    x = np.random.default_rng(2).integers(0, 256, (2, 3, 32, 48)).astype(np.float32)
    got = run(cut, np.ascontiguousarray(focus_order(x)))
    np.testing.assert_array_equal(got.transpose(0, 2, 1), run(stock, x))


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(tiny_focus_model(scale_first=True), id="arithmetic-before-the-first-conv"),
        pytest.param(tiny_focus_model(order=[(0, 0), (0, 1), (1, 0), (1, 1)]), id="another-block-order"),
    ],
)
def test_an_input_that_is_not_yolox_focus_is_kept(model: onnx.ModelProto) -> None:
    x = np.random.default_rng(3).integers(0, 256, (1, 3, 32, 32)).astype(np.float32)
    want = run(model, x)
    cut = lean(model)
    assert INPUT_LAYOUT not in layouts(cut)  # the image still goes in as it is
    assert cut.graph.input[0].name == "images" and cut.graph.node[0].op_type in {"Div", "Slice"}
    assert layouts(cut).get(OUTPUT_LAYOUT) == "channels_first"  # that end is still exact
    np.testing.assert_array_equal(run(cut, x).transpose(0, 2, 1), want)


@pytest.mark.parametrize("weights", ["fp32", "int8"])
def test_the_detector_finds_what_the_stock_graph_finds(weights: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XL_CACHE_DIR", str(tmp_path))
    model = resolve_model("yolox_nano_416")
    if weights == "int8":  # its graph went through quantisation: Focus is SpaceToDepth and a Gather
        q = find_int8(model)
        if q is None:
            pytest.skip("no int8 build on the model path (scripts/build-int8)")
        model = replace(model, path=q.path)
    det = build_detector(model)
    assert det.focus_input and det.rows_channels_first
    stock = ort.InferenceSession(load_free_hw(model.path), providers=["CPUExecutionProvider"])
    found = 0
    for photo in sorted(PHOTOS.glob("*.jpg")):
        img = cv2.imread(str(photo))
        g = det.geometry(img.shape[1], img.shape[0])
        small = cv2.resize(img, (g.resized_w, g.resized_h))
        hw = det.input_hw(g.resized_w, g.resized_h)
        canvas = np.full((*hw, 3), PAD_VALUE, np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        raw = stock.run(None, {"images": canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
        want = det._decode(raw.T, g, hw)  # the stock rows, read as the lean graph gives them
        got = det.infer([small])[0]
        np.testing.assert_array_equal(got.xyxy_norm, want.xyxy_norm)
        np.testing.assert_array_equal(got.class_id, want.class_id)
        found += len(got)
    assert found > 10
