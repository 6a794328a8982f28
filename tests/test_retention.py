"""Retention within a disk quota: the edge's media dir during a replay that writes many clips, evidence
the outbox still owes the centre, and the centre's media with the evidence of open incidents."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from central.alerts.models import Alert
from central.alerts.schemas import AlertOut
from central.alerts.service import store_alert
from central.app import create_app
from central.dispatch.models import WorkOrder
from central.incidents.models import IncidentAlert
from central.media import service as media
from central.media.models import MediaItem
from central.retention import dir_bytes
from edge.outbox import Outbox
from edge.retention import MediaJanitor, outbox_held
from tests.conftest import CLIPS
from tests.linkkit import central_settings, make_alert
from wire.link import MediaChunk

MIB = 2**20
REPLAY = """\
station: {{id: rq-1}}
media: {{dir: unused, pre_s: 1, post_s: 1, quota_mb: {quota_mb}}}
cameras:
  - id: lawn
    source: x.avi
    zones: [{{id: all, points: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    rules: [{{id: anyone, zone: all, end_after_s: 1}}]
"""


def tree_bytes(root: Path) -> int:
    """Everything on disk under root, half-written files included."""
    total = 0
    for dirpath, _d, names in os.walk(root):
        for n in names:
            with contextlib.suppress(OSError):  # written or deleted meanwhile
                total += (Path(dirpath) / n).stat().st_size
    return total


def test_replay_writing_many_clips_never_exceeds_the_quota(tmp_path: Path) -> None:
    quota = 24 * MIB  # the 40 clips of this replay take ~95 MiB without a quota
    cfg = tmp_path / "rq.yaml"
    cfg.write_text(REPLAY.format(quota_mb=quota / MIB))
    out = tmp_path / "media"
    seen = {"max": 0, "samples": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen["max"] = max(seen["max"], tree_bytes(out))
            seen["samples"] += 1
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    r = subprocess.run([sys.executable, "-m", "edge", "replay", str(CLIPS / "campus_pedestrians_vtest.avi"),
                        "--config", str(cfg), "--brief", "--all-phases", "--media", str(out)],
                       capture_output=True, text=True, timeout=180)  # fmt: skip
    done.set()
    t.join()
    assert r.returncode == 0, r.stderr[-2000:]
    ends_with_clip = [x for x in r.stdout.splitlines() if '"phase":"end"' in x and '"clip":{' in x]
    assert len(ends_with_clip) >= 30, r.stderr[-500:]  # many clips were written...
    left = [p for p in out.rglob("*") if p.is_file()]
    assert 2 <= len(left) < len(ends_with_clip)  # ...the oldest went
    assert seen["samples"] > 50 and seen["max"] <= quota, seen
    assert tree_bytes(out) <= quota


def clip_bytes(seed: int, size: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32)


def test_edge_keeps_what_the_outbox_still_owes_the_centre(tmp_path: Path) -> None:
    media_dir = tmp_path / "media"
    box = Outbox(tmp_path / "outbox" / "o.sqlite", 100 * MIB)
    janitor = MediaJanitor(media_dir, 40 * MIB, alarm_pct=90, held_fn=outbox_held(box.path))
    held_ids = []
    for i in range(12):  # 12 clips of 4 MiB, oldest first; the first three not yet acknowledged
        eid = uuid.uuid4().hex
        p = media_dir / "rq-1" / "cam" / "20260101" / f"{eid}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        data = clip_bytes(i, 4 * MIB)
        p.write_bytes(data)
        os.utime(p, (1000 + i, 1000 + i))
        if i < 3:
            with box.tx():
                box.add_media(media_id=uuid.uuid4().hex, topic="t", station="rq-1", camera="cam", kind="clip",
                              content_type="video/mp4", sha256=hashlib.sha256(data).hexdigest(), path=p,
                              event_id=eid)  # fmt: skip
            held_ids.append(eid)
        janitor.landed(str(p), len(data))  # as the agent does per clip: sweeps only near the quota
        assert tree_bytes(media_dir) <= 40 * MIB
    assert janitor.stats.sweeps < 12  # the clips that landed far from the quota cost no sweep
    names = {p.stem for p in media_dir.rglob("*.mp4")}
    assert set(held_ids) <= names  # unacknowledged evidence stays
    assert janitor.stats.deleted_files >= 3 and janitor.stats.held_bytes >= 12 * MIB
    assert janitor.alarm() == []  # 12 of 40 MiB held: no alarm yet
    # The centre acknowledges them: now they are ordinary old clips and go first.
    box.ack([r[0] for r in box.db.execute("SELECT item_id FROM items")])
    for i in range(12, 15):
        p = media_dir / "rq-1" / "cam" / "20260101" / f"{uuid.uuid4().hex}.mp4"
        p.write_bytes(clip_bytes(i, 4 * MIB))
        janitor.enforce(keep=frozenset({str(p)}))
    assert not set(held_ids) & {p.stem for p in media_dir.rglob("*.mp4")}
    # Unacknowledged evidence filling the quota raises the alarm the agent sends to the centre.
    tight = MediaJanitor(
        media_dir, 5 * MIB, alarm_pct=90, held_fn=lambda: {p.stem for p in media_dir.rglob("*.mp4")}
    )
    tight.enforce()
    assert any("unacknowledged evidence" in a for a in tight.alarm())
    box.close()


def test_centre_quota_keeps_the_evidence_of_open_incidents(tmp_path: Path) -> None:
    settings = central_settings("127.0.0.1", 1, tmp_path, scheduler_enabled=False, media_quota_mb=1.0)
    app = create_app(settings, start_ingest=False)
    with TestClient(app):
        sessions, runtime = app.state.session_factory, app.state.runtime
        clips: dict[str, list[str]] = {"open-cam": [], "done-cam": []}
        for i in range(24):
            camera = "open-cam" if i % 4 == 0 else "done-cam"  # 6 alerts on one camera, 18 on the other
            msg = make_alert("rq-c1", camera, seed=i)
            with sessions() as s:
                row, _ = store_alert(s, msg, settings.media_dir)
                out = AlertOut.from_row(row)
                data = clip_bytes(i, 96 * 1024)
                chunk = MediaChunk(media_id=uuid.uuid4().hex, station="rq-c1", camera=camera, kind="clip",
                                   content_type="video/mp4", event_id=msg.event_id,
                                   sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                                   chunk_bytes=len(data), index=0, count=1,
                                   data_b64=base64.b64encode(data).decode())  # fmt: skip
                assert media.store_chunk(s, chunk, settings.media_dir) == "complete"
            runtime.on_alert_stored(out)  # grouped into its camera's incident, an order opened
            clips[camera].append(msg.event_id)
        with sessions() as s:
            done_incident = s.scalar(select(IncidentAlert.incident_id).join(Alert, Alert.id == IncidentAlert.alert_id)
                                     .where(Alert.camera == "done-cam"))  # fmt: skip
            s.execute(update(WorkOrder).where(WorkOrder.incident_id == done_incident).values(state="closed"))
            s.commit()
        before = dir_bytes(settings.media_dir)
        assert before > 2 * MIB
        runtime.keep_quota(force=True)
        assert dir_bytes(settings.media_dir) <= 1 * MIB
        with sessions() as s:
            for eid in clips["open-cam"]:  # the open incident's clips and snapshots are all there
                alert = s.scalar(select(Alert).where(Alert.event_id == eid))
                assert (settings.media_dir / alert.snapshot_path).is_file()
                clip = list(s.scalars(select(MediaItem).where(MediaItem.event_id == eid)))
                assert clip and all(media.media_file(m, settings.media_dir) is not None for m in clip)
            gone = [eid for eid in clips["done-cam"]
                    if s.scalar(select(MediaItem.state).where(MediaItem.event_id == eid)) == "expired"]  # fmt: skip
            assert len(gone) >= 10
        assert app.state.retention.deleted_files >= 10
