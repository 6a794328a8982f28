"""Event desk of one camera: publishes a start at once (the operator sees the alert with no added
delay), then, if a better frame of the object shows within ``snapshot_window_s``, an update carrying
that best snapshot; asks the clip recorder for the pre/post window, and hands evidence jobs to the
writer in order (start before update before end; an end waits for its clip)."""

from __future__ import annotations

import dataclasses
import itertools
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import av

from edge.clips import ClipCut, ClipRecorder
from edge.sources import DecodedFrame
from edge.types import Event, EventPhase, Track


@dataclass(frozen=True)
class EvidenceJob:
    """Work for the evidence writer: render a frame (start, a better update), write a clip (end)."""

    event: Event
    frame: av.VideoFrame | None = None  # the frame to render (start, a better update)
    snap_box_norm: tuple[float, float, float, float] | None = None
    snap_score: float = 0.0
    clip: ClipCut | None = None
    raised_at: float = field(default_factory=time.time)  # wall clock, when the desk handed it over


class EvidenceQueue(queue.PriorityQueue):
    """The evidence writer's queue, in two lanes: a new alert (its start: one snapshot to render)
    goes ahead of updates and ends, whose clip writes take tens of milliseconds each, so that one
    camera's clip never holds another camera's alert back. Each lane keeps its order, and an event's
    start is queued before its update and end, so those still follow it."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._seq = itertools.count()  # ties within a lane: first in, first out (jobs never compare)

    def put_job(self, job: EvidenceJob) -> None:
        """Queue without waiting; queue.Full when it is full."""
        lane = 0 if job.event.phase is EventPhase.START else 1
        self.put_nowait((lane, next(self._seq), job))

    def get_job(self, timeout: float) -> EvidenceJob:
        """The next job; queue.Empty after ``timeout`` seconds without one."""
        return self.get(timeout=timeout)[2]


@dataclass
class _Best:
    event: Event
    frame: av.VideoFrame
    box: tuple[float, float, float, float]
    score: float
    deadline_s: float
    improved: bool = False


@dataclass
class DeskStats:
    started: int = 0
    ended: int = 0
    clips_cut: int = 0


@dataclass
class EventDesk:
    snapshot_window_s: float = 1.0
    recorder: ClipRecorder | None = None
    mono_clock: bool = False  # the record stream is a second connection: clips run on wall time
    stats: DeskStats = field(default_factory=DeskStats)
    _best: dict[str, _Best] = field(default_factory=dict)
    _held_end: dict[str, Event] = field(default_factory=dict)
    _early_cut: dict[str, ClipCut] = field(default_factory=dict)

    def handle(self, events: Sequence[Event], df: DecodedFrame, tracks: Sequence[Track]) -> list[EvidenceJob]:
        jobs: list[EvidenceJob] = []
        if self._best:
            self._improve(df, tracks, jobs)
        t = df.mono_s if self.mono_clock else df.pts_s
        for ev in events:
            if ev.phase is EventPhase.START:
                self.stats.started += 1
                best = _Best(ev, df.frame, ev.xyxy_norm, ev.score, df.pts_s + self.snapshot_window_s)
                if self.recorder is not None:
                    self.recorder.begin(ev.event_id, t)
                jobs.append(EvidenceJob(ev, df.frame, ev.xyxy_norm, ev.score))
                if self.snapshot_window_s > 0:
                    self._best[ev.event_id] = best
            elif ev.phase is EventPhase.UPDATE:
                if ev.event_id not in self._best:
                    jobs.append(EvidenceJob(ev))
            else:
                self.stats.ended += 1
                if ev.event_id in self._best:
                    self._release(self._best.pop(ev.event_id), jobs)
                if self.recorder is None or ev.event_id in self._early_cut:
                    jobs.append(EvidenceJob(ev, clip=self._early_cut.pop(ev.event_id, None)))
                else:
                    self._held_end[ev.event_id] = ev
                    self.recorder.end(ev.event_id, t)
        if self.recorder is not None:
            self._collect_clips(jobs)
        return jobs

    def finish(self) -> list[EvidenceJob]:
        """The stream ended: flush snapshots, cut the clips with what there is, release ends."""
        jobs: list[EvidenceJob] = []
        for b in self._best.values():
            self._release(b, jobs)
        self._best.clear()
        if self.recorder is not None:
            self.recorder.flush()
            self._collect_clips(jobs)
        for ev in self._held_end.values():
            jobs.append(EvidenceJob(ev, clip=self._early_cut.pop(ev.event_id, None)))
        self._held_end.clear()
        return jobs

    def _improve(self, df: DecodedFrame, tracks: Sequence[Track], jobs: list[EvidenceJob]) -> None:
        for eid in list(self._best):
            b = self._best[eid]
            for tr in tracks:
                if tr.track_id == b.event.track_id and tr.score > b.score:
                    b.frame, b.box, b.score, b.improved = df.frame, tr.xyxy_norm, tr.score, True
            if df.pts_s >= b.deadline_s:
                self._release(self._best.pop(eid), jobs)

    @staticmethod
    def _release(b: _Best, jobs: list[EvidenceJob]) -> None:
        """The window closed: an update with the better snapshot, if a better frame came."""
        if b.improved:
            update = dataclasses.replace(b.event, phase=EventPhase.UPDATE)
            jobs.append(EvidenceJob(update, b.frame, b.box, b.score))

    def _collect_clips(self, jobs: list[EvidenceJob]) -> None:
        assert self.recorder is not None
        for cut in self.recorder.take_ready():
            self.stats.clips_cut += 1
            for eid in cut.events:  # a shared clip: every member's end carries it
                ev = self._held_end.pop(eid, None)
                if ev is None:
                    self._early_cut[eid] = cut  # cut at max_clip_s; the end comes later
                else:
                    jobs.append(EvidenceJob(ev, clip=cut))
