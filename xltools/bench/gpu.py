"""scripts/bench-gpu: YOLOX-Nano on an NVIDIA GPU, for sizing a station or centre that has one.

The 2-core edge box is what ``scripts/bench`` measures; this answers the next question a buyer asks:
how many cameras' detection would one GPU carry? onnxruntime's CUDA build is a 300 MB wheel that the
GPU machines here cannot fetch, so the ONNX model is converted to PyTorch (onnx2torch) instead, and
the port is checked against onnxruntime on the CPU first: same detections (class, IoU >= 0.5) on
real photos and clip frames, through the edge's own staging and YOLOX decoding (``edge.detect``).

Then images/s at the pipeline's input sizes (416x256 for a 16:9 stream, 416x416 square), per batch
size, fp32 and fp16: the model alone on device-resident tensors (the inference-only ceiling), and
end to end as an agent would pay it (a uint8 HWC batch from pinned host memory, normalised on the
GPU, the candidate rows - objectness over the score threshold - back to the host). On a GPU both
are also timed as CUDA graphs: the converted graph is a few hundred small kernels, and launching
them one by one from Python costs more than running them at small batches; a captured graph is
replayed with one launch. Needs torch with CUDA, onnx2torch, onnxruntime, opencv.
Prints a table and one ``RESULT key=value ...`` line.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

try:  # a GPU box's Python need not have the agent's packages: say which one is missing
    import cv2
    import numpy as np

    from edge.detect import Detector, build_detector
    from edge.leangraph import FOCUS_PERM, focus_blocks
    from edge.models import resolve_model
    from edge.onnxshape import load_lean
    from edge.types import Detections
    from xltools.bench.agreement import match_fraction

    _MISSING = ""
except ImportError as exc:
    _MISSING = str(exc)

SIZES = {"416x256": (256, 416), "416x416": (416, 416)}  # name -> (height, width)
BATCHES = (1, 8, 32, 128)
MIN_MATCH = 0.95  # below this the port is not the same detector, and its speed means nothing
DEVICE = "cuda"  # --device cpu checks the port (and the script) on a machine without a GPU


def _precisions() -> list[tuple[str, bool]]:
    """(name, half) pairs to run: fp16 only on a GPU (a CPU runs it emulated, slowly)."""
    return [("fp32", False), ("fp16", True)] if DEVICE == "cuda" else [("fp32", False)]


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def sample_images(photos: Path, clips: list[Path], per_clip: int) -> list[np.ndarray]:
    """The photos, and ``per_clip`` frames spread over each clip (OpenCV: no PyAV needed here)."""
    imgs = [cv2.imread(p) for p in sorted(glob.glob(str(photos / "*.jpg")))]
    for clip in clips:
        cap = cv2.VideoCapture(str(clip))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or per_clip
        for k in range(per_clip):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k * total // per_clip)
            ok, frame = cap.read()
            if ok:
                imgs.append(frame)
        cap.release()
    return [i for i in imgs if i is not None]


def torch_model(det: Detector, half: bool):
    import onnx
    import torch
    from onnx2torch import convert

    # The detector's own graph (edge/leangraph.py), so that its staging and decoding fit it.
    lean = load_lean(det.model.path)
    graph = onnx.load(lean) if isinstance(lean, str) else onnx.load_from_string(lean)
    model = convert(graph).eval().to(DEVICE)
    model = model.half() if half else model
    # The graph's tiny constants (reshape shapes, resize scales) stay on the host: onnx2torch reads
    # them in Python (``if torch.any(shape == 0)``, ``scales.tolist()``), which on a GPU tensor is a
    # device sync per node - it serialises every call, and CUDA graph capture forbids it.
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.numel() <= 8:
                module._buffers[name] = buf.cpu()
    return model, torch.float16 if half else torch.float32


def detect_all(det: Detector, imgs: list[np.ndarray], run) -> list[Detections]:
    """Each image through the edge's staging (letterbox, NCHW float) and YOLOX decoding, with ``run``
    mapping the staged input to the raw output."""
    out = []
    for img in imgs:
        geo = det.geometry(img.shape[1], img.shape[0])
        resized = cv2.resize(img, (geo.resized_w, geo.resized_h), interpolation=cv2.INTER_LINEAR)
        hw = det.input_hw(geo.resized_w, geo.resized_h)
        inputs, geos = det.stage([resized], hw)
        out.append(det._decode(run(inputs)[0], geos[0], hw))
    return out


def port_agreement(det: Detector, imgs: list[np.ndarray]) -> dict[str, tuple[float, int]]:
    import torch

    ref = detect_all(det, imgs, lambda x: det.session.run(None, {det.input_name: x})[0])
    got = {}
    for name, half in _precisions():
        model, dtype = torch_model(det, half)
        with torch.inference_mode():

            def run(x, model=model, dtype=dtype):
                return model(torch.from_numpy(x).to(DEVICE, dtype)).float().cpu().numpy()

            got[name] = match_fraction(ref, detect_all(det, imgs, run))
        del model
    return got


def _timed(step, seconds: float) -> float:
    """Calls of ``step`` per second after warm-up, synchronised with the GPU."""
    for _ in range(3):
        step()
    _sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if n % 8 == 0:
            _sync()
    _sync()
    return n / (time.perf_counter() - t0)


def _graph(forward):
    """``forward()`` captured as a CUDA graph: returns (replay, its outputs), or (None, why) where
    the model cannot be captured (a host sync inside it). Warm-up runs on a side stream first, as
    capture requires, which also lets cuDNN pick its kernels before they are frozen in."""
    import torch

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = forward()
        return graph.replay, outputs
    except RuntimeError as exc:
        return None, str(exc).splitlines()[0]


def _model_input(det: Detector, u8):  # u8: a torch tensor (torch is imported late)
    """(b, h, w, 3) uint8 on the device -> the detector graph's input layout (edge/leangraph.py)."""
    b, h, w, _ = u8.shape
    if det.focus_input:
        return u8.reshape(focus_blocks(b, h, w)).permute(*FOCUS_PERM).reshape(b, 12, h // 2, w // 2)
    return u8.permute(0, 3, 1, 2)


def throughput(det: Detector, seconds: float) -> list[dict]:
    import torch

    torch.backends.cudnn.benchmark = True  # fixed shapes per row: let cuDNN pick its kernels
    rows = []
    for prec, half in _precisions():
        model, dtype = torch_model(det, half)
        for size, (h, w) in SIZES.items():
            for b in BATCHES:
                x = _model_input(det, torch.randint(0, 255, (b, h, w, 3), device=DEVICE, dtype=torch.uint8))
                x = x.to(dtype).contiguous()
                host = torch.randint(0, 255, (b, h, w, 3), dtype=torch.uint8)
                host = host.pin_memory() if DEVICE == "cuda" else host
                dev_u8 = torch.empty(b, h, w, 3, device=DEVICE, dtype=torch.uint8)
                row = {"precision": prec, "size": size, "batch": b}
                with torch.inference_mode():
                    row["model_ips"] = _timed(lambda x=x, m=model: m(x), seconds) * b

                    def forward(host=host, dev_u8=dev_u8, m=model, dtype=dtype, thr=det.score_threshold):
                        dev_u8.copy_(host, non_blocking=True)
                        out = m(_model_input(det, dev_u8).to(dtype))
                        out = out.transpose(1, 2) if det.rows_channels_first else out  # (b, A, 85)
                        # Only candidate rows come back, as the edge's decoder keeps them (score =
                        # objectness x class <= objectness): all raw rows are 0.7 MB per image.
                        return out, out[..., 4] >= thr

                    def fetch(out, keep):
                        return out[keep].float().cpu(), keep.nonzero().cpu()

                    row["e2e_ips"] = _timed(lambda f=forward: fetch(*f()), seconds) * b
                    if DEVICE == "cuda":
                        replay, _ = _graph(lambda x=x, m=model: m(x))
                        row["model_graph_ips"] = _timed(replay, seconds) * b if replay else None
                        replay, outs = _graph(forward)
                        if replay is not None:  # the replay must compute what the eager call does
                            replay()
                            eager = forward()[0].float()
                            if not torch.allclose(
                                outs[0].float(), eager, rtol=1e-2, atol=1e-2 * eager.abs().max()
                            ):
                                replay, outs = None, "replayed output differs from the eager call's"
                        if replay is None:
                            row["e2e_graph_ips"], row["graph_error"] = None, outs
                        else:

                            def replayed(replay=replay, outs=outs):
                                replay()
                                return fetch(*outs)

                            row["e2e_graph_ips"] = _timed(replayed, seconds) * b
                rows.append(row)
                graphed = (
                    f", graphed {row['model_graph_ips'] or 0:8.0f} / {row['e2e_graph_ips'] or 0:8.0f}"
                    if "e2e_graph_ips" in row else ""
                )  # fmt: skip
                print(f"  {prec} {size} batch {b:3d}: {row['model_ips']:8.0f} images/s model only, "
                      f"{row['e2e_ips']:8.0f} end to end{graphed}"
                      + (f" (no graph: {row['graph_error']})" if "graph_error" in row else ""),
                      file=sys.stderr, flush=True)  # fmt: skip
        del model
    return rows


def _best_ips(row: dict) -> float:
    """End to end images/s of a row, graphed where that is faster (an agent would replay graphs)."""
    return max(row["e2e_ips"], row.get("e2e_graph_ips") or 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench-gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder of .jpg photos (../shared/photos)")
    ap.add_argument("--clip", type=Path, action="append", default=[], help="clip to sample frames from")
    ap.add_argument("--per-clip", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=1.5, help="timed per row")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: check the port and the script without a GPU (fp32, short)")  # fmt: skip
    a = ap.parse_args(argv)
    global DEVICE
    DEVICE = a.device
    try:
        if _MISSING:
            raise ImportError(_MISSING)
        import onnx2torch  # noqa: F401
        import torch
    except ImportError as exc:
        print(
            f"scripts/bench-gpu needs PyTorch, onnx2torch, onnxruntime, OpenCV and PyYAML ({exc})",
            file=sys.stderr,
        )
        return 2
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("scripts/bench-gpu: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"
    print(f"gpu: {gpu}, torch {torch.__version__}", file=sys.stderr)
    det = build_detector(resolve_model("yolox_nano_416"))
    imgs = sample_images(a.photos, a.clip, a.per_clip)
    agree = port_agreement(det, imgs)
    for name, (frac, n) in agree.items():
        print(
            f"  {name} port against onnxruntime (CPU): {frac:.1%} of {n} detections matched", file=sys.stderr
        )
    if min(frac for frac, _ in agree.values()) < MIN_MATCH:
        print("scripts/bench-gpu: the port does not match onnxruntime; not timing it", file=sys.stderr)
        return 1
    rows = throughput(det, a.seconds)
    best = {
        (p, s): max((r for r in rows if r["precision"] == p and r["size"] == s), key=_best_ips)
        for p in {r["precision"] for r in rows} for s in SIZES
    }  # fmt: skip
    print("\nbest end to end per precision and size (busy cameras = images/s / 5):")
    for (p, s), r in best.items():
        print(f"  {p} {s}: {_best_ips(r):.0f} images/s at batch {r['batch']} = {_best_ips(r) / 5:.0f} busy cameras "
              f"(model alone {max(r['model_ips'], r.get('model_graph_ips') or 0.0):.0f}/s)")  # fmt: skip
    if DEVICE != "cuda":
        return 0
    f16 = best[("fp16", "416x256")]
    b1 = next(r for r in rows if (r["precision"], r["size"], r["batch"]) == ("fp16", "416x256", 1))
    print(
        "RESULT gpu="
        + gpu.replace(" ", "_")
        + f" fp32_match={agree['fp32'][0]:.3f} fp16_match={agree['fp16'][0]:.3f}"
        + f" fp16_416x256_ips={_best_ips(f16):.0f} fp16_416x256_batch={f16['batch']}"
        + f" fp32_416x256_ips={_best_ips(best[('fp32', '416x256')]):.0f}"
        + f" fp16_416x256_batch1_ips={b1['e2e_ips']:.0f} fp16_416x256_batch1_graph_ips={b1.get('e2e_graph_ips') or 0:.0f}"
        + f" busy_cameras_per_gpu={_best_ips(f16) / 5:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
