"""Free a fully convolutional detector's input height and width, so one set of weights runs at the
shape each stream needs (a 16:9 stream at 416x256 costs 55% of 416x416).

YOLOX's graph is fully convolutional up to reshapes written as ``[0, 85, -1]``: only the declared
input and output shapes pin it to 416x416. Declaring them symbolic is all it takes.

Derived models are cached on disk per model content: ``load_free_hw`` (the stock graph, what the
bench's ceilings run) and ``load_lean`` (also without its layout passes, ``edge.leangraph``: what
the detector runs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge.models import sha256_file

if TYPE_CHECKING:
    import onnx

STRIDE = 32  # the coarsest feature map: input sides must be multiples of it
LEAN_VERSION = 1  # part of the cached lean model's name: raise it when edge.leangraph cuts differently


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


def cache_dir() -> Path:
    """Where derived models are kept (``XL_CACHE_DIR``, else ``~/.cache/xueliang``)."""
    return Path(os.environ.get("XL_CACHE_DIR") or Path.home() / ".cache" / "xueliang") / "models"


def load_free_hw(path: Path) -> str | bytes:
    """The model at ``path`` with a free input size, for ``ort.InferenceSession``: the path of a
    cached copy (made once per model content), or the serialised model where no cache can be written.

    The cache keeps the ``onnx`` package out of the agent: importing it and parsing the model costs
    ~23 MB of resident memory for the agent's life, a third of a 1080p camera's share.
    """
    return _derived(Path(path), "freehw", free_hw)


def load_lean(path: Path) -> str | bytes:
    """As ``load_free_hw``, with the graph's pure layout ends moved out (``edge.leangraph``): what
    the detector runs. Its metadata says which ends were cut."""

    def build(model: onnx.ModelProto) -> onnx.ModelProto:
        from edge.leangraph import lean

        return lean(free_hw(model))

    return _derived(Path(path), f"lean{LEAN_VERSION}", build)


def _derived(path: Path, tag: str, transform: Callable[[onnx.ModelProto], onnx.ModelProto]) -> str | bytes:
    cached = cache_dir() / f"{path.stem}-{sha256_file(path)[:16]}-{tag}.onnx"
    if cached.is_file():
        return str(cached)
    import onnx  # only here: the first start on this box with this model

    data = transform(onnx.load(str(path))).SerializeToString()
    tmp: str | None = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, cached)
    except OSError:  # a read-only home: load from memory every start
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return data
