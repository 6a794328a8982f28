"""The station agent: one thread per camera, one inference batcher, one evidence+publish worker."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.batch import InferenceBatcher
from edge.camera import CameraRunner, RecordTap
from edge.check import Finding, check_clock, check_model, data_dirs
from edge.clips import write_clip
from edge.commands import CommandHandler, Jpeg, frame_jpeg
from edge.config import CameraConfig, StationConfig
from edge.cvthreads import run_opencv_serially
from edge.decodeslots import DecodeSlots
from edge.errors import XueliangError
from edge.events import EvidenceJob, EvidenceQueue
from edge.evidence import EvidenceWriter
from edge.factory import make_desk, make_detectors, make_source
from edge.gilswitch import shorten_gil_switch
from edge.link import StationLink, outbox_path
from edge.memory import tune_malloc
from edge.meters import AlertLatency
from edge.metrics import serve as serve_metrics
from edge.pipeline import CameraPipeline
from edge.publish import to_message
from edge.retention import MediaJanitor, outbox_held
from edge.sdnotify import SystemdNotifier
from edge.sources import VideoSource
from edge.types import CameraState, CameraStatus, ClipRef, EventPhase
from wire.link import CameraHealth, StationProblem

log = logging.getLogger(__name__)
STATS_EVERY_S = 30.0
STOP_BUDGET_S = 8.0  # SIGTERM to exit, all included (systemd's TimeoutStopSec is 15)
ENDED_GRACE_S = 20.0  # more, when the sources ended by themselves (``_shutdown``)
INFER_STALL_S = 30.0  # one detector call longer than this is a hung detector
DISK_EVERY_S = 30.0  # retention sweep and low-disk alarm
CLOCK_EVERY_S = 600.0
SPOOL_EVERY_S = 0.5  # long events' older packets go to disk this often (edge/spool.py)
Loader = Callable[[], StationConfig]


@dataclass
class CameraSlot:
    """One camera's runner with its own stop event and threads, so a reload restarts it alone."""

    runner: CameraRunner
    stop: threading.Event
    tap: RecordTap | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    started_mono: float = field(default_factory=time.monotonic)
    started_ts: float = field(default_factory=time.time)

    @property
    def alive(self) -> bool:
        return bool(self.threads) and self.threads[0].is_alive()


class StationAgent:
    def __init__(self, cfg: StationConfig, loader: Loader | None = None) -> None:
        self.cfg = cfg
        self.loader = loader  # reads the config again on SIGHUP (request_reload)
        self.stop = threading.Event()
        self._reload = threading.Event()
        self.reloads = 0
        self.notifier = SystemdNotifier()
        self.watchdog_pings = 0
        self._stalled_logged: list[str] = []
        self.problems: dict[str, list[StationProblem]] = {}  # source -> its current problems
        self.metrics_server: object | None = None
        self.malloc_tuned = tune_malloc()
        run_opencv_serially()
        shorten_gil_switch()
        detectors, self.precision = make_detectors(cfg)
        log.info("detector %s: %s (%s)", cfg.detector.model, self.precision.precision, self.precision.reason)
        self.batcher = InferenceBatcher(detectors, cfg.detector.max_batch, cfg.detector.max_wait_ms)
        self.detector = self.batcher.detector
        # Bounded: when evidence work falls behind, camera loops drop and count, never wait.
        self.evidence_q = EvidenceQueue(maxsize=256)
        self.evidence_dropped = 0
        self.writer = EvidenceWriter(Path(cfg.media.dir) if cfg.media.clips else None)
        self.latest: dict[str, object] = {}  # camera -> last decoded frame, for live snapshots
        # Where decoding.max_concurrent asks for it, a few cameras decode at a time, station-wide
        # (edge/decodeslots.py); like the detector, read at start and kept across reloads.
        self.decode_slots = DecodeSlots(cfg.decoding.slots) if cfg.decoding.slots else None
        self.slots: dict[str, CameraSlot] = {c.id: self._make_slot(c) for c in cfg.cameras}
        # Link to the centre (edge/link.py): durable outbox, acked delivery, stats, commands.
        cam_ids = [c.id for c in cfg.cameras]
        # Shared with the link: the evidence worker writes the first two stages, the link the rest.
        self.alert_latency = AlertLatency()
        self.link = StationLink(cfg.mqtt, cfg.outbox, cfg.station.id, cam_ids, self._link_stats,
                                latency=self.alert_latency)  # fmt: skip
        self.link.problems_fn = self.current_problems
        self.commands = CommandHandler(self.link, cfg.station.id, cam_ids, self._live_jpeg, self._recent_clip)
        self.link.on_command = self.commands.submit
        # Clips within the media quota; what the outbox still owes the centre is never deleted.
        m = cfg.media
        self.janitor = MediaJanitor(
            Path(m.dir), int(m.quota_mb * 2**20), m.alarm_pct,
            outbox_held(outbox_path(cfg.outbox, cfg.station.id)), fresh_s=2.0,
        )  # fmt: skip

    def _make_slot(self, cam: CameraConfig) -> CameraSlot:
        cfg = self.cfg
        stop = threading.Event()
        desk = make_desk(cfg, cam, cfg.media.clips)
        slot = self.batcher.slot()
        pipeline = CameraPipeline(cfg.station.id, cam, self.detector, slot, desk, cfg.station.timezone)
        source = make_source(cam, cam.realtime, desk.recorder, self.decode_slots)
        self._tap_latest(cam.id, source)
        tap = RecordTap(cam, desk.recorder, stop) if cam.record_source and desk.recorder is not None else None
        return CameraSlot(CameraRunner(cam, pipeline, source, self._enqueue, stop), stop, tap)

    def _start_slot(self, s: CameraSlot) -> None:
        cid = s.runner.cam.id
        s.threads = [threading.Thread(target=s.runner.run, name=f"cam-{cid}", daemon=True)]
        if s.tap is not None:
            s.threads.append(threading.Thread(target=s.tap.run, name=f"rec-{cid}", daemon=True))
        s.started_mono, s.started_ts = time.monotonic(), time.time()
        for t in s.threads:
            t.start()

    def cameras(self) -> list[CameraSlot]:
        return list(self.slots.values())

    @property
    def runners(self) -> list[CameraRunner]:
        return [s.runner for s in self.slots.values()]

    @property
    def taps(self) -> list[RecordTap]:
        return [s.tap for s in self.slots.values() if s.tap is not None]

    @property
    def pipelines(self) -> list[CameraPipeline]:
        return [r.pipeline for r in self.runners]

    def camera_status(self) -> list[CameraStatus]:
        """Per-camera state and rates, for the stats topic and the logs."""
        return [r.status() for r in self.runners]

    def run(self) -> None:
        self.commands.start()
        self.link.start()
        self.batcher.start()
        self._evidence_thread = threading.Thread(target=self._evidence_worker, name="evidence", daemon=True)
        self._evidence_thread.start()
        threading.Thread(target=self._spool_worker, name="spool", daemon=True).start()
        for s in self.slots.values():
            self._start_slot(s)
        self._start_metrics()
        threading.Thread(target=self._startup_checks, name="checks", daemon=True).start()
        log.info("station %s running %d camera(s)", self.cfg.station.id, len(self.slots))
        self.notifier.ready(f"{len(self.slots)} camera(s)")
        now = time.monotonic()
        next_stats, next_disk = now + STATS_EVERY_S, now
        ended = False
        while not self.stop.wait(0.5):
            now = time.monotonic()
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
            self._watchdog(now)
            if now >= next_disk:
                next_disk = now + DISK_EVERY_S
                self._disk_round()
            if now >= next_stats:
                next_stats += STATS_EVERY_S
                self._log_stats()
            if not any(s.alive for s in self.slots.values()):
                log.info("all cameras finished")
                ended = True
                break
        self._shutdown(ended)

    def _shutdown(self, ended: bool = False) -> None:
        """Bounded: cameras, then evidence, then the outbox (committed and closed) within STOP_BUDGET_S.

        When every source ended by itself (replayed files) no supervisor is waiting for the
        process to go: the evidence of the last events and the outbox get ENDED_GRACE_S more, so
        that a replay's clips reach the centre in this run rather than the next one."""
        t0 = time.monotonic()
        deadline = t0 + STOP_BUDGET_S + (ENDED_GRACE_S if ended else 0.0)
        log.info("station %s stopping", self.cfg.station.id)
        self.notifier.stopping()
        self.stop.set()
        for s in self.slots.values():
            s.stop.set()
        for s in self.slots.values():
            for t in s.threads:
                # A camera stuck in a blocking open is abandoned (daemon thread), never waited for.
                t.join(timeout=max(0.05, deadline - time.monotonic() - 5.0))
        while self.evidence_q.unfinished_tasks and time.monotonic() < deadline - 4.0:
            time.sleep(0.05)
        ev = getattr(self, "_evidence_thread", None)
        if ev is not None:
            ev.join(timeout=max(0.0, min(1.0, deadline - time.monotonic() - 4.0)))
        self.batcher.stop()
        self.commands.stop()
        # Acks for what is in flight may still come; the outbox keeps the rest on disk for next time.
        self.link.stop(
            flush_timeout_s=max(0.0, min(self.cfg.outbox.flush_timeout_s, deadline - time.monotonic() - 2.0))
        )
        server = self.metrics_server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        self._log_stats()
        log.info("station %s stopped in %.1f s", self.cfg.station.id, time.monotonic() - t0)

    def _enqueue(self, job: EvidenceJob) -> None:
        try:
            self.evidence_q.put_job(job)
        except queue.Full:
            self.evidence_dropped += 1

    def _spool_worker(self) -> None:
        """Moves what long events hold in the clip rings to disk, off the camera threads: a slow
        disk (an SD card under writeback) delays the spool, never decoding."""
        failed: set[str] = set()
        while not self.stop.wait(SPOOL_EVERY_S):
            try:
                runners = self.runners
            except RuntimeError:  # the cameras changed (a reload) while they were listed
                continue
            for r in runners:
                ring = r.pipeline.desk.recorder
                if ring is None or ring.spool is None:
                    continue
                try:
                    ring.spool_pending()
                except Exception:  # a bug must cost the spool of one camera, not the agent
                    if r.cam.id not in failed:
                        log.exception("camera %s: clip spool failed", r.cam.id)
                        failed.add(r.cam.id)

    def _evidence_worker(self) -> None:
        while True:
            try:
                job = self.evidence_q.get_job(timeout=0.5)
            except queue.Empty:
                # Done once stopping and no camera thread is left to hand over evidence. (A stopped
                # camera stays ONLINE in its status, so its state cannot tell: waiting for that kept
                # this thread, and through it the agent with every decoder and clip ring, for ever.)
                if self.stop.is_set() and not any(s.alive for s in self.slots.values()):
                    return
                continue
            try:
                event, snap = self.writer.process(job)
                if event.phase is EventPhase.START:
                    captured = event.ts.timestamp()
                    self.alert_latency.observe("raised", captured, job.raised_at)
                    self.alert_latency.observe("rendered", captured)
                # Hand-over to the link (bounded queue): the outbox commit happens on its thread.
                self.link.submit_event(to_message(event, snap))
                cut = self.writer.fresh_clip  # sent once, for every event it serves
                if event.clip is not None and cut is not None:
                    c = event.clip
                    self.link.submit_media_file(
                        c.path, c.sha256, camera=event.camera, kind="clip", content_type=c.content_type,
                        event_id=cut.events[0], event_ids=list(cut.events[1:]),
                    )  # fmt: skip
                    self.janitor.landed(c.path, c.size_bytes)  # the quota holds as clips land
            except Exception:
                log.exception("event %s could not be published", job.event.event_id)
            finally:
                self.evidence_q.task_done()

    def _log_stats(self) -> None:
        for st in self.camera_status():
            log.info(
                "camera %s: %s fps_in=%.1f fps_detected=%.1f decoded=%d detected=%d static=%d "
                "decode_errors=%d open_errors=%d reconnects=%d%s",
                st.camera,
                st.state.value,
                st.fps_in,
                st.fps_detected,
                st.frames_decoded,
                st.frames_detected,
                st.frames_skipped_static,
                st.decode_errors,
                st.open_errors,
                st.reconnects,
                f" last_error={st.last_error!r}" if st.last_error else "",
            )
        ps, bs, ob = self.link.counters, self.batcher.stats, self.link.figures()
        log.info(
            "link: published=%d acked=%d resent=%d refused=%d outbox=%d evidence_dropped=%d; "
            "inference: batches=%d images=%d max=%d",
            ps.published,
            ps.acked,
            ps.resent,
            ps.refused,
            ob.items,
            self.evidence_dropped,
            bs.batches,
            bs.images,
            bs.max_seen,
        )

    # -- runtime control: reload, watchdog, checks, metrics (docs/operations.md) -------------------

    def request_reload(self) -> None:
        """From a signal handler: the main loop reloads the config at its next turn."""
        self._reload.set()

    def _apply_reload(self) -> None:
        self.notifier.reloading()
        try:
            if self.loader is None:
                raise XueliangError("this agent was started without a config file to reload")
            new = self.loader()
        except XueliangError as exc:
            # Keep running on the old config; tell the centre the file on disk is broken.
            log.error("reload: config refused, keeping the running one: %s", exc)
            self._set_problems("config", [StationProblem(check="config", detail=str(exc)[:500])])
        else:
            self._set_problems("config", [])
            self.apply_config(new)
        self.notifier.ready(f"{len(self.slots)} camera(s)")

    def apply_config(self, new: StationConfig) -> dict[str, list[str]]:
        """Restart only the cameras whose settings changed; add and remove cameras. Other sections
        (mqtt, detector, decoding, outbox, media, metrics) take effect at the next restart."""
        diff: dict[str, list[str]] = {"kept": [], "restarted": [], "added": [], "removed": []}
        wanted = {c.id: c for c in new.cameras}
        for cid in [c for c in self.slots if c not in wanted]:
            self._stop_slot(self.slots.pop(cid))
            diff["removed"].append(cid)
        self.cfg.cameras = new.cameras
        for cid, cam in wanted.items():
            old = self.slots.get(cid)
            if old is not None and old.runner.cam == cam:
                diff["kept"].append(cid)
                continue
            if old is not None:
                self._stop_slot(old)
            self.slots[cid] = self._make_slot(cam)
            self._start_slot(self.slots[cid])
            diff["restarted" if old is not None else "added"].append(cid)
        ids = list(wanted)
        self.link.cameras[:] = ids
        self.commands.cameras = set(ids)
        rest_old = self.cfg.model_dump(exclude={"cameras"})
        rest_new = new.model_dump(exclude={"cameras"})
        later = sorted(k for k in rest_new if rest_new[k] != rest_old.get(k))
        self.reloads += 1
        log.info("reload: cameras kept %s, restarted %s, added %s, removed %s%s", diff["kept"], diff["restarted"],
                 diff["added"], diff["removed"],
                 f"; changes to {later} apply at the next restart" if later else "",
                 extra={"reload": diff})  # fmt: skip
        return diff

    def _stop_slot(self, s: CameraSlot) -> None:
        s.stop.set()
        for t in s.threads:
            t.join(timeout=5.0)
        self.latest.pop(s.runner.cam.id, None)

    def stalled_parts(self, now: float | None = None) -> list[str]:
        """Camera loops and workers that stopped making progress (empty: healthy)."""
        now = time.monotonic() if now is None else now
        out = [f"camera {cid}" for cid, s in self.slots.items()
               if s.alive and s.runner.state is not CameraState.ENDED and s.runner.stalled_s(now) > 0]  # fmt: skip
        busy = self.batcher.busy_since
        if (busy and now - busy > INFER_STALL_S) or (self.batcher._started and not self.batcher.alive):
            out.append("inference")
        ev = getattr(self, "_evidence_thread", None)
        if ev is not None and not ev.is_alive() and not self.stop.is_set():
            out.append("evidence")
        return out

    def _watchdog(self, now: float) -> None:
        """WATCHDOG=1 to systemd only while every part makes progress; a hung one stops the pings."""
        stalled = self.stalled_parts(now)
        if stalled != self._stalled_logged:
            if stalled:
                log.error("watchdog: no progress from %s; systemd's watchdog is no longer pinged", stalled,
                          extra={"stalled": stalled})  # fmt: skip
            else:
                log.info("watchdog: every part makes progress again")
            self._stalled_logged = stalled
        if not stalled and self.notifier.watchdog(now):
            self.watchdog_pings += 1

    def _startup_checks(self) -> None:
        """The checks of `xl-edge check` that the agent does not already do by running (cameras and
        the broker report through camera states and the link)."""
        try:
            self._set_problems("model", _problems(check_model(self.cfg.detector.model)))
            self._clock_round()
        except Exception:
            log.exception("start-up checks failed")

    def _clock_round(self) -> None:
        self._set_problems("clock", _problems([check_clock()]))

    def _disk_round(self) -> None:
        try:
            self.janitor.enforce()
            alarms = [StationProblem(check="media_quota" if "quota" in a else "disk_low", subject=self.cfg.media.dir,
                                     detail=a) for a in self.janitor.alarm()]  # fmt: skip
            for d in data_dirs(self.cfg):
                if d.exists() and not _writable(d):
                    alarms.append(StationProblem(check="disk", subject=str(d), detail="not writable"))
            self._set_problems("disk", alarms)
        except OSError:
            log.exception("retention: sweep failed")
        if time.monotonic() - getattr(self, "_clock_at", 0.0) > CLOCK_EVERY_S:
            self._clock_at = time.monotonic()
            threading.Thread(target=self._clock_round, name="clock", daemon=True).start()

    def _set_problems(self, source: str, problems: list[StationProblem]) -> None:
        before = self.problems.get(source, [])
        if problems != before:
            for p in problems:
                if p not in before:
                    log.warning(
                        "problem (%s) %s: %s", p.check, p.subject, p.detail, extra={"problem": p.check}
                    )
            if before and not problems:
                log.info("problems of %s cleared", source)
        self.problems[source] = problems

    def current_problems(self) -> list[StationProblem]:
        return [p for ps in list(self.problems.values()) for p in ps]

    def _start_metrics(self) -> None:
        m = self.cfg.metrics
        if m.port is None:
            return
        try:
            self.metrics_server = serve_metrics(self, m.host, m.port)
            log.info("metrics: http://%s:%d/metrics", m.host, m.port)
        except OSError as exc:
            log.error("metrics: cannot listen on %s:%d: %s", m.host, m.port, exc)
            self._set_problems("metrics", [StationProblem(check="metrics", subject=f"{m.host}:{m.port}",
                                                          detail=str(exc)[:500])])  # fmt: skip

    # -- link hooks (edge/link.py, edge/commands.py) --------------------------------------------

    def _tap_latest(self, cam_id: str, source: VideoSource) -> None:
        """Remember each camera's latest decoded frame (a reference; no copy, no lock)."""
        frames = source.frames

        def tapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            for df in frames(*args, **kwargs):
                self.latest[cam_id] = df
                yield df

        source.frames = tapped  # type: ignore[method-assign]

    def _recent_clip(self, cam_id: str, seconds: float) -> ClipRef | None:
        """A clip of the camera's last ``seconds`` (as much as its packet ring holds), written now."""
        for r in self.runners:
            rec = r.pipeline.desk.recorder
            if r.cam.id == cam_id and rec is not None:
                cut = rec.recent(uuid.uuid4().hex, seconds)
                return write_clip(cut, Path(self.cfg.media.dir) / "requested") if cut is not None else None
        return None

    def _live_jpeg(self, cam_id: str) -> Jpeg | None:
        df = self.latest.get(cam_id)
        return frame_jpeg(df.frame) if df is not None else None  # type: ignore[attr-defined]

    def _link_stats(self) -> tuple[list[CameraHealth], int, int]:
        cams = [
            CameraHealth(
                camera=st.camera,
                state=st.state.value,
                fps_in=st.fps_in,
                fps_detected=st.fps_detected,
                last_frame_ts=st.last_frame_ts,
                frames_decoded=st.frames_decoded,
                decode_errors=st.decode_errors,
                reconnects=st.reconnects,
                last_error=st.last_error[:500],
            )  # fmt: skip
            for st in self.camera_status()
        ]
        return cams, self.evidence_q.qsize(), self.evidence_dropped


def _problems(findings: list[Finding]) -> list[StationProblem]:
    return [StationProblem(check=f.check, subject=f.subject[:200], detail=(f"{f.detail} -> fix: {f.fix}")[:500])
            for f in findings if f.problem]  # fmt: skip


def _writable(d: Path) -> bool:
    return os.access(d, os.W_OK)
