"""Hardware video decoding (NVDEC through CUDA, VA-API, Quick Sync) through PyAV's ``hwaccel``.

Decoding is what bounds cameras per box on the main stream: 85% of the software decode ceiling is,
by the ceiling's own measure, 85% of the cores spent decoding (docs/performance.md). A GPU or an
iGPU decodes on its own engine; each frame is then copied to system memory (NV12), where the motion
gate and the detector's downscale read it as they read a software-decoded frame.

A camera asks for it with ``stream.hwaccel``. Where the device cannot be opened (no driver, no
permission, a codec the engine lacks) the camera decodes in software instead of going dark: the
fallback is counted and logged once per source, and ``/metrics`` says which cameras decode on a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
from av.codec.hwaccel import HWAccel

# The device types PyAV's FFmpeg builds offer on Linux edge boxes (``hwdevices_available()`` lists
# what the installed build has; a type it lacks falls back to software like a missing device).
HwDeviceType = Literal["cuda", "vaapi", "qsv", "vulkan"]


@dataclass(frozen=True)
class HwDecode:
    """Where a camera's frames are decoded: ``device_type`` and ``device``
    (CUDA: the GPU index, "0"; VA-API: the render node, "/dev/dri/renderD128"; None: the default)."""

    device_type: HwDeviceType
    device: str | None = None

    def accel(self) -> HWAccel:
        # CUDA: share the GPU's primary context. Without it FFmpeg creates a context per decoder,
        # and each holds its own few hundred MB of GPU memory: one per camera adds up.
        options = {"primary_ctx": "1"} if self.device_type == "cuda" else None
        return HWAccel(self.device_type, device=self.device, allow_software_fallback=True, options=options)


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
