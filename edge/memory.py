"""Process-wide memory settings of the agent."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
# Blocks from this size up are mapped on their own and unmapped when freed. Fixed (glibc slides it
# up to 32 MiB as large blocks are freed) and above the detector-sized images (416x234 BGR: 292 KB;
# 640x360: 691 KB), so that those come from the heaps and are used again, while 1080p-sized buffers
# (3-6 MB) still go back to the system when freed.
MMAP_THRESHOLD_BYTES = 1 << 20
# Free memory at the top of a heap kept for the next block rather than handed back: a few frames'
# images. At glibc's default (128 KiB) the image freed by the analysis thread was handed back and
# the next frame's faulted in again, page by page.
TRIM_THRESHOLD_BYTES = 2 << 20


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds (True where applied).

    glibc raises the mmap threshold each time a large block is freed, up to 32 MiB, after which
    frame-sized buffers (numpy arrays, JPEG encodes, decoder side data) come from the heaps of the
    agent's many threads and are rarely given back. Measured with 7 1080p cameras over 75 s: resident
    memory 655 MB with the sliding threshold, 595 MB with it fixed at 128 KiB. At 128 KiB, though,
    each frame the detector looks at was scaled into a freshly mapped block: 40 quiet cameras took
    15k page faults a second, and the agent 8-9% of a core more than with the thresholds here
    (1.5k faults a second; 22 busy cameras: 4-5% more). Same as ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, but
    it needs no change to how the agent is started.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
