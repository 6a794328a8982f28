"""The installer's picture (`xl-edge check --frames DIR`): each camera's frame, upright, with its
zones, masks and tripwires drawn where the agent applies them, and a tripwire's A and B written on
the sides its rule counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edge.detect import build_detector
from edge.geometry import Tripwire, side_points
from edge.models import resolve_model
from tests.conftest import CLIPS
from tests.test_orient import H, W, marked
from xltools.procs import free_port

CLIP = CLIPS / "campus_pedestrians_vtest.avi"
ZONE = [[0.55, 0.55], [0.95, 0.55], [0.95, 0.95], [0.55, 0.95]]
MASK = [[0.05, 0.05], [0.35, 0.05], [0.35, 0.35], [0.05, 0.35]]
CONFIG = """\
station: {{id: chk-pic}}
mqtt: {{host: 127.0.0.1, port: {port}}}
outbox: {{path: "{tmp}/outbox/o.sqlite"}}
media: {{dir: "{tmp}/media"}}
cameras:
  - id: yard
    source: "{clip}"
    motion: {{mask: [{mask}]}}
    zones: [{{id: lawn, points: {zone}}}]
    rules:
      - {{id: r1, zone: lawn}}
      - {{id: r2, kind: line_crossing, line: [[0.1, 0.5], [0.45, 0.5]], direction: a_to_b}}
  - {{id: side, source: "{sideways}"}}
"""


@pytest.mark.parametrize("size", [(768, 576), (640, 360), (360, 640)])
def test_a_and_b_are_written_on_the_sides_the_rule_counts_as_a_and_b(size: tuple[int, int]) -> None:
    w, h = size
    rng = np.random.default_rng(7)
    for _ in range(200):
        n1, n2 = (tuple(float(v) for v in rng.uniform(0.05, 0.95, 2)) for _ in range(2))
        p1 = (round(n1[0] * (w - 1)), round(n1[1] * (h - 1)))
        p2 = (round(n2[0] * (w - 1)), round(n2[1] * (h - 1)))
        if np.hypot(p2[0] - p1[0], p2[1] - p1[1]) < 4:
            continue
        wire = Tripwire(n1, n2)
        a, b = side_points(p1, p2, 20.0)
        assert wire.side(a[0] / (w - 1), a[1] / (h - 1)) == 1, (n1, n2, a)
        assert wire.side(b[0] / (w - 1), b[1] / (h - 1)) == -1, (n1, n2, b)
    # The doc's example: a line drawn top to bottom has A on the left of the picture.
    a, b = side_points((100, 10), (100, 200), 20.0)
    assert a[0] < 100 < b[0]


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            return f.to_ndarray(format="bgr24")
    raise AssertionError("no frame")


def _box(img: np.ndarray, pts: list[list[float]], inset: float = 0.05) -> np.ndarray:
    """The pixels of an axis-aligned normalised rectangle, ``inset`` in from its sides (off its outline)."""
    h, w = img.shape[:2]
    (x0, y0), (x1, y1) = pts[0], pts[2]
    return img[round((y0 + inset) * h) : round((y1 - inset) * h), round((x0 + inset) * w) : round((x1 - inset) * w)]


def test_check_writes_each_cameras_picture_with_its_config_drawn(tmp_path: Path) -> None:
    sideways = tmp_path / "portrait.mp4"
    marked(sideways, 90)
    cfg = tmp_path / "st.yaml"
    cfg.write_text(CONFIG.format(port=free_port(), tmp=tmp_path, clip=CLIP, sideways=sideways, mask=MASK, zone=ZONE))
    out = tmp_path / "pictures"
    r = subprocess.run([sys.executable, "-m", "edge", "check", "--config", str(cfg), "--timeout", "2",
                        "--frames", str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = r.stdout.splitlines()
    yard = [x for x in lines if "camera  yard:" in x]
    assert yard and yard[0].startswith("ok") and f"picture {out / 'yard.jpg'}" in yard[0], lines

    raw = _first_frame(CLIP).astype(np.float64)
    pic = cv2.imread(str(out / "yard.jpg")).astype(np.float64)
    assert pic.shape == raw.shape  # the detect stream's own size: points read off it are the config's
    # Inside the zone: tinted amber (BGR 0, 200, 255), so red up and blue down against the raw frame.
    zone_raw, zone_pic = _box(raw, ZONE), _box(pic, ZONE)
    assert (zone_pic[..., 2] - zone_pic[..., 0]).mean() > (zone_raw[..., 2] - zone_raw[..., 0]).mean() + 30
    # Inside the mask: shaded dark.
    assert _box(pic, MASK, 0.1).mean() < 0.6 * _box(raw, MASK, 0.1).mean()
    # The tripwire from (0.1, 0.5) to (0.45, 0.5) is drawn amber along its length.
    h, w = raw.shape[:2]
    row = pic[round(0.5 * (h - 1)), round(0.15 * w) : round(0.4 * w)]
    assert (row[:, 2] > 180).mean() > 0.9 and (row[:, 0] < 90).mean() > 0.9, row[:5]
    # Away from them all, the picture is the camera's own (a faint grid aside).
    assert np.abs(pic[round(0.42 * h) : round(0.48 * h), round(0.6 * w) : round(0.9 * w)]
                  - raw[round(0.42 * h) : round(0.48 * h), round(0.6 * w) : round(0.9 * w)]).mean() < 20  # fmt: skip

    # What the station's detector finds on that frame is named in the line and boxed in cyan.
    det = build_detector(resolve_model("yolox_nano_416"))
    found = det.detect_bgr(raw.astype(np.uint8))
    people = int((found.class_id == det.labels.index("person")).sum())
    assert people > 0 and f"detected: {people} person" in yard[0], yard[0]
    x1, y1, x2, y2 = found.xyxy_norm[int(np.argmax(found.score))]
    top = pic[round(float(y1) * (h - 1)), round(float(x1) * (w - 1)) + 2 : round(float(x2) * (w - 1)) - 2]
    assert ((top[:, 0] > 170) & (top[:, 1] > 170) & (top[:, 2] < 120)).mean() > 0.5, top[:5]  # BGR cyan

    # A recording stored sideways is drawn upright, as it is analysed: portrait.
    side = [x for x in lines if "camera  side:" in x]
    assert side and "recorded sideways" in side[0] and "picture" in side[0], lines
    assert cv2.imread(str(out / "side.jpg")).shape[:2] == (W, H)


def test_frames_into_a_folder_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = tmp_path / "st.yaml"
    cfg.write_text(f"station: {{id: s}}\ncameras: [{{id: c, source: '{CLIP}'}}]\n")
    r = subprocess.run([sys.executable, "-m", "edge", "check", "--config", str(cfg), "--frames",
                        str(blocker / "sub")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "--frames" in r.stderr and str(blocker / "sub") in r.stderr, r.stderr
