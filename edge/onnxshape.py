"""Free a fully convolutional detector's input height and width, so one set of weights runs at the
shape each stream needs (a 16:9 stream at 416x256 costs 55% of 416x416).

YOLOX's graph is fully convolutional up to reshapes written as ``[0, 85, -1]``: only the declared
input and output shapes pin it to 416x416. Declaring them symbolic is all it takes.
"""

from __future__ import annotations

from pathlib import Path

import onnx

STRIDE = 32  # the coarsest feature map: input sides must be multiples of it


def free_hw(model: onnx.ModelProto) -> onnx.ModelProto:
    """Mark input dims 2, 3 (H, W) and the output's anchor dim as symbolic; returns ``model``."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"expected an NCHW input, got {len(dims)} dims")
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    for out in model.graph.output:
        odims = out.type.tensor_type.shape.dim
        if len(odims) == 3:  # [N, anchors, 5 + classes]
            odims[1].dim_param = "A"
    return model


def load_free_hw(path: Path) -> bytes:
    """The model at ``path`` with a free input size, serialised for ``ort.InferenceSession``."""
    return free_hw(onnx.load(str(path))).SerializeToString()
