"""An int8 YOLOX-Nano made with onnxruntime's quantization tools, and its agreement with fp32.

The upstream model is opset 11; per-channel QDQ needs opset >= 13, so it is converted first.
Calibration uses letterboxed frames sampled from the shared clips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from edge.detect import Detector
from edge.track import iou_matrix
from edge.types import Detections
from xltools.bench.workloads import CACHE, CLIPS

CALIB_CLIPS = ("campus_pedestrians_vtest.avi", "parking_lot_cars.mp4", "indoor_one_by_one.mp4",
               "motorway_pedestrian.avi", "dashcam_highway.mp4", "night_street_crowd_1080p.mp4")  # fmt: skip
EVAL_CLIPS = ("parking_lot_person_bicycle_car.mp4", "road_traffic_60fps.avi", "handheld_street_cuts.mp4",
              "campus_pedestrians_vtest.avi", "store_aisle_loiter.gif")  # fmt: skip


def sample_frames(clips: tuple[str, ...], per_clip: int, offset: int = 0) -> list[np.ndarray]:
    """``per_clip`` BGR frames spread evenly over each clip (``offset`` shifts the picks)."""
    out = []
    for name in clips:
        with av.open(str(CLIPS / name)) as c:
            frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        step = max(1, len(frames) // per_clip)
        out += frames[(offset % step) :: step][:per_clip]
    return out


def _letterbox(det: Detector, img: np.ndarray) -> np.ndarray:
    g = det.geometry(img.shape[1], img.shape[0])
    canvas = np.full((det.height, det.width, 3), 114, np.uint8)
    canvas[: g.resized_h, : g.resized_w] = cv2.resize(img, (g.resized_w, g.resized_h))
    return canvas.transpose(2, 0, 1)[None].astype(np.float32)


def build_int8(fp32: Path, det: Detector, out: Path | None = None, calib_per_clip: int = 12) -> Path:
    """Quantize ``fp32`` (static, QDQ, per-channel int8 weights, uint8 activations); cached."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = out or CACHE / f"{fp32.stem}_int8_qdq_conv_pct.onnx"  # named by recipe: a change rebuilds
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    op13 = out.with_name(fp32.stem + "_op13.onnx")
    onnx.save(version_converter.convert_version(onnx.load(str(fp32)), 13), str(op13))
    pre = out.with_name(fp32.stem + "_op13_pre.onnx")
    quant_pre_process(str(op13), str(pre), skip_symbolic_shape=True)
    frames = sample_frames(CALIB_CLIPS, calib_per_clip)
    name = det.input_name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = (_letterbox(det, f) for f in frames)

        def get_next(self) -> dict | None:
            x = next(self._it, None)
            return None if x is None else {name: x}

    tmp = out.with_name(out.stem + ".part.onnx")
    # The head's last convolutions emit raw box offsets, objectness and class logits together: at
    # 8 bits they lose the detections, so they (and everything after them) stay in float.
    head = [n.name for n in onnx.load(str(pre)).graph.node if any("_preds" in i for i in n.input)]
    quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"], nodes_to_exclude=head,
                    # Min-max ranges are set by rare outliers and crush the rest: measured here,
                    # percentile calibration kept 69% of fp32 detections, min-max 27%, entropy 27%.
                    calibrate_method=CalibrationMethod.Percentile)  # fmt: skip
    tmp.replace(out)
    return out


def match_fraction(ref: list[Detections], test: list[Detections], iou: float = 0.5) -> tuple[float, int]:
    """Fraction of reference detections found in ``test`` with the same class and IoU >= ``iou``."""
    found = total = 0
    for r, t in zip(ref, test, strict=True):
        total += len(r)
        if len(r) == 0 or len(t) == 0:
            continue
        m = iou_matrix(r.xyxy_norm, t.xyxy_norm)
        m = np.where(r.class_id[:, None] == t.class_id[None, :], m, 0.0)
        found += int((m.max(axis=1) >= iou).sum())
    return (found / total if total else 1.0), total
