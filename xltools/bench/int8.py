"""An int8 YOLOX-Nano made with onnxruntime's quantization tools, and its agreement with fp32.

The upstream model is opset 11; per-channel QDQ needs opset >= 13, so it is converted first. Its
input height/width are freed (``edge.onnxshape.free_hw``) before quantization, so the int8 model,
like the fp32 one, runs at any multiple-of-32 size and any batch. Calibration uses letterboxed
frames of the calibration clips at each of ``CALIB_SIZES`` (416x416, 320x192, 416x256).

The recipe (``DEFAULT``), and why. Measured on the 2-core Sapphire Rapids (AVX-512 VNNI, AMX),
onnxruntime 1.32; match = fraction of fp32 detections (score >= 0.35) found with the same class and
IoU >= 0.5 over the 5 photos + 100 evaluation-clip frames (444 detections at 416x416); speed =
int8/fp32 inferences per s, one thread, sequential, ORT_ENABLE_ALL, batch 1 / 4. The machine was
shared with other work: the speed ratios move by about +-0.05 from run to run.

- Before: QDQ on the Convs only, head tail in float, percentile, 416x416: 69.6% / 70.9% (320x192),
  0.78x / 0.67x. Min-max 27%, entropy 27% (its author's numbers).
- Everything int8 (Conv, Sigmoid, Mul, Add, Concat, MaxPool, Resize; head tail in float): 64.2% /
  71.5%, 0.92x / 1.00x: the QLinearConvs are faster than the float Convs (5.2 vs 8.1 ms at
  416x416), but onnxruntime's uint8 SiLU (QLinearSigmoid lookup + QLinearMul, 5.8 ms) costs twice
  the float QuickGelu it replaces (3.0 ms) and its uint8 depthwise convolutions are 2-4x slower
  than its float (NCHWc) ones. Calibration does not rescue the accuracy: min-max 41.9%, entropy
  59.7%, percentile 99.99 67.1%, 99.999 64.2%, 99.9999 62.6%, 416x416-only 70.5%.
  SiLU left in float (DQ -> Sigmoid, Mul -> Q): 0.66x. U8S8 -> S8S8 activations: 0.31x.
- Sensitivity (quantize one part, the rest float): the stem conv alone 78%, the stem's SiLU 68%,
  dark2's first block 71%; every later stage alone 95-98%. The first layers' activations (raw
  0..255 pixels through a folded-BN conv) do not fit a per-tensor 8-bit scale. Stem + dark2 in
  float: 93.5% / 95.3%; + dark3's first three blocks: 97.5% / 97.2% at 0.98x / 1.01x.
- Per-block timing (int8 block - float block): the high-resolution stages and the head lose time
  in int8 (depthwise convs, SiLU), dark5 and the neck gain (1x1 convs with 128-512 input channels):
  int8 only for dark4 + dark5 + neck: 97.1% / 97.2%, 1.05x / 1.06x at 416x416, 1.02x / 1.04x at
  320x192 (dark5 + neck only: 97.3% / 98.4%, 1.02x / 1.05x; + the 13x13 and 26x26 head levels:
  97.1% / 96.5%, 1.03x / 1.06x; depthwise convs in float: 0.92x; QOperator instead of QDQ: the
  same speed within noise). Percentile 99.99 / min-max with this split: 97.5% / 97.1% (416x416),
  97.5% / 98.7% (320x192): within a few detections, so the default percentile stays.

That is ``DEFAULT``: dark4, dark5 and the neck int8 (U8S8, per-channel weights, percentile
99.999), the rest float. onnxruntime's CPU kernels, not the quantization, cap the speed-up here.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np
import onnx

from edge.detect import PAD_VALUE, Detector, YoloxDetector
from edge.models import REPO_ROOT, ModelSpec, ResolvedModel, sha256_file
from edge.onnxshape import free_hw
from xltools.bench.agreement import match_fraction
from xltools.bench.workloads import CACHE, CLIPS

CALIB_CLIPS = ("campus_pedestrians_vtest.avi", "parking_lot_cars.mp4", "indoor_one_by_one.mp4",
               "motorway_pedestrian.avi", "dashcam_highway.mp4", "night_street_crowd_1080p.mp4")  # fmt: skip
EVAL_CLIPS = ("parking_lot_person_bicycle_car.mp4", "road_traffic_60fps.avi", "handheld_street_cuts.mp4",
              "campus_pedestrians_vtest.avi", "store_aisle_loiter.gif")  # fmt: skip
PHOTOS = CLIPS.parent / "photos"
CALIB_SIZES = ((416, 416), (320, 192), (416, 256))  # (width, height): the sizes the edge runs at
QUANT_OPS = ("Conv", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Resize")


@dataclass(frozen=True)
class Recipe:
    """Everything that changes the int8 model; its hash names the cached file."""

    calibrate: str = "percentile"  # minmax | entropy | percentile | distribution
    percentile: float = 99.999
    calib_per_clip: int = 12  # frames per calibration clip, each used at every calibration size
    calib_sizes: tuple[tuple[int, int], ...] = CALIB_SIZES
    op_types: tuple[str, ...] = QUANT_OPS
    # Node groups left in float (see _node_groups): all but dark4, dark5 and the neck.
    keep_float: tuple[str, ...] = ("stem", "dark2", "dark3", "head", "tail")
    per_channel: bool = True
    activation: str = "u8"  # u8 | s8
    weight: str = "s8"  # s8 | u8
    reduce_range: bool = False
    qoperator: bool = False
    input_exact: bool = True  # pin the input's scale to 1 (pixels are integers 0..255)
    extra: tuple[tuple[str, object], ...] = ()

    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:10]


DEFAULT = Recipe()


def sample_frames(clips: tuple[str, ...], per_clip: int, offset: int = 0) -> list[np.ndarray]:
    """``per_clip`` BGR frames spread evenly over each clip (``offset`` shifts the picks)."""
    out = []
    for name in clips:
        with av.open(str(CLIPS / name)) as c:
            frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        step = max(1, len(frames) // per_clip)
        out += frames[(offset % step) :: step][:per_clip]
    return out


def letterbox(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``img`` resized into (width, height) keeping its aspect, pasted top-left; NCHW float32."""
    r = min(width / img.shape[1], height / img.shape[0])
    w, h = max(1, round(img.shape[1] * r)), max(1, round(img.shape[0] * r))
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    canvas[:h, :w] = cv2.resize(img, (w, h))
    return canvas.transpose(2, 0, 1)[None].astype(np.float32)


def free_fp32(fp32: Path) -> Path:
    """``fp32`` with a free input size, as a file (cached)."""
    out = CACHE / f"{fp32.stem}_freehw.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f"{out.stem}.{os.getpid()}.part.onnx")
        onnx.save(free_hw(onnx.load(str(fp32))), str(part))
        part.replace(out)
    return out


def _prepare(fp32: Path) -> Path:
    """Opset 13, free H/W, shapes inferred and folded (``quant_pre_process``): the quantizer's input."""
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = CACHE / f"{fp32.stem}_op13_freehw_pre.onnx"
    if pre.is_file():
        return pre
    pre.parent.mkdir(parents=True, exist_ok=True)
    op13 = CACHE / f"{fp32.stem}_op13_freehw.onnx"
    op13 = op13.with_name(f"{op13.stem}.{os.getpid()}.onnx")
    onnx.save(version_converter.convert_version(free_hw(onnx.load(str(fp32))), 13), str(op13))
    part = pre.with_name(f"{pre.stem}.{os.getpid()}.part.onnx")
    quant_pre_process(str(op13), str(part), skip_symbolic_shape=True)
    part.replace(pre)
    op13.unlink()
    return pre


def _node_groups(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Named groups of nodes that a recipe may keep in float."""
    nodes = list(model.graph.node)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    preds = [n for n in nodes if n.op_type == "Conv" and any("_preds" in i for i in n.input)]
    # Everything downstream of the head's last convolutions: raw box offsets, objectness and class
    # logits concatenated into one tensor (a range no 8-bit scale fits), then reshaped.
    tail, stack, seen = [], [o for n in preds for o in n.output], set()
    while stack:
        for c in consumers.get(stack.pop(), []):
            if c.name not in seen:
                seen.add(c.name)
                tail.append(c.name)
                stack += list(c.output)
    convs = [n for n in nodes if n.op_type == "Conv"]
    first_conv = convs[0]
    stem = [n.name for n in nodes[: nodes.index(first_conv) + 1]]
    # The first SiLU's Sigmoid and Mul.
    stem += [c.name for c in consumers[first_conv.output[0]]]
    # Node index ranges of the prepared YOLOX-Nano graph, end exclusive (checked by their first node).
    stages = {
        "dark2": (5, 31), "dark3": (31, 77), "dark4": (77, 123), "dark5": (123, 158),
        "neck": (158, 258), "head": (258, 358), "head13": (258, 292), "head26": (292, 326),
        "head52": (326, 358),
    }  # fmt: skip
    starts = {5: "Conv_44", 31: "Conv_70", 77: "Conv_116", 123: "Conv_162", 158: "Conv_197",
              258: "Conv_365", 292: "Conv_332", 326: "Conv_299"}  # fmt: skip
    if any(len(nodes) <= i or nodes[i].name != name for i, name in starts.items()):
        raise ValueError("the int8 recipe's node groups are written for YOLOX-Nano (yolox_nano_416)")
    groups = {k: [n.name for n in nodes[a:b]] for k, (a, b) in stages.items()}
    return groups | {
        "preds": [n.name for n in preds],
        "tail": [n.name for n in preds] + tail,
        "stem": stem,
        "cls_preds": [n.name for n in preds if any("cls_preds" in i for i in n.input)],
        # Depthwise convolutions and their SiLU: onnxruntime's uint8 depthwise kernel is slower than
        # its float one.
        "dw": [m.name for n in nodes if _depthwise(n) for m in [n] + consumers[n.output[0]]],
    }


def _depthwise(n: onnx.NodeProto) -> bool:
    return n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)


def _group(model: onnx.ModelProto, groups: dict[str, list[str]], g: str) -> list[str]:
    if g.startswith("idx:"):  # "idx:A-B": nodes A..B-1 of the prepared graph (for sensitivity runs)
        a, b = map(int, g[4:].split("-"))
        return [n.name for n in model.graph.node[a:b]]
    if g.startswith("node:"):
        return g[5:].split(",")
    return groups[g]


class _Frames:
    """Calibration reader: one letterboxed frame per call; ``set_range`` lets ORT collect in chunks."""

    def __init__(self, name: str, inputs: list[np.ndarray]) -> None:
        self.name, self.inputs = name, inputs
        self.start, self.end = 0, len(inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, end_index

    def get_next(self) -> dict | None:
        if self.start >= self.end:
            return None
        self.start += 1
        return {self.name: self.inputs[self.start - 1]}


def _calib_inputs(r: Recipe) -> tuple[list[np.ndarray], int]:
    """The calibration inputs, grouped by size, and a chunk length that never spans two sizes."""
    frames = sample_frames(CALIB_CLIPS, r.calib_per_clip)
    # onnxruntime's histogram calibrators stack each chunk's tensors, so a chunk must be one size;
    # chunks also bound the memory (every intermediate tensor of a chunk is held at once).
    return [letterbox(f, w, h) for w, h in r.calib_sizes for f in frames], math.gcd(len(frames), 8)


# Calibration ranges this module computed on the shared clips for the manifest's weights, kept in
# the repository (60 KB of per-tensor histograms and ranges, no weights): calibrating takes ~100 s of
# one core, which a machine's first `scripts/bench --quick` cannot afford, and it gives the same
# ranges on every machine (the model built from a table is byte-identical to one built from a fresh
# calibration). Named by the fp32 weights' sha256 and the calibration settings, so other weights or
# settings never use it: they calibrate, as `scripts/build-int8 --recalibrate` does on demand.
CALIBRATION_DIR = REPO_ROOT / "models" / "calibration"


def calibration_key(recipe: Recipe = DEFAULT) -> str:
    """What the ranges depend on besides the weights (recipes that differ only in what they
    quantize share them)."""
    return hashlib.sha256(
        json.dumps(
            [
                recipe.calibrate,
                recipe.percentile,
                recipe.calib_per_clip,
                recipe.calib_sizes,
                sorted(QUANT_OPS + recipe.op_types),
            ]
        ).encode()  # fmt: skip
    ).hexdigest()[:10]


def calibration_table(fp32: Path, recipe: Recipe = DEFAULT) -> Path:
    """The kept table for ``fp32`` and ``recipe`` (it may not exist)."""
    return CALIBRATION_DIR / f"{fp32.stem}_{sha256_file(fp32)[:12]}_calib_{calibration_key(recipe)}.json"


def cached_path(fp32: Path, recipe: Recipe = DEFAULT) -> Path:
    """Where ``build_int8`` keeps the int8 model of ``fp32`` made by ``recipe``."""
    return CACHE / f"{fp32.stem}_int8_{recipe.key()}.onnx"


def build_int8(
    fp32: Path,
    out: Path | Detector | None = None,
    det: Detector | Path | None = None,
    calib_per_clip: int | None = None,
    recipe: Recipe = DEFAULT,
    recalibrate: bool = False,
) -> Path:
    """Quantize ``fp32`` by ``recipe``; returns the cached file (CACHE, named by recipe) or ``out``.

    The older call ``build_int8(fp32, det[, out])`` still works: a detector is not needed any more
    (the input size is free), so one passed in either place is ignored.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if isinstance(out, Detector):
        out, det = det, out
    if isinstance(out, Detector):
        out = None
    del det
    if calib_per_clip is not None:
        recipe = dataclasses.replace(recipe, calib_per_clip=calib_per_clip)
    cached = cached_path(fp32, recipe)
    if recalibrate:
        cached.unlink(missing_ok=True)
    if not cached.is_file():
        pre = _prepare(fp32)
        model = onnx.load(str(pre))
        groups = _node_groups(model)
        exclude = sorted({n for g in recipe.keep_float for n in _group(model, groups, g)})
        name = model.graph.input[0].name
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
            "distribution": CalibrationMethod.Distribution,
        }[recipe.calibrate]
        qt = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
        # Ranges depend only on the weights and the calibration settings: cached apart, so recipes
        # differing only in what they quantize reuse them; the kept table saves calibrating.
        table = calibration_table(fp32, recipe)
        calib_cache = CACHE / table.name
        if recalibrate:
            calib_cache.unlink(missing_ok=True)
        elif not calib_cache.is_file() and table.is_file():
            calib_cache.write_bytes(table.read_bytes())
        inputs, chunk = ([], 1) if calib_cache.is_file() else _calib_inputs(recipe)
        # "CalibStridedMinMax" is read by every calibration method: collect in chunks of `chunk`.
        extra: dict = {"CalibPercentile": recipe.percentile, "CalibStridedMinMax": chunk}
        if recipe.input_exact:
            extra["TensorQuantOverrides"] = {
                name: [{"scale": np.array(1.0, np.float32), "zero_point": np.array(0, np.uint8)}]
            }
        extra.update(dict(recipe.extra))
        part = cached.with_name(f"{cached.stem}.{os.getpid()}.part.onnx")
        quantize_static(
            str(pre), str(part), _Frames(name, inputs) if inputs else None,
            quant_format=QuantFormat.QOperator if recipe.qoperator else QuantFormat.QDQ,
            per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
            activation_type=qt[recipe.activation], weight_type=qt[recipe.weight],
            op_types_to_quantize=list(recipe.op_types), nodes_to_exclude=exclude,
            calibrate_method=method, extra_options=extra, calibration_cache_path=str(calib_cache),
        )  # fmt: skip
        part.replace(cached)
        if recalibrate and calib_cache.is_file():  # kept for every later first run (see CALIBRATION_DIR)
            table.parent.mkdir(parents=True, exist_ok=True)
            table.write_bytes(calib_cache.read_bytes())
    if out is None:
        return cached
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cached.read_bytes())
    return out


def detector(path: Path, size: tuple[int, int] = (416, 416), threads: int = 1) -> YoloxDetector:
    """A YOLOX detector on ``path`` at input ``size`` (width, height); the model must allow it."""
    spec = ModelSpec("yolox_nano", path.name, "", size, "yolox", "coco80", "", "")
    labels = tuple(str(i) for i in range(80))
    return YoloxDetector(ResolvedModel(spec, path, labels), threads=threads)


def eval_images(per_clip: int = 20) -> list[np.ndarray]:
    """The photos and ``per_clip`` frames of each evaluation clip (100 frames at 20)."""
    photos = sorted(glob.glob(str(PHOTOS / "*.jpg")))
    return [cv2.imread(p) for p in photos] + sample_frames(EVAL_CLIPS, per_clip, offset=3)


def match_at(fp32: Path, int8: Path, imgs: Sequence[np.ndarray], size: tuple[int, int]) -> tuple[float, int]:
    """``match_fraction`` of the int8 model against fp32 (free-size copy) at input ``size``."""
    ref, test = detector(free_fp32(fp32), size), detector(int8, size)
    return match_fraction([ref.detect_bgr(i) for i in imgs], [test.detect_bgr(i) for i in imgs])


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def speedup(fp32: Path, int8: Path, size: tuple[int, int], batch: int, seconds: float = 3.0,
            imgs: Sequence[np.ndarray] = ()) -> tuple[float, float, float]:  # fmt: skip
    """(int8 / fp32 inferences per s, fp32 ips, int8 ips) on one thread, at ``size`` and ``batch``.

    The two sessions alternate in short rounds and each keeps its best round, and time is the
    thread's CPU time: with one intra-op thread onnxruntime runs in the caller's thread, so
    other processes on the machine (a 2-core box shared with other work) do not skew the ratio.
    """
    w, h = size
    if len(imgs):
        x = np.concatenate([letterbox(imgs[i % len(imgs)], w, h) for i in range(batch)])
    else:
        x = np.random.default_rng(0).integers(0, 256, (batch, 3, h, w)).astype(np.float32)
    sessions = [_session(free_fp32(fp32)), _session(int8)]
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for s, f in zip(sessions, feeds, strict=True):
        s.run(None, f)
    best = [0.0, 0.0]
    rounds = 6
    for _ in range(rounds):
        for k, (s, f) in enumerate(zip(sessions, feeds, strict=True)):
            n, t0 = 0, time.thread_time()
            while (t := time.thread_time() - t0) < seconds / rounds / 2 or n < 2 * batch:
                s.run(None, f)
                n += batch
            best[k] = max(best[k], n / t)
    return best[1] / best[0], best[0], best[1]


def write_record(out: Path, fp32: Path, match: float, speedup_here: float, **extra: object) -> Path:
    """The build record beside ``out`` (``<out>.json``) that the agent reads (edge/precision.py):
    ``detector.precision: auto`` takes the build only where ``match`` >= 95% and it times faster."""
    record = {"match": round(match, 4), "recipe": DEFAULT.key(), "speedup_here": round(speedup_here, 3),
              "fp32_sha256": sha256_file(fp32), "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
              **extra}  # fmt: skip
    path = out.with_suffix(".json")
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path
