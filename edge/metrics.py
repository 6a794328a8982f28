"""Prometheus ``/metrics`` of the agent: a custom collector that reads the counters and fixed-bucket
histograms the stages keep anyway (``edge/meters.py``), on scrape only - nothing per frame.

Off unless ``metrics.port`` is set (the installed template sets 127.0.0.1:9108). Names and labels
are in docs/operations.md; deploy/grafana/xueliang.json charts them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from edge.meters import HistogramSnapshot
from edge.types import CameraState

if TYPE_CHECKING:
    from edge.agent import StationAgent


def histogram_family(
    name: str,
    doc: str,
    labels: list[str],
    series: Iterable[tuple[list[str], HistogramSnapshot]],
    scale: float = 1.0,
) -> HistogramMetricFamily:
    """Our per-bucket counts as Prometheus cumulative buckets (``scale`` converts units, e.g. ms -> s)."""
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, snap in series:
        cum = 0
        buckets = []
        for bound, n in zip((*snap.bounds, math.inf), snap.counts, strict=True):
            cum += n
            buckets.append(("+Inf" if bound == math.inf else repr(bound * scale), cum))
        fam.add_metric(values, buckets, snap.total * scale)
    return fam


class _Family:
    """A gauge or counter family filled from (labels, value) pairs."""

    def __init__(self, kind: type, name: str, doc: str, labels: list[str]) -> None:
        self.fam = kind(name, doc, labels=labels)

    def add(self, values: list[str], value: float) -> None:
        self.fam.add_metric(values, value)


class EdgeCollector(Collector):
    def __init__(self, agent: StationAgent) -> None:
        self.agent = agent
        self._prev: dict[int, tuple[float, int, int]] = {}  # runner id -> (t, decoded, detected)

    def collect(self) -> Iterator[Metric]:
        a = self.agent
        st = a.cfg.station.id
        now = time.monotonic()
        info = GaugeMetricFamily("xl_edge_info", "station agent", labels=["station"])
        info.add_metric([st], 1)
        yield info
        yield from self._cameras(now)
        yield from self._inference()
        yield from self._decoding()
        yield from self._link()
        yield from self._box(now)

    def _cameras(self, now: float) -> Iterator[Metric]:
        a = self.agent
        lab = ["camera"]
        g = lambda n, d: _Family(GaugeMetricFamily, n, d, lab)  # noqa: E731
        c = lambda n, d: _Family(CounterMetricFamily, n, d, lab)  # noqa: E731
        up = g("xl_edge_camera_online", "1 while the camera delivers frames")
        started = g("xl_edge_camera_started_timestamp_seconds", "when this camera's loop was (re)started")
        fps_in = g("xl_edge_camera_input_fps", "decoded frames per second since the previous scrape")
        fps_det = g(
            "xl_edge_camera_detect_fps", "frames through the detector per second since the previous scrape"
        )
        beat = g("xl_edge_camera_heartbeat_age_seconds", "since the camera loop last showed progress")
        decoded = c("xl_edge_frames_decoded", "frames decoded")
        processed = c("xl_edge_frames_processed", "frames after decimation to detect_fps")
        detected = c("xl_edge_frames_detected", "frames through the detector")
        static = c("xl_edge_frames_skipped_static", "frames the motion gate spared the detector")
        regions = c("xl_edge_frames_detected_regions", "frames detected on the region around motion only")
        dropped = c("xl_edge_frames_dropped", "frames lost: decode errors and clip-ring packets dropped")
        detect_dropped = c(
            "xl_edge_detect_frames_dropped",
            "detect frames dropped because analysis fell behind (oldest first)",
        )
        reconnects = c("xl_edge_camera_reconnects", "reconnects after a failure")
        jumps = c("xl_edge_camera_timestamp_jumps", "jumps of the stream's clock that media time was carried across")
        hw = g("xl_edge_camera_hw_decode", "1 while the camera decodes on the device stream.hwaccel names")
        hw_fallbacks = c(
            "xl_edge_camera_hw_decode_fallbacks", "connections that asked for a hardware decoder and decoded in software"
        )
        open_err = c("xl_edge_camera_open_errors", "connections that delivered no frame")
        events = c("xl_edge_events", "rule events (start, update, end)")
        ring_bytes = GaugeMetricFamily(
            "xl_edge_clip_ring_bytes", "packets the clip ring holds, in memory and (a long event's, "
            "older than media.ram_s) waiting on disk", labels=["camera", "where"],
        )  # fmt: skip
        spool_errors = c("xl_edge_clip_spool_errors", "clip-ring packets that could not go to disk (kept in memory)")
        # Dual-stream cameras only: the record stream feeds the clips and nothing else shows it.
        rec_up = g("xl_edge_record_online", "1 while the camera's record_source delivers packets")
        rec_packets = c("xl_edge_record_packets", "packets of the record_source put in the clip ring")
        rec_errors = c("xl_edge_record_errors", "record_source connections that failed or dropped")
        lags = []
        for cam in a.cameras():
            r = cam.runner
            s, p = r.source.stats, r.pipeline.stats
            v = [r.cam.id]
            t0, dec0, det0 = self._prev.get(id(r), (cam.started_mono, 0, 0))
            dt = max(now - t0, 1e-3)
            self._prev[id(r)] = (now, s.frames_decoded, p.detected)
            up.add(v, 1.0 if r.state is CameraState.ONLINE else 0.0)
            started.add(v, cam.started_ts)
            fps_in.add(v, (s.frames_decoded - dec0) / dt)
            fps_det.add(v, (p.detected - det0) / dt)
            beat.add(v, max(0.0, now - r.beat_mono))
            decoded.add(v, s.frames_decoded)
            processed.add(v, s.frames_emitted)
            detected.add(v, p.detected)
            static.add(v, p.skipped_static)
            regions.add(v, p.regions)
            ring = r.pipeline.desk.recorder
            dropped.add(v, s.decode_errors + (ring.stats.dropped if ring is not None else 0))
            if ring is not None:
                in_ram, on_disk = ring.held_bytes()
                ring_bytes.add_metric([r.cam.id, "memory"], in_ram)
                ring_bytes.add_metric([r.cam.id, "disk"], on_disk)
                spool_errors.add(v, ring.spool.stats.errors if ring.spool is not None else 0)
            detect_dropped.add(v, p.dropped)
            reconnects.add(v, r.reconnects)
            jumps.add(v, s.time_jumps)
            hw.add(v, 1.0 if s.hw_decoding else 0.0)
            hw_fallbacks.add(v, s.hw_fallbacks)
            open_err.add(v, r.open_errors)
            events.add(v, p.events)
            lags.append((v, s.lag_s.snapshot()))
            if cam.tap is not None:
                rec_up.add(v, 1.0 if cam.tap.online else 0.0)
                rec_packets.add(v, cam.tap.packets)
                rec_errors.add(v, cam.tap.errors)
        live = {id(cam.runner) for cam in a.cameras()}
        for k in [k for k in self._prev if k not in live]:
            del self._prev[k]
        for f in (up, started, fps_in, fps_det, beat, decoded, processed, detected, static, regions, dropped,
                  detect_dropped, reconnects, jumps, hw, hw_fallbacks, open_err, events, spool_errors,
                  rec_up, rec_packets, rec_errors):  # fmt: skip
            yield f.fam
        yield ring_bytes
        yield histogram_family("xl_edge_source_lag_seconds",
                               "how late frames were decoded against their real-time due time", lab, lags)  # fmt: skip

    def _inference(self) -> Iterator[Metric]:
        b = self.agent.batcher.stats
        yield histogram_family("xl_edge_inference_seconds", "one detector call (a batch)", [],
                               [([], b.infer_ms.snapshot())], scale=0.001)  # fmt: skip
        yield histogram_family("xl_edge_inference_batch_size", "frames per detector call", [],
                               [([], b.batch_size.snapshot())])  # fmt: skip
        for name, doc, value in (
            ("xl_edge_inference_batches", "detector calls", b.batches),
            ("xl_edge_inference_images", "frames through the detector", b.images),
            ("xl_edge_inference_errors", "failed detector calls", b.errors),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        choice = self.agent.precision
        yield GaugeMetricFamily("xl_edge_detector_int8", "1 when the detector runs the int8 build "
                                f"(detector.precision; {choice.reason})", value=float(choice.precision == "int8"))  # fmt: skip

    def _decoding(self) -> Iterator[Metric]:
        slots = self.agent.decode_slots
        yield GaugeMetricFamily("xl_edge_decode_slots", "cameras that may decode at once, station-wide "
                                "(decoding.max_concurrent; 0: no limit)", value=slots.size if slots else 0)  # fmt: skip
        yield CounterMetricFamily("xl_edge_decode_slot_waits", "software decodes that waited for a slot",
                                  value=slots.waits if slots else 0)  # fmt: skip

    def _link(self) -> Iterator[Metric]:
        a = self.agent
        k = a.link.counters
        o = a.link.figures()
        yield GaugeMetricFamily("xl_edge_link_connected", "1 while connected to the broker",
                                value=1.0 if a.link.connected else 0.0)  # fmt: skip
        yield histogram_family(
            "xl_edge_alert_latency_seconds",
            "from a new alert's frame capture to each station stage: raised by its rule, snapshot "
            "rendered, committed to the outbox, first sent to the broker",
            ["stage"],
            [([stage], snap) for stage, snap in a.alert_latency.snapshot().items()],
        )
        for name, doc, value in (
            ("xl_edge_link_published", "outbox items published (first time)", k.published),
            ("xl_edge_link_resent", "outbox items re-sent", k.resent),
            ("xl_edge_link_acked", "items acknowledged by the centre", k.acked),
            ("xl_edge_link_refused", "items refused at the hand-over (queue full, quota)", k.refused),
            ("xl_edge_link_rejected_by_centre", "items the centre refused for good", k.rejected_by_centre),
            ("xl_edge_outbox_dropped_events", "events dropped by the outbox quota", o.dropped_events),
            ("xl_edge_outbox_dropped_media", "media files dropped by the outbox quota", o.dropped_media),
            ("xl_edge_outbox_dead_letters", "items the centre refused, kept aside", o.dead_letters),
            ("xl_edge_evidence_dropped", "events dropped: evidence queue full", a.evidence_dropped),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        for name, doc, value in (
            ("xl_edge_outbox_items", "items not yet acknowledged by the centre", o.items),
            ("xl_edge_outbox_events", "events not yet acknowledged", o.events),
            ("xl_edge_outbox_bytes", "bytes owed to the centre", o.bytes),
            ("xl_edge_outbox_quota_bytes", "outbox quota", o.quota_bytes),
            ("xl_edge_outbox_oldest_age_seconds", "age of the oldest unacknowledged item", o.oldest_age_s),
            (
                "xl_edge_evidence_queue_depth",
                "events waiting for snapshot/clip rendering",
                a.evidence_q.qsize(),
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)

    def _box(self, now: float) -> Iterator[Metric]:
        a = self.agent
        r = a.janitor.stats if a.janitor is not None else None
        if r is not None:
            q = a.janitor.quota_bytes if a.janitor is not None else 0
            yield GaugeMetricFamily("xl_edge_media_bytes", "media dir (clips) size", value=r.bytes)
            yield GaugeMetricFamily(
                "xl_edge_media_held_bytes", "of which not yet acknowledged", value=r.held_bytes
            )
            yield GaugeMetricFamily("xl_edge_media_quota_bytes", "media dir quota", value=q)
            yield CounterMetricFamily(
                "xl_edge_media_deleted_files", "clips deleted by retention", value=r.deleted_files
            )
            yield CounterMetricFamily(
                "xl_edge_media_deleted_bytes", "bytes deleted by retention", value=r.deleted_bytes
            )
        probs = GaugeMetricFamily(
            "xl_edge_problem", "1 per open problem of the box (xl-edge check)", labels=["check"]
        )
        kinds: dict[str, int] = {}
        for p in a.current_problems():
            kinds[p.check] = kinds.get(p.check, 0) + 1
        for kind, n in sorted(kinds.items()):
            probs.add_metric([kind], n)
        yield probs
        yield GaugeMetricFamily("xl_edge_stalled_parts", "camera loops or the detector without progress "
                                "(the systemd watchdog is not pinged while > 0)", value=len(a.stalled_parts(now)))  # fmt: skip
        yield CounterMetricFamily(
            "xl_edge_watchdog_pings", "WATCHDOG=1 sent to systemd", value=a.watchdog_pings
        )
        yield CounterMetricFamily("xl_edge_config_reloads", "SIGHUP reloads applied", value=a.reloads)


def serve(agent: StationAgent, host: str, port: int) -> Any:
    """Start the HTTP server thread (daemon); returns the server (``shutdown()`` to stop)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(agent))
    ProcessCollector(registry=registry)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
