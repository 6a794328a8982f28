"""Media time for one pass over a stream: the stream's own timestamps, carried across the jumps
that real streams have. An encoder that restarts while the station keeps listening (MPEG-TS over
UDP, a republished HTTP-FLV or RTSP relay) starts its clock again, and a DVR export is often MPEG-TS
segments joined end to end. Taken as they come, a jump back froze media time until the new clock
caught up (detection saw no frame as due: 30 s blind after a 30 s segment), and a jump ahead would
have stretched a dwell time over hours no one watched.

A jump is a step back of more than ``BACK_S``, or ahead by more than ``JUMP_S`` (FFmpeg's own
``dts_delta_threshold``) beyond the wall time that passed, for a live stream (a stall of the
network is real time: the camera's clock is right). After one, media time goes on a frame later.
As in FFmpeg, a file's gap ahead is a jump only in formats that may have them (``may_jump``:
MPEG-TS, FLV); in MP4, MKV or AVI it is real time (a recorder that paused), and kept.
A smaller step back is held at the latest time: where a stream has B-frames, presentation times
in decode order (RTSP leaves some such packets without a decode time) step back a few frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import av

JUMP_S = 10.0
BACK_S = 1.0
# Elementary streams in a file of their own (an ``.h264`` export of a body-cam or DVR): no
# container times. Their packets come unstamped (``VideoSource`` gives them decode times by their
# durations, which the codec's parser reads from the stream's own timing), and the demuxer states
# 25 fps whatever was recorded.
RAW_FORMATS = frozenset({"h264", "hevc", "vvc", "m4v", "mpegvideo", "cavsvideo", "mjpeg"})


def may_jump(container: av.container.InputContainer) -> bool:
    """Whether the container's clock may jump (FFmpeg's ``AVFMT_TS_DISCONT``: MPEG-TS, FLV, HLS)."""
    return bool(container.format.flags & av.format.Flags.ts_discont.value)


def stream_fps(stream: av.VideoStream) -> float:
    """The frame rate a stream states (25 when it states none); for a raw elementary stream, the
    one its codec states (a 10 fps ``.h264`` replayed at 25 ran 2.5 times too fast)."""
    rates = (stream.average_rate, stream.guessed_rate)
    if stream.container.format.name in RAW_FORMATS:
        rates = rates[::-1]
    return float(rates[0] or rates[1] or 25)


@dataclass(slots=True)
class Timeline:
    start_s: float  # media time of the pass's first stamp
    step_s: float  # one frame at the stream's rate: how far media time moves at a jump
    live: bool = False  # the wall time between two stamps may separate them (a stall)
    ahead: bool = True  # a step ahead may be a jump (``may_jump``, or live)
    jumps: int = 0
    last_jump_s: float = 0.0  # raw size of the latest jump (negative: back)
    _offset: float | None = None  # media - raw, since the latest jump
    _raw: float = 0.0
    _mono: float = 0.0
    _media: float = 0.0

    def __call__(self, raw: float, now: float) -> float:
        """Media time of a stamp ``raw`` (seconds, the stream's clock) read at ``now`` (monotonic);
        never less than the previous one."""
        if self._offset is None:
            self._offset, self._media = self.start_s - raw, self.start_s
        else:
            d = raw - self._raw
            ahead = JUMP_S + (now - self._mono if self.live else 0.0)
            if d < -BACK_S or (self.ahead and d > ahead):
                self._offset = self._media + self.step_s - raw
                self.jumps += 1
                self.last_jump_s = d
        self._raw, self._mono = raw, now
        media = raw + self._offset
        if media > self._media:
            self._media = media
        return self._media
