"""The detector's graph as the agent runs it: YOLOX with its pure layout work moved out.

YOLOX opens with Focus (eight Slices and a Concat, which onnxruntime rewrites as SpaceToDepth and
a Gather: every other pixel into 12 channels at half size) and closes with a Transpose of its
[N, 85, A] rows to [N, A, 85]. Both only move bytes, separate passes over the image and the output
that took 4.5% of an int8 inference at 416x256. The agent's staging already moves every byte of the
input once (HWC uint8 -> CHW float); written in Focus order instead, it costs the same, and the
decoder reads the head's rows channels-first. Same weights, same arithmetic, the same output bits.

A cut is made only where the removed nodes are layout ops alone and the cut graph gives the stock
graph's output bit for bit on a test input; otherwise the graph keeps that end as it was. What was
cut is written into the model's metadata, which the detector reads from its session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

INPUT_LAYOUT = "xueliang.input_layout"  # "focus2x2": (N, 12, H/2, W/2), see focus_order
OUTPUT_LAYOUT = "xueliang.output_layout"  # "channels_first": (N, 5 + C, A)
_LAYOUT_OPS = {"Slice", "Concat", "SpaceToDepth", "Gather", "DepthToSpace"}
# Focus order from an HWC batch: viewed as ``focus_blocks`` (n, h/2, dy, w/2, dx, c), permuted to
# (n, dx, dy, c, h/2, w/2), i.e. channel (2 * dx + dy) * 3 + c. The staging (numpy) and the GPU
# sizing (torch) both write the input this way.
FOCUS_PERM = (0, 4, 2, 5, 1, 3)


def focus_blocks(n: int, h: int, w: int) -> tuple[int, int, int, int, int, int]:
    return (n, h // 2, 2, w // 2, 2, 3)


def focus_order(nchw: np.ndarray) -> np.ndarray:
    """What Focus makes of an (N, 3, H, W) input: top-left, bottom-left, top-right, bottom-right
    pixels of each 2x2 block, three channels each (YOLOX's order). For checks; the detector writes
    this order straight from its HWC canvas (``edge.detect``)."""
    return np.concatenate(
        [nchw[..., ::2, ::2], nchw[..., 1::2, ::2], nchw[..., ::2, 1::2], nchw[..., 1::2, 1::2]], axis=1
    )


def _needed(graph: onnx.GraphProto, inputs: set[str]) -> set[int]:
    """Indices of the nodes the outputs need when ``inputs`` are fed."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    need: set[int] = set()
    stack = [o.name for o in graph.output]
    while stack:
        t = stack.pop()
        i = producer.get(t)
        if t in inputs or i is None or i in need:
            continue
        need.add(i)
        stack.extend(graph.node[i].input)
    return need


def _cut_focus(model: onnx.ModelProto) -> bool:
    """Feed the first Conv's input directly where only layout ops lie between it and the image."""
    import onnx

    g = model.graph
    conv = next((n for n in g.node if n.op_type == "Conv"), None)
    if conv is None or len(g.input) != 1:
        return False
    x = conv.input[0]
    need = _needed(g, {x})
    dropped = [n.op_type for i, n in enumerate(g.node) if i not in need]
    if not dropped or any(op not in _LAYOUT_OPS for op in dropped):
        return False
    kept = [onnx.NodeProto() for _ in need]
    for dst, i in zip(kept, sorted(need), strict=True):
        dst.CopyFrom(g.node[i])
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    unused = [t for t in g.initializer if t.name not in used]  # the Slices' starts and ends
    for t in unused:
        g.initializer.remove(t)
    n0 = g.input[0].type.tensor_type.shape.dim[0]
    batch = n0.dim_value or n0.dim_param or "N"  # a fixed batch (an upstream batch-1 file) stays fixed
    g.input.pop()
    g.input.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [batch, 12, "H2", "W2"]))
    model.metadata_props.add(key=INPUT_LAYOUT, value="focus2x2")
    return True


def _cut_output_transpose(model: onnx.ModelProto) -> bool:
    """Give the head's rows channels-first where the graph ends by transposing them."""
    g = model.graph
    last = next((n for n in g.node if len(g.output) == 1 and g.output[0].name in n.output), None)
    if last is None or last.op_type != "Transpose":
        return False
    perm = next((list(a.ints) for a in last.attribute if a.name == "perm"), None)
    if perm != [0, 2, 1]:
        return False
    src = last.input[0]
    g.node.remove(last)
    for n in g.node:
        for i, o in enumerate(n.output):
            if o == src:
                n.output[i] = g.output[0].name
    dims = g.output[0].type.tensor_type.shape.dim
    d1, d2 = dims[1].SerializeToString(), dims[2].SerializeToString()
    dims[1].ParseFromString(d2)
    dims[2].ParseFromString(d1)
    model.metadata_props.add(key=OUTPUT_LAYOUT, value="channels_first")
    return True


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # a check, not the agent's session: errors only
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def lean(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (input H and W already free) with the layout ends cut where that is exact."""
    import onnx

    x = np.random.default_rng(0).integers(0, 256, (1, 3, 64, 96)).astype(np.float32)
    want = _run(model, x)

    def exact(cut: Callable[[onnx.ModelProto], bool], base: onnx.ModelProto, feed: np.ndarray,
              back: Callable[[np.ndarray], np.ndarray]) -> onnx.ModelProto | None:  # fmt: skip
        trial = onnx.ModelProto()
        trial.CopyFrom(base)
        try:  # a graph this cut breaks, or changes, is not used: the agent must start either way
            return trial if cut(trial) and np.array_equal(back(_run(trial, feed)), want) else None
        except Exception:
            return None

    focus = exact(_cut_focus, model, np.ascontiguousarray(focus_order(x)), lambda y: y)
    model, feed = (focus, np.ascontiguousarray(focus_order(x))) if focus is not None else (model, x)
    rows = exact(_cut_output_transpose, model, feed, lambda y: y.transpose(0, 2, 1))
    return rows if rows is not None else model
