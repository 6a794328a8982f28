"""Commands from the centre (visual dispatch): a live snapshot now, or a clip of the last N seconds.

paho's thread hands each command to a small worker (bounded queue) so rendering a JPEG or cutting a
clip never stalls the network loop; the answer (media + ``CommandReply``) goes through the outbox.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2

from wire.link import Command, CommandReply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    width_px: int
    height_px: int


# camera -> latest JPEG (None: no frame yet); camera, seconds -> a clip object with path, sha256,
# content_type (edge.types.ClipRef) or None when the camera keeps no recent media.
SnapshotFn = Callable[[str], Jpeg | None]
ClipFn = Callable[[str, float], Any]


def frame_jpeg(frame: Any, quality: int = 85) -> Jpeg:
    """A plain JPEG of a decoded PyAV frame (no overlay)."""
    img = frame.to_ndarray(format="bgr24")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return Jpeg(buf.tobytes(), img.shape[1], img.shape[0])


class CommandHandler:
    def __init__(
        self, link: Any, station: str, cameras: list[str], snapshot_fn: SnapshotFn, clip_fn: ClipFn | None
    ) -> None:
        self.link = link
        self.station = station
        self.cameras = set(cameras)
        self.snapshot_fn = snapshot_fn
        self.clip_fn = clip_fn
        self._q: queue.Queue[Command | None] = queue.Queue(32)
        self.handled = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="xl-commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._q.put(None, timeout=1.0)
        except queue.Full:
            return
        self._thread.join(10)

    def submit(self, cmd: Command) -> None:
        """From paho's thread: never blocks."""
        try:
            self._q.put_nowait(cmd)
        except queue.Full:
            self.dropped += 1
            log.warning("commands: queue full; command %s dropped", cmd.cmd_id)

    def _run(self) -> None:
        while (cmd := self._q.get()) is not None:
            try:
                ok, error, media_id = self._execute(cmd)
            except Exception as exc:
                log.exception("commands: %s %s failed", cmd.kind, cmd.cmd_id)
                ok, error, media_id = False, f"{type(exc).__name__}: {exc}"[:500], None
            self.handled += 1
            self.link.submit_reply(
                CommandReply(
                    cmd_id=cmd.cmd_id,
                    station=self.station,
                    camera=cmd.camera,
                    ok=ok,
                    error=error,
                    media_id=media_id,
                    ts=datetime.now(UTC),
                )  # fmt: skip
            )

    def _execute(self, cmd: Command) -> tuple[bool, str, str | None]:
        if cmd.camera not in self.cameras:
            return False, f"camera {cmd.camera!r} is not on station {self.station!r}", None
        if cmd.kind == "snapshot":
            snap = self.snapshot_fn(cmd.camera)
            if snap is None:
                return False, "no frame from this camera yet", None
            media_id = self.link.submit_media_bytes(
                snap.data, hashlib.sha256(snap.data).hexdigest(), camera=cmd.camera, kind="snapshot",
                content_type="image/jpeg", cmd_id=cmd.cmd_id,
            )  # fmt: skip
        else:
            clip = self.clip_fn(cmd.camera, cmd.seconds) if self.clip_fn is not None else None
            if clip is None:
                return False, "this station keeps no recent clip for the camera", None
            media_id = self.link.submit_media_file(
                clip.path, clip.sha256, camera=cmd.camera, kind="clip", content_type=clip.content_type,
                cmd_id=cmd.cmd_id,
            )  # fmt: skip
        if media_id is None:
            return False, "station outbox refused the media", None
        return True, "", media_id
