"""The agent's process-wide memory settings."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import pytest

from edge import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_malloc_is_tuned_on_glibc() -> None:
    assert memory.tune_malloc() is True


def test_a_libc_without_mallopt_is_left_alone(monkeypatch) -> None:
    def no_libc(*_a, **_k):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.tune_malloc() is False


_FAULTS = """
import ctypes, resource, sys, av
from edge import memory
from edge.scale import Downscaler
if sys.argv[1] == "tuned":
    assert memory.tune_malloc()
else:  # the threshold fixed where it starts, as the agent once had it
    assert ctypes.CDLL("libc.so.6").mallopt(memory.M_MMAP_THRESHOLD, 128 * 1024)
frame = av.VideoFrame(640, 360, "yuv420p")
scale = Downscaler()
for _ in range(20):  # warm: the heaps reach their working size
    scale(frame, 416, 234, "bgr24")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # what a camera does per detected frame: a detector-sized image, then freed
    scale(frame, 416, 234, "bgr24")
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_detector_sized_images_are_not_faulted_in_page_by_page_each_frame() -> None:
    def faults(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    fixed_low, tuned = faults("128k"), faults("tuned")
    assert fixed_low > 50  # 292 KB mapped for each image and unmapped after it: ~72 pages faulted in
    assert tuned < 5, (fixed_low, tuned)
