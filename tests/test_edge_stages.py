"""Stages on their own: motion gate, detect schedule, batcher, backoff, clip ring, config."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime

import av
import cv2
import numpy as np
import pytest

from edge.batch import DirectInference, InferenceBatcher
from edge.camera import Backoff
from edge.clips import ClipRecorder
from edge.config import CameraConfig, StationConfig
from edge.detect import build_detector
from edge.events import EventDesk, EvidenceJob, EvidenceQueue
from edge.models import resolve_model
from edge.motion import DetectSchedule, MotionGate
from edge.pipeline import CameraPipeline
from edge.sources import DecodedFrame, VideoSource
from edge.types import Event, EventPhase, RuleKind, Track
from tests.conftest import CLIPS, PHOTOS


def _scene(square_x: int | None = None, brightness: int = 0) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.integers(90, 110, (100, 160))).astype(np.int16) + brightness
    if square_x is not None:
        img[40:60, square_x : square_x + 12] = 230
    return np.clip(img, 0, 255).astype(np.uint8)


def test_motion_gate_static_moving_recalibrate_and_mask() -> None:
    gate = MotionGate(frame_height_px=100)
    assert gate.moving_gray(_scene()) is True  # the first frame is always looked at
    assert not any(gate.moving_gray(_scene()) for _ in range(5))
    assert gate.moving_gray(_scene(square_x=20)) is True
    assert gate.moving_gray(_scene(brightness=120)) is False  # lights on: reset, not motion
    assert gate.stats.recalibrations == 1
    masked = MotionGate(
        frame_height_px=100, mask_polygons_norm=[[(0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0)]]
    )
    masked.moving_gray(_scene())
    assert masked.moving_gray(_scene(square_x=10)) is False  # motion only under the mask
    assert masked.moving_gray(_scene(square_x=100)) is True


def test_motion_gate_boxes_each_thing_that_moves_and_leaves_out_grain() -> None:
    gate = MotionGate(frame_height_px=100)
    still = _scene()
    gate.moving_gray(still)
    frame = still.copy()
    frame[10:22, 10:20] = 230  # one thing at the top left
    frame[70:85, 130:145] = 230  # another at the bottom right
    frame[50, 80] = frame[30, 120] = 230  # single changed pixels: sensor grain
    assert gate.moving_gray(frame) is True
    boxes = sorted(gate.boxes_norm)
    assert len(boxes) == 2, boxes
    # Each box is around its own thing (the gate's blur spreads an edge by a pixel or two).
    assert boxes[0][0] <= 10 / 160 and boxes[0][2] >= 20 / 160 and boxes[0][2] < 0.2
    assert boxes[1][0] > 0.75 and boxes[1][1] <= 0.7 and boxes[1][3] >= 0.85
    # The box around all motion still spans both (blob boxes may stand a joining pixel wider).
    px = 1.5 / 160
    assert gate.box_norm is not None and gate.box_norm[0] <= boxes[0][0] + px
    assert gate.box_norm[2] >= boxes[1][2] - px
    assert gate.moving_gray(still) is False and gate.boxes_norm == []  # gone: no boxes left over


def test_motion_gate_on_a_real_clip_skips_the_empty_lot() -> None:
    # parking_lot_cars.mp4: empty lot for the first ~4.5 s, a car drives in at ~5 s.
    gate = MotionGate()
    flags = []
    with av.open(str(CLIPS / "parking_lot_cars.mp4")) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= 75:  # 6 s at 12.5 fps
                break
            flags.append(gate.moving(frame))
    assert sum(flags[1:50]) <= 3  # empty lot: almost never
    assert any(flags[60:75])  # the car


def test_detect_schedule_refresh_rates() -> None:
    s = DetectSchedule(refresh_s=1.0, idle_refresh_s=10.0)
    assert s.due(0.0, motion=False, tracking=False)  # first: idle refresh is due
    assert not s.due(0.5, motion=False, tracking=True)
    assert s.due(1.0, motion=False, tracking=True)  # tracked objects: re-detected every second
    assert s.due(5.2, motion=True, tracking=False)
    assert not s.due(9.0, motion=False, tracking=False)
    assert s.due(15.2, motion=False, tracking=False)


@pytest.fixture(scope="module")
def fastestdet():
    return build_detector(resolve_model("fastestdet_352"), score_threshold=0.3, threads=1)


def test_batcher_gives_the_same_detections_as_single_calls(fastestdet) -> None:
    img = cv2.imread(str(PHOTOS / "rural_person_dog_horse.jpg"))
    geo = fastestdet.geometry(img.shape[1], img.shape[0])
    small = cv2.resize(img, (geo.resized_w, geo.resized_h))
    expected = DirectInference(fastestdet).infer(small)
    assert len(expected) > 0
    batcher = InferenceBatcher(fastestdet, max_batch=4, max_wait_ms=200)
    batcher.start()
    results = [None] * 4
    slots = [batcher.slot() for _ in range(4)]
    go = threading.Barrier(4)

    def cam(i: int) -> None:
        go.wait()
        results[i] = slots[i].infer(small)

    threads = [threading.Thread(target=cam, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # A frame's crops go in as one request and come back in their order, sized as they were.
    crop = small[: small.shape[0] // 2 // 32 * 32 or 32, : small.shape[1] // 2 // 32 * 32 or 32]
    many = slots[0].infer_many([crop, small, crop])
    batcher.stop()
    for r in results:
        assert r is not None and np.allclose(r.xyxy_norm, expected.xyxy_norm, atol=1e-4)
        assert list(r.class_id) == list(expected.class_id)
    assert batcher.stats.images == 4 + 3 and batcher.stats.max_seen >= 2
    alone = DirectInference(fastestdet).infer_many([crop, small, crop])
    assert len(many) == 3 and np.allclose(many[1].xyxy_norm, expected.xyxy_norm, atol=1e-4)
    for a, b in zip(many, alone, strict=True):
        assert np.allclose(a.xyxy_norm, b.xyxy_norm, atol=1e-4) and list(a.class_id) == list(b.class_id)


def test_unknown_providers_fall_back_to_cpu() -> None:
    det = build_detector(
        resolve_model("fastestdet_352"), providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    )
    assert det.session.get_providers() == ["CPUExecutionProvider"]


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.take() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.take() == 0.5
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(2.0, 1.0)


class _P:
    """A stand-in packet: the ring only reads ``is_keyframe``."""

    def __init__(self, key: bool) -> None:
        self.is_keyframe = key


def test_clip_ring_cuts_from_the_keyframe_before_pre_roll_to_post_roll() -> None:
    rec = ClipRecorder(pre_s=2.0, post_s=1.0)
    pkts = {}
    for i in range(100):  # 10 packets per second, a keyframe every second
        t = i / 10
        pkts[t] = _P(i % 10 == 0)
        rec.push(pkts[t], t)  # type: ignore[arg-type]
        if i == 45:
            rec.begin("e", t)  # start 4.5 -> pre-roll from 2.5 -> keyframe at 2.0
        if i == 60:
            rec.end("e", t)  # end 6.0 -> post-roll to 7.0
    (cut,) = rec.take_ready()
    assert cut.start_t_s == 2.0 and len(cut.packets) == 51  # 2.0 .. 7.0
    assert cut.packets[0] is pkts[2.0]
    # The ring keeps only the pre-roll (whole GOPs) when nothing is open.
    assert 2.0 <= rec._newest - rec._ring[0].t_s <= 3.0


def test_rules_in_config_are_typed_and_checked() -> None:
    cfg = StationConfig.model_validate(
        {
            "station": {"id": "s"},
            "cameras": [
                {
                    "id": "c",
                    "source": "x.mp4",
                    "profile": "moving",
                    "zones": [{"id": "z", "points": [[0, 0], [1, 0], [1, 1]]}],
                    "rules": [
                        {"id": "a", "zone": "z"},
                        {
                            "id": "b",
                            "kind": "line_crossing",
                            "line": [[0.1, 0.1], [0.1, 0.9]],
                            "direction": "a_to_b",
                        },
                        {
                            "id": "c",
                            "kind": "crowd",
                            "zone": "z",
                            "min_count": 4,
                            "schedule": ["19:00-06:00"],
                        },
                    ],
                }
            ],
        }
    )
    kinds = [r.kind for r in cfg.cameras[0].rules]
    assert kinds == ["intrusion", "line_crossing", "crowd"]
    with pytest.raises(ValueError, match="schedule"):
        StationConfig.model_validate(
            {
                "station": {"id": "s"},
                "cameras": [
                    {
                        "id": "c",
                        "source": "x.mp4",
                        "zones": [{"id": "z", "points": [[0, 0], [1, 0], [1, 1]]}],
                        "rules": [{"id": "a", "kind": "loitering", "zone": "z", "schedule": ["25:00-06:00"]}],
                    }
                ],
            }
        )


def test_event_desk_starts_at_once_updates_with_the_best_snapshot_then_ends_with_its_clip() -> None:
    frames = [av.VideoFrame(32, 32, "yuv420p") for _ in range(12)]
    now = datetime.now(UTC)

    def ev(phase: EventPhase, t: float) -> Event:
        return Event(
            "e" * 32,
            "s",
            "c",
            "r",
            RuleKind.INTRUSION,
            "z",
            "person",
            0.5,
            (0.1, 0.1, 0.2, 0.3),
            7,
            t,
            now,
            phase=phase,
        )

    def tr(score: float) -> Track:
        return Track(7, 0, score, (0.1, 0.1, 0.2, 0.3), 3, 3)

    rec = ClipRecorder(pre_s=0.0, post_s=0.4)
    desk = EventDesk(snapshot_window_s=1.0, recorder=rec)
    scores = [0.5, 0.6, 0.9, 0.7, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    out = []
    for i, f in enumerate(frames):
        t = round(i * 0.2, 6)
        rec.push(_P(True), t)  # type: ignore[arg-type]
        events = [ev(EventPhase.START, t)] if i == 0 else [ev(EventPhase.END, t)] if i == 8 else []
        for job in desk.handle(events, DecodedFrame(f, t, now), [tr(scores[i])]):
            out.append((t, job))
    phases = [(t, j.event.phase) for t, j in out]
    # Start with no delay; at the end of the 1 s window an update with the best frame of that second.
    assert phases == [(0.0, EventPhase.START), (1.0, EventPhase.UPDATE), (2.0, EventPhase.END)]
    assert out[0][1].frame is frames[0]
    update = out[1][1]
    assert update.frame is frames[2] and update.snap_score == 0.9
    end = out[2][1]
    assert end.clip is not None and end.clip.start_t_s == 0.0 and len(end.clip.packets) == 11  # 0 .. 2.0 s


@pytest.mark.parametrize(("profile", "all_detected"), [("moving", True), ("fixed", False)])
def test_moving_profile_detects_at_a_fixed_rate_without_the_gate(fastestdet, profile, all_detected) -> None:
    cam = CameraConfig(id="c", source=str(CLIPS / "parking_lot_cars.mp4"), profile=profile, detect_fps=5)
    pipe = CameraPipeline("s", cam, fastestdet, DirectInference(fastestdet))
    for df in VideoSource(cam.source, 5, realtime=False).frames():
        if df.pts_s > 4.0:  # the empty lot
            break
        pipe.process(df)
    assert (pipe.gate is None) is all_detected
    assert (pipe.stats.detected == pipe.stats.frames) is all_detected


def test_event_desk_sends_no_update_when_no_better_frame_comes() -> None:
    now = datetime.now(UTC)
    ev = Event(
        "f" * 32, "s", "c", "r", RuleKind.INTRUSION, "z", "person", 0.8, (0.1, 0.1, 0.2, 0.3), 3, 0.0, now
    )
    desk = EventDesk(snapshot_window_s=0.5)
    frames = [av.VideoFrame(32, 32, "yuv420p") for _ in range(6)]
    jobs = []
    for i, f in enumerate(frames):
        tracks = [Track(3, 0, 0.7, (0.1, 0.1, 0.2, 0.3), 3, 3)]
        jobs += desk.handle([ev] if i == 0 else [], DecodedFrame(f, i * 0.2, now), tracks)
    assert [j.event.phase for j in jobs] == [EventPhase.START] and jobs[0].frame is frames[0]


def test_evidence_queue_puts_new_alerts_ahead_of_clip_writes_and_keeps_each_lane_in_order() -> None:
    now = datetime.now(UTC)

    def job(eid: str, phase: EventPhase) -> EvidenceJob:
        return EvidenceJob(Event(eid, "s", "c", "r", RuleKind.INTRUSION, "z", "person", 0.8, (0.1, 0.1, 0.3, 0.5),
                                 1, 0.0, now, phase=phase))  # fmt: skip

    q = EvidenceQueue(maxsize=5)
    for eid, phase in [("a", EventPhase.END), ("b", EventPhase.UPDATE), ("c", EventPhase.START),
                       ("c", EventPhase.END), ("d", EventPhase.START)]:  # fmt: skip
        q.put_job(job(eid, phase))
    with pytest.raises(queue.Full):
        q.put_job(job("e", EventPhase.START))
    order = [(j.event.event_id, j.event.phase) for j in (q.get_job(0.1) for _ in range(5))]
    assert order == [("c", EventPhase.START), ("d", EventPhase.START), ("a", EventPhase.END),
                     ("b", EventPhase.UPDATE), ("c", EventPhase.END)]  # fmt: skip
    with pytest.raises(queue.Empty):
        q.get_job(0.01)
