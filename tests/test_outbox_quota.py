"""The station outbox on its own: durability across reopen, acks, quota policy, dead letters; and the
centre's chunk store: resumable, order-free, idempotent, sha256-checked, retention with holds."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central import db
from central.fleet import models as _fleet  # noqa: F401
from central.media import models as _media  # noqa: F401
from central.media import service as media
from central.media.models import MediaItem
from edge.outbox import Outbox, OutboxFull
from wire.link import MediaChunk


def add_events(ob: Outbox, n: int, size: int = 100) -> list[str]:
    with ob.tx():
        return [ob.add_event("t/e", os.urandom(size), f"{i:032x}", "cam") for i in range(n)]


def add_media(ob: Outbox, data: bytes) -> str:
    media_id = os.urandom(16).hex()
    with ob.tx():
        ob.add_media(media_id=media_id, topic="t/m", station="s", camera="cam", kind="clip",
                     content_type="video/mp4", sha256=hashlib.sha256(data).hexdigest(), data=data)  # fmt: skip
    return media_id


def test_items_survive_reopen_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 1 << 20)
    ids = add_events(ob, 5)
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite", 1 << 20)
    assert [i.item_id for i in ob.items_after(0, 10)] == ids
    assert ob.ack([ids[1], ids[3], "unknown-id"]) == 2
    assert ob.ack([ids[1]]) == 0  # a repeated ack is harmless
    assert [i.item_id for i in ob.items_after(0, 10)] == [ids[0], ids[2], ids[4]]
    assert len(ob.journal()) == 5  # raised events stay in the journal after their ack


def test_over_quota_media_goes_before_events_and_drops_are_counted(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", quota_bytes=10_000, chunk_bytes=1000)
    add_media(ob, os.urandom(4000))
    add_media(ob, os.urandom(4000))
    add_events(ob, 10, size=300)  # 3000 bytes: the oldest media must go, all events stay
    f = ob.figures()
    assert (f.events, f.media_chunks, f.dropped_media, f.dropped_events) == (10, 4, 1, 0)
    assert len(list(ob.media_dir.iterdir())) == 1
    add_events(ob, 25, size=300)  # no room even without media: the oldest events go, counted
    f = ob.figures()
    assert f.media_chunks == 0 and f.dropped_media == 2
    assert f.dropped_events > 0 and f.bytes <= 10_000 and f.events == 35 - f.dropped_events
    with pytest.raises(OutboxFull), ob.tx():
        ob.add_event("t/e", os.urandom(20_000), "f" * 32, "cam")
    ob.close()
    assert Outbox(tmp_path / "o.sqlite", 10_000).figures().dropped_media == 2  # counters persist


def test_media_must_match_its_sha256_and_chunks_rebuild_it(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 1 << 20, chunk_bytes=1000)
    with pytest.raises(ValueError), ob.tx():
        ob.add_media(media_id="a" * 32, topic="t", station="s", camera="c", kind="clip",
                     content_type="video/mp4", sha256="0" * 64, data=b"abc")  # fmt: skip
    data = os.urandom(2500)
    add_media(ob, data)
    items = ob.items_after(0, 10)
    chunks = [MediaChunk.model_validate_json(ob.chunk_payload(i)) for i in items]
    assert [c.index for c in chunks] == [0, 1, 2] and b"".join(c.data() for c in chunks) == data


def test_rejected_items_become_dead_letters(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 1 << 20)
    ids = add_events(ob, 2)
    assert ob.reject([ids[0]]) == 1
    f = ob.figures()
    assert (f.items, f.dead_letters) == (1, 1)


def _chunks(data: bytes, chunk: int, **kw) -> list[MediaChunk]:
    import base64
    import math

    n = math.ceil(len(data) / chunk)
    base = dict(media_id="b" * 32, station="s", camera="c", kind="clip", content_type="video/mp4",
                sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), chunk_bytes=chunk, count=n) | kw  # fmt: skip
    return [
        MediaChunk(**base, index=i, data_b64=base64.b64encode(data[i * chunk : (i + 1) * chunk]).decode())
        for i in range(n)
    ]


@pytest.fixture
def session(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path}/c.db")
    db.Base.metadata.create_all(engine)
    with db.make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_centre_chunk_store_resumes_in_any_order_and_checks_sha256(session, tmp_path: Path) -> None:
    mdir = tmp_path / "media"
    data = os.urandom(5000)
    c = _chunks(data, 1000)
    assert [media.store_chunk(session, x, mdir) for x in (c[3], c[0], c[0], c[4])] == [
        "stored", "stored", "duplicate", "stored",
    ]  # fmt: skip
    # ...the centre restarts here: its progress is in the database and the chunk files...
    assert [media.store_chunk(session, x, mdir) for x in (c[2], c[1])] == ["stored", "complete"]
    item = session.get(MediaItem, "b" * 32)
    assert media.media_file(item, mdir).read_bytes() == data
    assert media.store_chunk(session, c[1], mdir) == "duplicate"

    bad = _chunks(os.urandom(2000), 1000, media_id="c" * 32, sha256="0" * 64)
    media.store_chunk(session, bad[0], mdir)
    with pytest.raises(media.MediaError):
        media.store_chunk(session, bad[1], mdir)
    assert session.get(MediaItem, "c" * 32).state == "corrupt"


def test_retention_never_deletes_held_evidence(session, tmp_path: Path) -> None:
    mdir = tmp_path / "media"
    held, free = (_chunks(os.urandom(100), 100, media_id=m, event_id=e)[0]
                  for m, e in (("d" * 32, "1" * 32), ("e" * 32, "2" * 32)))  # fmt: skip
    for c in (held, free):
        media.store_chunk(session, c, mdir)
    media.hold_evidence(session, "1" * 32)
    later = datetime.now(UTC) + timedelta(days=40)
    counts = media.sweep_retention(session, mdir, max_age_s=30 * 86400, now=later)
    assert counts["media"] == 1 and counts["kept_held"] == 1
    assert media.media_file(session.get(MediaItem, "d" * 32), mdir) is not None
    assert session.get(MediaItem, "e" * 32).state == "expired"
    media.release_evidence(session, "1" * 32)
    assert media.sweep_retention(session, mdir, max_age_s=30 * 86400, now=later)["media"] == 1


def test_alerts_can_be_read_ahead_of_queued_clip_chunks(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 64 << 20, chunk_bytes=1024)
    add_media(ob, os.urandom(10 * 1024))  # ten chunks queued first
    (late,) = add_events(ob, 1)
    firsts = ob.items_after(0, 3, chunks=False)
    assert [i.item_id for i in firsts] == [late]  # the alert is not behind the clip
    chunks = ob.items_after(0, 100, chunks=True)
    assert len(chunks) == 10 and all(i.kind == "chunk" for i in chunks)
    assert [i.chunk_index for i in chunks] == list(range(10))  # a clip's chunks stay in order
    assert len(ob.items_after(0, 100)) == 11
