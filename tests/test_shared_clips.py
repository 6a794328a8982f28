"""Overlapping events of one camera share one clip: the ring, the desk, the writer and the outbox."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from edge.clips import ClipRecorder
from edge.events import EventDesk, EvidenceJob
from edge.evidence import EvidenceWriter
from edge.outbox import Outbox
from edge.publish import to_message
from edge.sources import DecodedFrame, VideoSource
from edge.types import Event, EventPhase, RuleKind
from tests.conftest import CLIPS
from wire.link import MediaChunk


class _P:
    def __init__(self, key: bool) -> None:
        self.is_keyframe = key


def _feed(rec: ClipRecorder, seconds: float, marks: dict[float, list[tuple[str, str]]]) -> list:
    """10 packets/s, a keyframe every second; ``marks``: time -> [(begin|end, event)]."""
    cuts = []
    for i in range(round(seconds * 10)):
        t = round(i / 10, 3)
        rec.push(_P(i % 10 == 0), t)  # type: ignore[arg-type]
        for what, eid in marks.get(t, []):
            (rec.begin if what == "begin" else rec.end)(eid, t)
        cuts += rec.take_ready()
    return cuts


def test_overlapping_events_share_one_clip_from_the_first_pre_roll_to_the_last_post_roll() -> None:
    rec = ClipRecorder(pre_s=2.0, post_s=1.0, share_s=30.0)
    marks = {
        4.5: [("begin", "a")],
        5.5: [("begin", "b")],  # while a runs
        6.0: [("end", "a")],
        8.0: [("end", "b")],
        8.5: [("begin", "c")],  # within b's post roll (to 9.0): joins
        9.0: [("end", "c")],
        20.0: [("begin", "d")],  # long after: a clip of its own
        21.0: [("end", "d")],
    }
    cuts = _feed(rec, 30.0, marks)
    assert [c.events for c in cuts] == [("a", "b", "c"), ("d",)]
    shared = cuts[0]
    assert shared.event_id == "a" and shared.start_t_s == 2.0  # a's pre roll, from the keyframe
    assert shared.packets and round(2.0 + (len(shared.packets) - 1) / 10, 3) == 10.0  # c's end + post
    assert cuts[1].event_ids == () and cuts[1].start_t_s == 18.0
    assert shared.begins == (4.5, 5.5, 8.5) and shared.begin_of("c") == 8.5 and cuts[1].begin_of("d") == 20.0


def test_sharing_off_or_too_late_or_full_gives_clips_of_their_own() -> None:
    marks = {4.5: [("begin", "a")], 5.5: [("begin", "b")], 6.0: [("end", "a")], 8.0: [("end", "b")]}
    assert [c.events for c in _feed(ClipRecorder(2.0, 1.0, share_s=0.0), 12.0, marks)] == [("a",), ("b",)]
    # b starts 1 s after the clip opened: beyond share_s = 0.5
    assert [c.events for c in _feed(ClipRecorder(2.0, 1.0, share_s=0.5), 12.0, marks)] == [("a",), ("b",)]
    full = ClipRecorder(2.0, 1.0, share_s=30.0, share_max_events=1)
    assert [c.events for c in _feed(full, 12.0, marks)] == [("a",), ("b",)]


def test_a_long_running_member_is_cut_at_max_clip_and_the_others_keep_the_clip() -> None:
    rec = ClipRecorder(pre_s=1.0, post_s=1.0, max_clip_s=5.0, share_s=30.0)
    desk = EventDesk(snapshot_window_s=0.0, recorder=rec)
    now = datetime.now(UTC)
    frame = av.VideoFrame(16, 16, "yuv420p")
    jobs: list[EvidenceJob] = []
    for i in range(150):
        t = round(i / 10, 3)
        rec.push(_P(i % 10 == 0), t)  # type: ignore[arg-type]
        evs = []
        if i == 20:
            evs = [_event("a" * 32, EventPhase.START, t, now), _event("b" * 32, EventPhase.START, t, now)]
        elif i == 40:
            evs = [_event("a" * 32, EventPhase.END, t, now)]  # b runs on past max_clip_s
        elif i == 140:
            evs = [_event("b" * 32, EventPhase.END, t, now)]
        jobs += desk.handle(evs, DecodedFrame(frame, t, now), [])
    ends = [j for j in jobs if j.event.phase is EventPhase.END]
    assert [j.event.event_id[0] for j in ends] == ["a", "b"]
    assert ends[0].clip is ends[1].clip and ends[0].clip is not None and ends[0].clip.truncated


def _event(eid: str, phase: EventPhase, t: float, now: datetime) -> Event:
    return Event(eid, "s", "c", "r", RuleKind.INTRUSION, "z", "person", 0.8, (0.1, 0.1, 0.3, 0.5), 1, t, now,
                 phase=phase)  # fmt: skip


def test_a_shared_clip_of_a_real_stream_is_written_once_and_referenced_by_every_event(tmp_path: Path) -> None:
    rec = ClipRecorder(pre_s=1.0, post_s=1.0, share_s=30.0)
    desk = EventDesk(snapshot_window_s=0.0, recorder=rec)
    src = VideoSource(str(CLIPS / "campus_pedestrians_vtest.avi"), 5.0, realtime=False, on_packet=rec.push)
    ids = [f"{k:032x}" for k in range(1, 4)]
    script = {1.0: (ids[0], EventPhase.START), 1.6: (ids[1], EventPhase.START), 2.2: (ids[0], EventPhase.END),
              2.6: (ids[2], EventPhase.START), 3.0: (ids[1], EventPhase.END), 3.4: (ids[2], EventPhase.END)}  # fmt: skip
    jobs: list[EvidenceJob] = []
    for df in src.frames():
        hit = script.get(round(df.pts_s, 1))
        evs = [_event(hit[0], hit[1], df.pts_s, df.ts)] if hit else []
        jobs += desk.handle(evs, df, [])
        if df.pts_s > 6.0:
            break
    writer = EvidenceWriter(tmp_path / "media")
    written, refs, msgs = [], {}, {}
    for job in jobs:
        ev, snap = writer.process(job)
        if writer.fresh_clip is not None:
            written.append(writer.fresh_clip.events)
        if ev.phase is EventPhase.END:
            refs[ev.event_id] = ev.clip
            msgs[ev.event_id] = to_message(ev, snap)
        else:
            assert snap is not None and snap.width_px == 768  # the start's frame, at full size
    assert written == [tuple(ids)]  # one file for the three events
    # The snapshot went with each start: the ends that follow do not carry it again.
    assert all(m.snapshot is None for m in msgs.values())
    # An end whose start this writer never saw still carries something to show (a placeholder).
    orphan = _event(f"{9:032x}", EventPhase.END, 3.0, jobs[0].event.ts)
    _, snap = writer.process(EvidenceJob(orphan))
    assert snap is not None and snap.width_px == 8
    assert set(refs) == set(ids) and len({r.sha256 for r in refs.values() if r}) == 1
    # Each event's end tells a player where that event starts in the shared clip.
    offsets = [msgs[e].clip.event_offset_s for e in ids]  # type: ignore[union-attr]
    start = refs[ids[0]].start_pts_s  # type: ignore[union-attr]
    assert offsets == pytest.approx([1.0 - start, 1.6 - start, 2.6 - start], abs=0.11)
    ref = refs[ids[0]]
    assert ref is not None and Path(ref.path).is_file() and writer.stats.clips == 1
    assert 3.0 <= ref.duration_s <= 5.5  # ~0 .. 4.4 s: first pre roll to the last post roll
    with av.open(ref.path) as c:
        assert sum(1 for _ in c.decode(video=0)) > 20


def test_the_outbox_carries_the_shared_events_in_every_chunk_and_upgrades_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path, 1 << 20, chunk_bytes=1000)
    ob.close()
    with sqlite3.connect(path) as db:  # an outbox written by an agent from before shared clips
        db.execute("ALTER TABLE media DROP COLUMN event_ids")
    ob = Outbox(path, 1 << 20, chunk_bytes=1000)
    data = (CLIPS / "parking_lot_cars.mp4").read_bytes()[:2500]
    with ob.tx():
        ob.add_media(media_id="a" * 32, topic="t", station="s", camera="c", kind="clip", content_type="video/mp4",
                     sha256=hashlib.sha256(data).hexdigest(), data=data, event_id="1" * 32,
                     event_ids=["2" * 32, "3" * 32])  # fmt: skip
    chunks = [MediaChunk.model_validate_json(ob.chunk_payload(i)) for i in ob.items_after(0, 10)]
    assert len(chunks) == 3
    assert all(c.event_id == "1" * 32 and c.event_ids == ["2" * 32, "3" * 32] for c in chunks)
    with pytest.raises(ValueError, match="event_ids"):
        MediaChunk.model_validate({**chunks[0].model_dump(), "event_ids": ["not-hex"]})
