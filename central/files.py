"""File writes and names shared by the stores of evidence (snapshots, media chunks, clips)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# An alert's clip is hard-linked beside its snapshot as ``<snapshot>.mp4``; the H.264 copy of a clip
# in another codec (``central.media.renditions``) sits beside the clip as ``<clip>.h264.mp4``, and
# beside the snapshot as ``<snapshot>.h264.mp4``.
CLIP_SUFFIX = ".mp4"
H264_SUFFIX = ".h264.mp4"


def h264_copy(clip: Path) -> Path:
    """Where the H.264 copy of ``clip`` (``<name>.mp4``) lives."""
    return clip.with_suffix(H264_SUFFIX)


def link_or_copy(src: Path, dst: Path) -> None:
    """A second name for ``src`` (a copy where the file system has no hard links); a name that is
    already there stays."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileExistsError:
        return
    except OSError:
        shutil.copyfile(src, dst)


def write_atomic(path: Path, data: bytes) -> None:
    """tmp + fsync + rename in the same directory: a reader never sees a half-written file, and a
    power cut after the caller's commit cannot leave an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
