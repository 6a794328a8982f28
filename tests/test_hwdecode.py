"""A camera that asks for a hardware decoder it cannot have decodes in software: the same frames,
counted and logged once, never dark. (The device path itself runs where there is one:
scripts/bench-decode, docs/performance.md.)"""

from __future__ import annotations

import logging
import os

import av
import numpy as np
import pytest
from av.codec.hwaccel import hwdevices_available
from av.video.reformatter import VideoReformatter

from edge import hwdecode, sources
from edge.check import probe_camera
from edge.config import CameraConfig, load_station_config
from edge.errors import ConfigError, SourceError
from edge.hwdecode import HwDecode
from edge.sources import VideoSource, own_decoder
from tests.conftest import CLIPS
from tests.test_config_errors import GOOD, write

CLIP = str(CLIPS / "dashcam_short_720p.mp4")  # 1.5 s of H.264


def first_frames(hw: HwDecode | None, n: int, on_packet=None) -> tuple[VideoSource, list[np.ndarray]]:
    src = VideoSource(CLIP, detect_fps=5, realtime=False, loop=True, hw=hw, on_packet=on_packet)
    out = []
    for df in src.frames():
        out.append(df.frame.to_ndarray(format="gray"))
        if len(out) >= n:
            break
    return src, out


# Devices no box has: CUDA's hundredth GPU (the device cannot be created) and a render node that
# does not exist (PyAV falls back by itself).
@pytest.mark.parametrize("hw", [HwDecode("cuda", "99"), HwDecode("vaapi", "/dev/dri/renderD-missing")])
@pytest.mark.parametrize("clip_ring", [False, True])
def test_unavailable_device_decodes_the_same_frames_in_software(hw, clip_ring, caplog) -> None:
    _, software = first_frames(None, 20)
    caplog.set_level(logging.WARNING, logger="edge.sources")
    sink = (lambda p, t: None) if clip_ring else None
    src, fallback = first_frames(hw, 20, sink)  # 20 frames at 5 fps of a 1.5 s clip: several passes
    assert src.stats.loops >= 2
    assert len(fallback) == 20 and all(np.array_equal(a, b) for a, b in zip(software, fallback, strict=True))
    assert not src.stats.hw_decoding
    assert src.stats.hw_fallbacks == src.stats.loops + 1  # each connection asked, and was told no
    assert hw.device_type in src.stats.hw_error and "software" in src.stats.hw_error
    warned = [r for r in caplog.records if "decoding in software" in r.getMessage()]
    assert len(warned) == 1 and CLIP in warned[0].getMessage()  # once, not once per pass


def test_software_source_reports_no_hardware() -> None:
    src, frames = first_frames(None, 3)
    assert len(frames) == 3 and not src.stats.hw_decoding and src.stats.hw_fallbacks == 0


def test_config_takes_a_device_and_refuses_an_unknown_one(tmp_path) -> None:
    cfg = load_station_config(write(tmp_path, GOOD))
    assert (cfg.cameras[0].stream.hwaccel, cfg.cameras[0].stream.hwaccel_device) == ("auto", None)
    stream = "    source: clip.mp4\n    stream: {hwaccel: cuda, hwaccel_device: '0'}"
    cfg = load_station_config(write(tmp_path, GOOD.replace("    source: clip.mp4", stream)))
    assert (cfg.cameras[0].stream.hwaccel, cfg.cameras[0].stream.hwaccel_device) == ("cuda", "0")
    path = write(tmp_path, GOOD.replace("    source: clip.mp4", "    source: clip.mp4\n    stream: {hwaccel: nvdec}"))
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    assert str(path) in str(err.value) and "cameras.0.stream.hwaccel" in str(err.value)


def test_auto_takes_the_device_the_box_shows_and_software_without_one(tmp_path, monkeypatch) -> None:
    # Device nodes cannot be made here: the probe is pointed at files standing in for them.
    nvidia, render = tmp_path / "nvidiactl", tmp_path / "renderD128"
    monkeypatch.setattr(hwdecode, "NVIDIA_NODES", (str(nvidia),))
    monkeypatch.setattr(hwdecode, "RENDER_NODES", str(tmp_path / "renderD*"))
    assert hwdecode.resolve("auto") is None and hwdecode.resolve("none") is None
    render.touch()
    assert hwdecode.resolve("auto") == HwDecode("vaapi", str(render), explicit=False)
    nvidia.touch()
    assert hwdecode.resolve("auto") == HwDecode("cuda", None, explicit=False)
    assert hwdecode.resolve("none") is None
    assert hwdecode.resolve("vaapi", "/dev/dri/renderD129") == HwDecode("vaapi", "/dev/dri/renderD129")


def test_auto_falls_back_quietly_where_an_explicit_choice_warns(caplog) -> None:
    caplog.set_level(logging.INFO, logger="edge.sources")
    for explicit in (True, False):
        src, frames = first_frames(HwDecode("cuda", "99", explicit=explicit), 3)
        assert len(frames) == 3 and src.stats.hw_fallbacks == 1
    levels = [r.levelno for r in caplog.records if "decoding in software" in r.getMessage()]
    assert levels == [logging.WARNING, logging.INFO]


def test_check_tells_the_installer_the_camera_decodes_in_software() -> None:
    def cam(stream: dict) -> CameraConfig:
        return CameraConfig.model_validate({"id": "yard", "source": CLIP, "stream": stream})

    plain = probe_camera(cam({"hwaccel": "none"}))
    assert plain.ok and "h264 1280x720" in plain.detail and "decod" not in plain.detail
    asked = probe_camera(cam({"hwaccel": "cuda", "hwaccel_device": "99"}))
    assert asked.ok is False and "h264 1280x720" in asked.detail and "decoding in software" in asked.detail
    assert "stream.hwaccel" in asked.fix


def test_a_software_frame_goes_on_as_it_is() -> None:
    with av.open(CLIP) as c:
        frame = next(c.decode(video=0))
    assert hwdecode.to_host(frame, VideoReformatter()) is frame


def test_a_failed_copy_to_memory_moves_the_camera_to_software(monkeypatch) -> None:
    # A device's frame copy cannot be made to fail without a device: the copy is made to fail.
    def lost(frame, scaler):
        raise ValueError("device lost")

    monkeypatch.setattr(sources, "to_host", lost)
    src = VideoSource(CLIP, detect_fps=5, realtime=False, loop=False, hw=HwDecode("cuda", "99"))
    with pytest.raises(SourceError, match="reconnecting in software"):
        next(src.frames())
    assert src.hw is None and "cannot be copied to memory (device lost)" in src.stats.hw_error
    again = [df.frame.to_ndarray(format="gray") for df in src.frames()]  # the camera's next connection
    _, software = first_frames(None, len(again))
    assert again and all(np.array_equal(a, b) for a, b in zip(again, software, strict=True))


# Where the box has an NVIDIA GPU and PyAV's FFmpeg its CUDA decoder (the lent GPU machine: see
# docs/performance.md). Elsewhere there is nothing to decode on.
HAS_CUDA = any(os.path.exists(p) for p in hwdecode.NVIDIA_NODES) and "cuda" in hwdevices_available()


@pytest.mark.skipif(not HAS_CUDA, reason="no NVIDIA GPU with a CUDA decoder here")
def test_device_frames_stay_on_the_device_and_only_due_ones_come_to_memory() -> None:
    hw = HwDecode("cuda")
    with av.open(CLIP) as c:
        s = c.streams.video[0]
        dec = own_decoder(s, hw)
        # Whether each frame is in the device's memory; the frames themselves are let go at once, as
        # the source does, so that the decoder's few device surfaces are not all held here.
        on_device = [f.sw_format is not None for p in c.demux(s) for f in dec.decode(p)]
    assert dec.is_hwaccel and on_device and all(on_device)  # decoded, not copied
    src = VideoSource(CLIP, detect_fps=5, realtime=False, loop=False, hw=hw)
    due = [df.frame for df in src.frames()]
    assert src.stats.hw_decoding and src.stats.hw_fallbacks == 0
    assert due and all(f.sw_format is None for f in due)  # in memory, as the gate and detector read them
    _, software = first_frames(None, len(due))
    # H.264 decoding is exact: the frames that reach the gate are the software decoder's.
    assert all(np.array_equal(f.to_ndarray(format="gray"), g) for f, g in zip(due, software, strict=True))
