"""A long event's packets wait on disk, not in memory, and make the same clip."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import av

from edge.clips import ClipRecorder, write_clip
from tests.conftest import CLIPS

CLIP = CLIPS / "parking_lot_person_bicycle_car.mp4"  # H.264, 12 fps, 38 s: remuxed, not transcoded


def _open_in(folder: Path) -> int:
    """Open files of this process under ``folder`` (unlinked spool segments included)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            n += os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
    return n


def _replay(recorders: list[ClipRecorder], begin_s: float, end_s: float, probe_s: float, out: Path) -> dict:
    """Push the clip's packets into every recorder with one event from ``begin_s`` to ``end_s``;
    returns what the recorders held at ``probe_s`` and the sha256 of the clip each wrote."""
    seen: dict = {"sizes": []}
    begun = ended = False
    with av.open(str(CLIP)) as c:
        s = c.streams.video[0]
        tb = float(s.time_base)
        first = None
        for pkt in c.demux(s):
            if pkt.dts is None or not pkt.size:
                continue
            first = pkt.dts if first is None else first
            t = (pkt.dts - first) * tb
            seen["sizes"].append((t, pkt.size))
            for r in recorders:
                r.push(pkt, t)
                r.spool_pending()  # the agent's spool thread, every 0.5 s
            if not begun and t >= begin_s:
                begun = True
                for r in recorders:
                    r.begin("e", t)
            if not ended and t >= end_s:
                ended = True
                for r in recorders:
                    r.end("e", t)
            if "held" not in seen and t >= probe_s:
                seen["held"] = [r.held_bytes() for r in recorders]
                seen["probe_t"] = t
        seen["sha"] = []
        for i, r in enumerate(recorders):
            r.flush()
            (cut,) = r.take_ready()
            ref = write_clip(cut, out / f"r{i}")
            assert ref is not None
            seen["sha"].append(ref.sha256)
    return seen


def test_a_long_events_packets_wait_on_disk_and_make_the_same_clip(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    in_ram = ClipRecorder(pre_s=2.0, post_s=2.0)
    spooled = ClipRecorder(pre_s=2.0, post_s=2.0, spool_dir=spool, ram_s=4.0)
    seen = _replay([in_ram, spooled], begin_s=3.0, end_s=30.0, probe_s=28.0, out=tmp_path)

    (ram_a, disk_a), (ram_b, disk_b) = seen["held"]
    t = seen["probe_t"]
    recent = sum(size for ts, size in seen["sizes"] if ts >= t - 4.0 - 1e-6)
    event = sum(size for ts, size in seen["sizes"] if 1.0 <= ts <= t)  # 3.0 - pre_s .. now
    assert disk_a == 0 and ram_a >= event > 2 * recent, "without a spool the whole event is in memory"
    assert ram_b <= recent and ram_b + disk_b == ram_a, "with one, only the last ram_s is"
    assert spooled.spool is not None and spooled.spool.stats.errors == 0 and spooled.spool.stats.bytes >= disk_b

    assert seen["sha"][0] == seen["sha"][1], "the clip from disk is byte for byte the clip from memory"
    assert _open_in(spool) >= 1
    del spooled
    assert _open_in(spool) == 0, "the spool's files are closed (their space freed) with the ring"


def test_a_spool_that_cannot_be_written_keeps_the_packets_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    in_ram = ClipRecorder(pre_s=2.0, post_s=2.0)
    broken = ClipRecorder(pre_s=2.0, post_s=2.0, spool_dir=blocker / "spool", ram_s=4.0)
    seen = _replay([in_ram, broken], begin_s=3.0, end_s=20.0, probe_s=18.0, out=tmp_path)
    assert broken.spool is not None and broken.spool.stats.errors > 0
    assert seen["held"][1] == (seen["held"][0][0], 0)
    assert seen["sha"][0] == seen["sha"][1] == hashlib.sha256((tmp_path / "r1" / "e.mp4").read_bytes()).hexdigest()


def test_the_spool_files_go_once_the_ring_no_longer_holds_a_long_events_packets(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    rec = ClipRecorder(pre_s=1.0, post_s=1.0, spool_dir=spool, ram_s=2.0)

    def packet(i: int) -> av.Packet:
        p = av.Packet(bytes([i % 256]) * 1000)
        p.pts = p.dts = i
        p.is_keyframe = i % 10 == 0  # 10 packets/s, a keyframe every second
        return p

    cuts = []
    for i in range(300):
        t = i / 10
        rec.push(packet(i), t)
        rec.spool_pending()
        if i == 20:
            rec.begin("e", t)
        if i == 140:
            assert rec.held_bytes() == (21_000, (140 - 10 - 20) * 1000)  # 2 s + 1 packet here, from 1.0 s on disk
            assert _open_in(spool) == 1
            rec.end("e", t)
        cuts += rec.take_ready()
    (cut,) = cuts
    assert len(cut.packets) == 141 and bytes(cut.packets[0]) == bytes([10]) * 1000  # 1.0 .. 15.0 s, read back
    assert rec.held_bytes()[1] == 0 and _open_in(spool) == 1, "the clip still reads its packets"
    del cut, cuts
    assert _open_in(spool) == 0, "the ring keeps nothing on disk: the file is gone while the camera runs on"


def test_a_spooled_clip_of_a_codec_the_browser_cannot_play_is_transcoded_like_one_from_memory(tmp_path: Path) -> None:
    """MS-MPEG4 (the campus clip) is decoded and encoded as H.264: the spooled packets go through
    the decoder just as the ones in memory do."""
    refs = []
    with av.open(str(CLIPS / "campus_pedestrians_vtest.avi")) as c:
        s = c.streams.video[0]
        packets = [p for p in c.demux(s) if p.size and p.dts is not None][:120]  # 12 s at 10 fps
        for i, spool in enumerate((None, tmp_path / "spool")):
            rec = ClipRecorder(pre_s=1.0, post_s=1.0, spool_dir=spool, ram_s=2.0)
            for p in packets:
                t = float(p.dts * s.time_base)
                rec.push(p, t)
                rec.spool_pending()
                if abs(t - 2.0) < 1e-6:
                    rec.begin("e", t)
                if abs(t - 10.0) < 1e-6:
                    rec.end("e", t)
            (cut,) = rec.take_ready()
            assert (rec.spool is None) or rec.spool.stats.packets > 0
            ref = write_clip(cut, tmp_path / f"r{i}")
            assert ref is not None and ref.content_type == "video/mp4"
            with av.open(ref.path) as out:
                refs.append((ref.duration_s, sum(1 for _ in out.decode(video=0)), out.streams.video[0].codec_context.name))
    assert refs[0] == refs[1] and refs[0][2] == "h264" and refs[0][1] >= 90


def test_the_spool_writes_outside_the_rings_lock_and_skips_what_the_ring_dropped_meanwhile(tmp_path: Path) -> None:
    """The camera thread keeps pushing while the spool thread writes: here, during the first write,
    the event ends and its clip is cut, so the ring drops the very packets being written."""
    rec = ClipRecorder(pre_s=1.0, post_s=1.0, spool_dir=tmp_path / "spool", ram_s=2.0)
    clock = [0.0]

    def push(seconds: float) -> None:
        for _ in range(round(seconds * 10)):
            t = clock[0]
            p = av.Packet(bytes(1000))
            p.pts = p.dts = round(t * 10)
            p.is_keyframe = round(t * 10) % 10 == 0  # 10 packets/s, a keyframe every second
            rec.push(p, t)
            clock[0] = round(t + 0.1, 1)

    push(0.5)
    rec.begin("e", 0.5)
    push(5.5)  # 0.0 .. 5.9 s held by the open event: 0.0 .. 3.8 are older than ram_s
    assert rec.held_bytes() == (60_000, 0)
    writes, calls = rec.spool.put, []  # type: ignore[union-attr]

    def put_while_the_camera_runs(p: av.Packet):  # type: ignore[no-untyped-def]
        if not calls:
            rec.end("e", clock[0])
            push(4.0)  # would deadlock if the lock were held here; the clip is cut, the ring trimmed
        calls.append(p)
        return writes(p)

    rec.spool.put = put_while_the_camera_runs  # type: ignore[method-assign,union-attr]
    moved = rec.spool_pending()
    (cut,) = rec.take_ready()
    assert moved == len(calls) >= 39 and len(cut.packets) == 71  # 0.0 .. 7.0 s (end + post_s), from memory
    ram, disk = rec.held_bytes()
    assert disk == 0 and ram == len(rec._ring) * 1000 <= 30_000, "the written packets were dropped, not put back"
