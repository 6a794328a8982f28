"""Hardware video decoding (NVDEC through CUDA, VA-API, Quick Sync) through PyAV's ``hwaccel``.

Decoding is what bounds cameras per box on the main stream: 85% of the software decode ceiling is,
by the ceiling's own measure, 85% of the cores spent decoding (docs/performance.md). A GPU or an
iGPU decodes on its own engine. Decoded frames stay in the device's memory (``is_hw_owned``); only the
frames due for analysis (5 a second, of a main stream's 25) are copied to system memory (NV12,
``to_host``), where the motion gate and the detector's downscale read them as they read a
software-decoded frame. PyAV makes that copy with the GIL held: copying every frame, as PyAV does
by default, serialised the agent's threads past ~10 main cameras on two cores (docs/performance.md,
"Hardware decoding").

``stream.hwaccel`` picks the device; its default, ``auto``, takes NVDEC or VA-API where the box
shows one and software elsewhere. Where the device cannot be opened (no driver, no permission, a
codec the engine lacks) the camera decodes in software instead of going dark: the fallback is
counted and logged once per source, and ``/metrics`` says which cameras decode on a device.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Literal, get_args

import av
from av.codec.hwaccel import HWAccel
from av.video.reformatter import VideoReformatter

# The device types PyAV's FFmpeg builds offer on Linux edge boxes (``hwdevices_available()`` lists
# what the installed build has; a type it lacks falls back to software like a missing device).
HwDeviceType = Literal["cuda", "vaapi", "qsv", "vulkan"]
# stream.hwaccel: one Literal (not a union of two), so that a wrong value's error lists every choice.
HwChoice = Literal[("auto", "none", *get_args(HwDeviceType))]  # type: ignore[valid-type]
# What ``auto`` looks for: the device nodes a driver creates. Nothing is opened to find out, so a
# box without them decodes in software exactly as with ``none``.
NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0")
RENDER_NODES = "/dev/dri/renderD*"


@dataclass(frozen=True)
class HwDecode:
    """Where a camera's frames are decoded: ``device_type`` and ``device`` (CUDA: the GPU index,
    "0"; VA-API: the render node, "/dev/dri/renderD128"; None: the default). ``explicit``: the
    config named it (a fallback to software is then a warning; after ``auto``, news)."""

    device_type: HwDeviceType
    device: str | None = None
    explicit: bool = True

    def accel(self) -> HWAccel:
        # CUDA: every decoder shares the GPU's primary context. FFmpeg's default, a context per
        # decoder, halved 8 decoders' throughput and doubled their CPU per frame (H200, 1080p).
        options = {"primary_ctx": "1"} if self.device_type == "cuda" else None
        # Frames stay on the device: the source copies only the due ones to memory (to_host).
        return HWAccel(
            self.device_type, device=self.device, allow_software_fallback=True, options=options, is_hw_owned=True
        )


def to_host(frame: av.VideoFrame, scaler: VideoReformatter) -> av.VideoFrame:
    """``frame`` in system memory: a frame in a device's memory is copied out in its own pixel
    format (swscale has nothing to do, so the copy is all it costs); a software frame as it is."""
    sw = frame.sw_format
    return frame if sw is None else scaler.reformat(frame, format=sw.name)


def resolve(choice: HwChoice, device: str | None = None) -> HwDecode | None:
    """``stream.hwaccel`` to a device, or None for software. ``auto``: NVDEC where an NVIDIA driver
    shows a GPU, else VA-API where a render node exists (AMD and Intel), else software."""
    if choice == "none":
        return None
    if choice != "auto":
        return HwDecode(choice, device)
    if any(os.path.exists(p) for p in NVIDIA_NODES):
        return HwDecode("cuda", device, explicit=False)
    nodes = sorted(glob.glob(RENDER_NODES))
    if nodes:
        return HwDecode("vaapi", device or nodes[0], explicit=False)
    return None


def create_decoder(codec: av.Codec, hw: HwDecode | None) -> tuple[av.CodecContext, str]:
    """A decoder of ``codec``: on ``hw``'s device where it opens, else in software.

    Returns the decoder and, where hardware was asked for and not had, why (empty otherwise).
    """
    if hw is None:
        return av.CodecContext.create(codec, "r"), ""
    where = hw.device_type + (f" {hw.device}" if hw.device else "")
    try:
        dec = av.CodecContext.create(codec, "r", hwaccel=hw.accel())
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        why = f"{where} cannot be opened ({exc}): decoding in software"
        return av.CodecContext.create(codec, "r"), why
    if not dec.is_hwaccel:  # PyAV fell back by itself: no such device, or no engine for the codec
        return dec, f"{where} does not decode {codec.name} here: decoding in software"
    return dec, ""
