"""The clip format both sides agree on: an MP4 (moov first) that a browser's <video> plays.

A station remuxes its camera's packets when the codec may play in a browser (``REMUX_CODECS``) and
encodes anything else once as H.264 (``edge.clips``). Only H.264 plays in every browser, so the
centre adds an H.264 copy of each clip in another codec (``central.media.renditions``): a camera
that records H.265, as most IP cameras' main streams do, costs the edge box no re-encode, and the
operator's browser plays whichever of the two it can.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av

REMUX_CODECS = frozenset({"h264", "hevc", "av1", "vp9"})  # a browser may play them from MP4
BROWSER_CODECS = frozenset({"h264"})  # every browser plays them: no copy needed
# Sample entry names: Apple's players (Safari, iOS) play H.265 in MP4 only as 'hvc1', while FFmpeg
# writes 'hev1' by default; the other players read both.
MP4_TAGS = {"hevc": "hvc1"}
# 'hvc1' keeps parameter sets in the sample entry only: FFmpeg's muxer drops the in-band ones of an
# Annex B stream (MPEG-TS, RTSP). Where they change within a clip (a camera switched resolution, a
# DVR export joins recordings, in-band sets that differ from the SDP's) the later pictures would be
# decoded with the first sets, as garbage; 'hev1' keeps them in band. Safari plays only 'hvc1', and
# the centre's H.264 copy of every H.265 clip plays there.
HEVC_IN_BAND = "hev1"
_HEVC_SETS = frozenset({32, 33, 34})  # VPS, SPS, PPS NAL unit types
_START_CODES = (b"\x00\x00\x01", b"\x00\x00\x00\x01")  # Annex B; else length-prefixed (MP4, MKV)
MP4_OPTIONS = {"movflags": "+faststart"}  # moov first: a browser starts before the download ends
H264_OPTIONS = {"preset": "veryfast", "crf": "23"}


def _annexb_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B buffer (start code prefixed), trailing zero bytes dropped."""
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        nxt = data.find(b"\x00\x00\x01", start + 3)
        yield data[start + 3 : None if nxt < 0 else nxt].rstrip(b"\x00")
        start = nxt


def _sets(data: bytes) -> set[bytes]:
    return {u for u in _annexb_units(data) if u and (u[0] >> 1) & 0x3F in _HEVC_SETS}


def sample_tag(codec: str, extradata: bytes | None, packets: Iterable[bytes]) -> str | None:
    """The MP4 sample entry name for a clip of ``codec`` (None: the muxer's default).

    H.265 is 'hvc1' unless its Annex B packets bring parameter sets other than the stream's first
    ones (``extradata``, else the first packet's): then 'hev1' (``HEVC_IN_BAND``)."""
    tag = MP4_TAGS.get(codec)
    if codec != "hevc":
        return tag
    known = _sets(extradata) if extradata and extradata.startswith(_START_CODES) else set()
    for data in packets:
        if not data.startswith(_START_CODES):
            return tag  # length-prefixed (from MP4 or MKV): the muxer keeps in-band sets as they are
        sets = _sets(data)
        if not known:
            known = sets
        elif not sets <= known:
            return HEVC_IN_BAND
    return tag


class H264Writer:
    """Encodes decoded frames, of any size and format, as H.264 (yuv420p, even size) into an MP4.

    Frames are stamped at a constant ``fps``; the caller writes them in presentation order.
    ``rotation``: the source's display matrix (``VideoFrame.rotation``), kept so that players show
    a sideways recording upright as they showed the source."""

    def __init__(self, path: Path, fps: float, width: int, height: int, rotation: int = 0) -> None:
        self.frames = 0
        # Exact to 0.01 fps (12.5 fps stamped at 12 played 4% slow); at least 1 fps.
        rate = Fraction(round(max(fps, 1.0), 2)).limit_denominator(1001)
        self._out = av.open(str(path), "w", format="mp4", options=MP4_OPTIONS)
        try:
            self._stream = s = self._out.add_stream("libx264", rate=rate)
            # Kept: the muxer replaces the stream's time base with its own when it writes the header.
            s.time_base = self._frame_tb = Fraction(1, rate)
            s.width, s.height, s.pix_fmt = max(2, width // 2 * 2), max(2, height // 2 * 2), "yuv420p"
            s.codec_context.options = dict(H264_OPTIONS)
            if rotation:
                s.set_display_rotation(rotation)
        except BaseException:
            self._out.close()
            raise

    def write(self, frame: av.VideoFrame) -> None:
        s = self._stream
        img = frame.reformat(width=s.width, height=s.height, format="yuv420p")
        img.pts, img.time_base = self.frames, self._frame_tb
        self.frames += 1
        self._out.mux(s.encode(img))

    def close(self) -> None:
        try:
            self._out.mux(self._stream.encode())
        finally:
            self._out.close()

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # the file is thrown away by the caller: no flush
            self._out.close()
