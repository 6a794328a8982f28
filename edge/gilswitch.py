"""How long one thread of the agent may run Python before it hands the GIL over."""

from __future__ import annotations

import sys

# CPython's default is 5 ms.
SWITCH_INTERVAL_S = 0.001


def shorten_gil_switch() -> None:
    """Set the interpreter's switch interval to ``SWITCH_INTERVAL_S`` for the whole process.

    The inference workers, which every camera waits for, and the decode threads give up the GIL at
    each call into C (``session.run``, a packet's decode, a scale) and must wait to get it back. A
    thread busy in Python (tracking, rules, the link) keeps it until the switch interval asks it to
    let go, so each of those returns can cost up to an interval. Past its camera count the agent
    failed with CPU to spare, the workers' calls taking four to six times their CPU.
    Measured on a 2-core Zen 4 in 22 alternating pairs of 30 s probes at 1 ms against 5 ms: better
    in 16, worse in 6. 28 busy cameras detected 77.9% of motion frames against 73.7%
    (14 pairs, 3 of 6 sustained against 1 of 6 in the last six); 42 quiet ones, better in all 4
    pairs by 2-10 points; 13 1080p ones, the decoders' lag p99 0.10-0.50 s against 0.20-1.00 s
    (4 pairs, 2 sustained against none). The Python-heavy alert path (the link's outbox commit, the
    evidence writer) pays some of it back: at 23 busy cameras, alert p99 873 and 675 ms against 591
    and 606 at 5 ms.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
