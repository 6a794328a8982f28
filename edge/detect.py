"""onnxruntime detectors. Geometry and NMS are written once; adapters only decode their heads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from edge.leangraph import FOCUS_PERM, INPUT_LAYOUT, OUTPUT_LAYOUT, focus_blocks
from edge.models import ResolvedModel
from edge.onnxshape import STRIDE, load_lean
from edge.types import Detections

log = logging.getLogger(__name__)

PAD_VALUE = 114  # YOLOX's letterbox padding grey

_arena_lock = threading.Lock()
_arena_state: bool | None = None  # None: not tried yet


def shared_cpu_arena() -> bool:
    """One CPU memory arena for every session of the process that opts in (registered once).

    Each session otherwise grows its own arena to its own peak, and a fully convolutional model fed
    inputs of many sizes (crops) grows it far: two sessions on ten sizes held +113 MB with their own
    arenas and +63 MB with one shared arena, at the same speed. Grown only as requested (not to the
    next power of two). False where this onnxruntime cannot register one: sessions keep their own.
    """
    global _arena_state
    with _arena_lock:
        if _arena_state is None:
            try:
                cfg = ort.OrtArenaCfg({"arena_extend_strategy": 1})  # kSameAsRequested
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                ort.create_and_register_allocator(info, cfg)
                _arena_state = True
            except (AttributeError, RuntimeError, TypeError, ValueError) as exc:
                log.info("onnxruntime: no shared CPU arena (%s); each session keeps its own", exc)
                _arena_state = False
        return _arena_state


@dataclass(frozen=True)
class Geometry:
    """How a source frame maps onto the model input: resize to (resized_w, resized_h), paste top-left."""

    resized_w: int
    resized_h: int

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int, keep_aspect: bool) -> Geometry:
        if not keep_aspect:
            return cls(dst_w, dst_h)
        r = min(dst_w / src_w, dst_h / src_h)
        return cls(max(1, round(src_w * r)), max(1, round(src_h * r)))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    return np.asarray(keep, dtype=np.int64)


def _finish(
    boxes_px: np.ndarray, scores: np.ndarray, cls: np.ndarray, geo: Geometry, iou: float
) -> Detections:
    if len(scores) == 0:
        return Detections.empty()
    # Class-aware NMS in one pass: shift each class to its own region of the plane.
    offset = cls.astype(np.float32)[:, None] * 8192.0
    keep = nms(boxes_px + offset, scores, iou)
    b = boxes_px[keep] / np.array([geo.resized_w, geo.resized_h] * 2, np.float32)
    np.clip(b, 0.0, 1.0, out=b)
    return Detections(b.astype(np.float32), scores[keep].astype(np.float32), cls[keep].astype(np.int32))


def ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


class Detector:
    """Runs one ONNX model on batches of frames already resized to their geometry.

    A model with ``flexible_input`` (fully convolutional, see ``edge.onnxshape``) runs each image at
    its own size: the letterboxed image is pasted into the smallest canvas of multiples of 32 that
    holds it (416x256 for a 16:9 stream), so a stream pays for its pixels, not for padding.
    """

    keep_aspect = True
    max_batch = 8

    def __init__(
        self,
        model: ResolvedModel,
        score_threshold: float = 0.35,
        nms_iou: float = 0.45,
        threads: int = 1,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        self.model = model
        self.labels = model.labels
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.threads = threads
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        available = set(ort.get_available_providers())
        use = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        if use == ["CPUExecutionProvider"] and shared_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        self.flexible = model.spec.flexible_input
        source = load_lean(model.path) if self.flexible else str(model.path)
        self.session = ort.InferenceSession(source, sess_options=opts, providers=use)
        meta = self.session.get_modelmeta().custom_metadata_map
        # Layout work cut out of the graph (edge/leangraph.py): the staging writes the input in
        # Focus order, and the head's rows come channels-first.
        self.focus_input = meta.get(INPUT_LAYOUT) == "focus2x2"
        self.rows_channels_first = meta.get(OUTPUT_LAYOUT) == "channels_first"
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.width, self.height = model.spec.input_size  # the native size (fixed models: the only one)
        batch_dim = inp.shape[0]
        self.fixed_batch = isinstance(batch_dim, int)
        # The HWC staging canvases and the NCHW float input, shared by every input size: each call
        # takes views of their start. A buffer per size (crops come in dozens of sizes) held ~13 MB
        # per size and detector at 416x256 for the agent's life.
        self._canvas_flat = np.empty(0, np.uint8)
        self._input_flat = np.empty(0, np.float32)

    def geometry(self, src_w: int, src_h: int, size: int | None = None) -> Geometry:
        """Where a ``src_w`` x ``src_h`` frame goes; ``size``: the input's long side (flexible models
        only; None: the native size). A 640x360 frame at 416 runs as 416x256, not 416x416: the
        same pixels reach the model (measured: 97% of the square input's detections, the rest
        borderline) at 55% of the time. 320 is twice as fast again but kept only 72% of them."""
        if not self.flexible:
            return Geometry.fit(src_w, src_h, self.width, self.height, self.keep_aspect)
        side = size or max(self.width, self.height)
        return Geometry.fit(src_w, src_h, side, side, True)

    def input_hw(self, w: int, h: int) -> tuple[int, int]:
        """The model input (height, width) that a resized ``w`` x ``h`` image is pasted into."""
        if not self.flexible:
            return self.height, self.width
        return ceil_to(h, STRIDE), ceil_to(w, STRIDE)

    def class_ids(self, names: Sequence[str]) -> list[int]:
        unknown = [n for n in names if n not in self.labels]
        if unknown:
            raise ValueError(f"unknown class name(s) {unknown}; the model knows {list(self.labels)}")
        return [self.labels.index(n) for n in names]

    def infer(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect on BGR uint8 images, each already sized to ``geometry(...)`` of its source.

        Images of different input sizes (cameras of different resolutions) run as separate batches.
        """
        if len(images) == 1:
            img = images[0]
            return self._infer_chunk(images, self.input_hw(img.shape[1], img.shape[0]))
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(self.input_hw(img.shape[1], img.shape[0]), []).append(i)
        out: list[Detections] = [Detections.empty()] * len(images)
        for hw, idx in groups.items():
            for start in range(0, len(idx), self.max_batch):
                chunk = idx[start : start + self.max_batch]
                for i, dets in zip(chunk, self._infer_chunk([images[i] for i in chunk], hw), strict=True):
                    out[i] = dets
        return out

    def detect_bgr(self, image: np.ndarray, size: int | None = None) -> Detections:
        """Convenience for still images: resize with OpenCV, then infer."""
        geo = self.geometry(image.shape[1], image.shape[0], size)
        resized = cv2.resize(image, (geo.resized_w, geo.resized_h), interpolation=cv2.INTER_LINEAR)
        return self.infer([resized])[0]

    def _buffers_for(self, hw: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Views shaped (n, h, w, 3) and the model input (n, 3, h, w), or (n, 12, h/2, w/2) in Focus
        order, over the shared buffers, grown when a larger input comes. Their contents are stale:
        callers write every element they use."""
        h, w = hw
        need = n * h * w * 3
        if self._input_flat.size < need:
            # Room for a full batch of this size, so growing happens once per larger input.
            size = max(need, self.max_batch * h * w * 3)
            self._canvas_flat = np.empty(size, np.uint8)
            self._input_flat = np.empty(size, np.float32)
        shape = (n, 12, h // 2, w // 2) if self.focus_input else (n, 3, h, w)
        return self._canvas_flat[:need].reshape(n, h, w, 3), self._input_flat[:need].reshape(shape)

    def staging_bytes(self) -> int:
        """Memory held for staging inputs (it depends on the largest input, not on how many sizes)."""
        return self._canvas_flat.nbytes + self._input_flat.nbytes

    def stage(self, images: Sequence[np.ndarray], hw: tuple[int, int]) -> tuple[np.ndarray, list[Geometry]]:
        """The model input (n, 3, h, w) for ``images`` pasted top-left into ``hw`` and padded, and
        each image's geometry. The array is a view of the detector's buffers: valid until its next
        call."""
        n = len(images)
        canvases, inputs = self._buffers_for(hw, n)
        geos = []
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            canvas = canvases[i]
            canvas[:h, :w] = img
            canvas[h:] = PAD_VALUE  # only the margins: the rest was just overwritten
            canvas[:h, w:] = PAD_VALUE
            geos.append(Geometry(w, h))
        self._fill_input(canvases, inputs, n)
        return inputs, geos

    def _infer_chunk(self, images: Sequence[np.ndarray], hw: tuple[int, int]) -> list[Detections]:
        n = len(images)
        inputs, geos = self.stage(images, hw)
        if self.fixed_batch:
            raw = np.concatenate(
                [self.session.run(None, {self.input_name: inputs[i : i + 1]})[0] for i in range(n)]
            )
        else:
            raw = self.session.run(None, {self.input_name: inputs})[0]
        return [self._decode(raw[i], geos[i], hw) for i in range(n)]

    def _fill_input(self, canvases: np.ndarray, inputs: np.ndarray, n: int) -> None:
        if self.focus_input:
            # One strided copy, as dear as the plain transpose, in place of the graph's own pass.
            _, h, w, _ = canvases.shape
            blocks = canvases[:n].reshape(focus_blocks(n, h, w)).transpose(FOCUS_PERM)
            np.copyto(inputs[:n].reshape(blocks.shape), blocks, casting="unsafe")
        else:
            np.copyto(inputs[:n], canvases[:n].transpose(0, 3, 1, 2), casting="unsafe")

    def _decode(self, raw: np.ndarray, geo: Geometry, hw: tuple[int, int]) -> Detections:
        raise NotImplementedError


class YoloxDetector(Detector):
    """YOLOX head: [A, 5 + C] raw rows over strides 8/16/32; BGR 0..255 letterboxed input."""

    def __init__(self, model: ResolvedModel, **kw) -> None:
        super().__init__(model, **kw)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _grid_for(self, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Anchor-point centres and strides of the three heads for one input size, made once."""
        got = self._grids.get(hw)
        if got is None:
            grids, strides = [], []
            for s in (8, 16, 32):
                gh, gw = hw[0] // s, hw[1] // s
                gy, gx = np.mgrid[0:gh, 0:gw]
                grids.append(np.stack((gx, gy), axis=-1).reshape(-1, 2))
                strides.append(np.full((gh * gw, 1), s))
            got = (np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32))
            self._grids[hw] = got
        return got

    def _decode(self, raw: np.ndarray, geo: Geometry, hw: tuple[int, int]) -> Detections:
        obj = raw[4] if self.rows_channels_first else raw[:, 4]
        cand = np.flatnonzero(obj >= self.score_threshold)  # score = obj * cls <= obj
        if cand.size == 0:
            return Detections.empty()
        rows = raw[:, cand].T if self.rows_channels_first else raw[cand]
        cls_scores = rows[:, 5:]
        cls = cls_scores.argmax(axis=1)
        scores = rows[:, 4] * cls_scores[np.arange(len(cls)), cls]
        ok = scores >= self.score_threshold
        rows, cls, scores, cand = rows[ok], cls[ok], scores[ok], cand[ok]
        grid, strides = self._grid_for(hw)
        stride = strides[cand]
        centre = (rows[:, 0:2] + grid[cand]) * stride
        half = np.exp(rows[:, 2:4]) * stride / 2.0
        boxes = np.concatenate((centre - half, centre + half), axis=1)
        return _finish(boxes, scores, cls, geo, self.nms_iou)


class FastestDetDetector(Detector):
    """FastestDet head: [85, H, W] grid; plain resize (no letterbox), BGR / 255."""

    keep_aspect = False

    def _fill_input(self, canvases: np.ndarray, inputs: np.ndarray, n: int) -> None:
        np.multiply(canvases[:n].transpose(0, 3, 1, 2), 1.0 / 255.0, out=inputs[:n], casting="unsafe")

    def _decode(self, raw: np.ndarray, geo: Geometry, hw: tuple[int, int]) -> Detections:
        _, gh, gw = raw.shape
        flat = raw.reshape(raw.shape[0], -1).T  # (H*W, 85)
        obj = flat[:, 0]
        cls = flat[:, 5:].argmax(axis=1)
        cls_score = flat[np.arange(len(cls)), 5 + cls]
        scores = np.power(obj, 0.6) * np.power(np.maximum(cls_score, 0), 0.4)
        ok = np.flatnonzero(scores >= self.score_threshold)
        if ok.size == 0:
            return Detections.empty()
        gy, gx = np.divmod(ok, gw)
        f = flat[ok]
        cx = (np.tanh(f[:, 1]) + gx) / gw * geo.resized_w
        cy = (np.tanh(f[:, 2]) + gy) / gh * geo.resized_h
        w = 1.0 / (1.0 + np.exp(-f[:, 3])) * geo.resized_w
        h = 1.0 / (1.0 + np.exp(-f[:, 4])) * geo.resized_h
        boxes = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1).astype(np.float32)
        return _finish(boxes, scores[ok], cls[ok], geo, self.nms_iou)


ADAPTERS: dict[str, type[Detector]] = {"yolox": YoloxDetector, "fastestdet": FastestDetDetector}


def build_detector(model: ResolvedModel, **kw) -> Detector:
    fmt = model.spec.output_format
    if fmt not in ADAPTERS:
        raise ValueError(f"no adapter for output format {fmt!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[fmt](model, **kw)
