"""OpenCV's threading in the agent: every call runs in the thread that makes it."""

from __future__ import annotations

import cv2


def run_opencv_serially() -> None:
    """Turn off OpenCV's own thread pool for the whole process.

    The agent already runs a thread per camera, and the calls it makes on frames (the motion
    gate's blur, difference, dilation and blobs on a ~178x100 image) are far too small to gain from
    splitting. The pool's workers then only cost: after each job they wait actively, spinning on
    sched_yield, and with cameras calling many times a second one of them never sleeps. Measured on
    a 2-core Zen 4: 2000 gate passes took 1.79 s of CPU with the pool and 0.50 s without, in the
    same wall time; 30 quiet cameras took 137/142/144% of a core with it and 127/132/139% without,
    in alternating 30 s probes (perf put the spinning thread at 7% of a core).
    """
    cv2.setNumThreads(0)
