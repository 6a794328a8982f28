"""scripts/bench: Xueliang's edge pipeline against the naive loop and the ceilings, one run, one
process tree, on this machine. Prints a table and a final ``RESULT key=value ...`` line."""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import yaml

from edge.detect import build_detector
from edge.models import REPO_ROOT, ResolvedModel, resolve_model
from edge.precision import cpu_model
from xltools.bench import agreement, ceilings, cpuparts, int8, naive, settle, stages, workloads, xueliang
from xltools.bench.ramp import ramp

LABELS = {"quiet": ["car", "truck", "bus"], "busy": ["person"], "main": ["car", "truck", "bus"]}
# Where the ramps start without an earlier full run: the counts measured on the 2-core dev box
# (docs/performance.md). A full run writes its own counts to var/bench/last.json for the next runs.
LAST = REPO_ROOT / "var" / "bench" / "last.json"
# Where the ramps start when this machine has no full run of its own: counts as a share of the
# ceilings, from full runs on two 2-core machines (an AMD EPYC and a slower Xeon; docs/performance.md).
# Naive: of the square-input inference ceiling; Xueliang: of the inference ceiling at its own input
# shape (quiet, busy) and of the decode ceiling (main).
SEED_SHARE = {
    "naive": {"quiet": 0.26, "busy": 0.26, "main": 0.15},
    "xueliang": {"quiet": 0.8, "busy": 0.37, "main": 0.5},
}


def machine_id() -> str:
    return f"{cpu_model()} x{os.cpu_count()}"


def seeds_for(busy_cams: float, square_cams: float, decode_cams: float) -> dict[str, dict[str, int]]:
    """This machine's last full run's counts, else counts estimated from its ceilings."""
    if LAST.is_file():
        last = json.loads(LAST.read_text())
        if last.get("machine") == machine_id():
            return last["sustained"]
    base = {"naive": {"quiet": square_cams, "busy": square_cams, "main": decode_cams},
            "xueliang": {"quiet": busy_cams, "busy": busy_cams, "main": decode_cams}}  # fmt: skip
    return {
        c: {w: max(1, round(base[c][w] * k)) for w, k in shares.items()} for c, shares in SEED_SHARE.items()
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet_box(quiet_s: float) -> None:
    """Each probe on a quiet box: what the previous one left behind must not count against it."""
    waited, busy = settle.wait_quiet(timeout_s=quiet_s)
    if waited >= quiet_s:
        log(f"  (the box stayed {busy:.0f}% busy for {waited:.0f} s before this probe)")


def _naive_probe(path: Path, seconds: float, quiet_s: float):
    def probe(n: int):
        _quiet_box(quiet_s)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = naive.run_naive(path, n, seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (
            (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            / (time.monotonic() - t0)
            * 100
        )
        worst = min(c["fps_in"] for c in r["per_camera"])
        log(f"  naive    n={n:3d} sustained={r['sustained']!s:5} min_fps_in={worst:.1f} "
            f"lag_p99={max(c['lag_p99_s'] for c in r['per_camera']):.2f}s cpu={cpu:.0f}%")  # fmt: skip
        return r["sustained"], {"cpu_pct": cpu}

    return probe


def _ours_probe(path: Path, fps: float, seconds: float, warmup: float, broker_port: int, db: Path, work: Path,
                labels: list[str], stagger_s: float, settle_s: float, quiet_s: float,
                others: dict[str, int], record: Path | None = None):  # fmt: skip
    def probe(n: int):
        _quiet_box(quiet_s)
        p = xueliang.run_xueliang(path, n, seconds, broker_port, db, work, labels, warmup_s=warmup,
                                  stagger_s=stagger_s, settle_s=settle_s, others=others, record=record)  # fmt: skip
        ok = p.sustained(fps)
        log(f"  xueliang n={n:3d} sustained={ok!s:5} min_fps_in={min(p.fps_in):.1f} lag_p99={p.lag_p99_s:.2f}s "
            f"detect_on_motion={p.detect_ratio:.2f} alerts={p.alerts} latency_p99={p.latency_p99_ms:.0f}ms "
            f"cpu={p.cpu_pct:.0f}% infer_calls/s={p.infer_calls_per_s:.1f} batches={p.batch_hist} "
            f"alert_p99_by_stage={xueliang.stage_summary(p.alert_stage_p99_ms)}"
            + (f" hw_decode={p.hw_decoding}/{n}" if p.hw_decoding else "")
            + f" cpu_by_part: {cpuparts.summary(p.cpu_parts)}")  # fmt: skip
        return ok, p

    return probe


def _rss_per_camera(path: Path, cameras: int, seconds: float, broker_port: int, work: Path) -> float:
    """Peak RSS of a real `xl-edge run` over ``cameras`` 1080p cameras with a 10 s pre-event buffer."""
    cfg = xueliang.station_config(path, cameras, broker_port, work, LABELS["main"]).model_dump(mode="json")
    cfg["media"]["pre_s"] = 10.0
    cfg_path = work / "rss.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    peak_kb = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return peak_kb / 1024.0 / cameras


def _prepare(names: list[str], fp32: Path | None) -> None:
    """A machine's first run generates the workloads and quantizes the model (about 70 s on one
    core): two processes make them side by side. Later runs find them cached."""
    todo = [(workloads.ensure, workloads.WORKLOADS[n]) for n in dict.fromkeys([*names, "main"])
            if not workloads.WORKLOADS[n].path.is_file()]  # fmt: skip
    if fp32 is not None and not int8.cached_path(fp32).is_file():
        todo.insert(0, (int8.build_int8, fp32))  # the longest first
    if not todo:
        return
    what = ["the int8 model" if isinstance(arg, Path) else f"the {arg.name} workload" for _, arg in todo]
    log(f"preparing, once per machine: {', '.join(what)} ...")
    with ProcessPoolExecutor(
        max_workers=min(2, len(todo)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        for f in [pool.submit(fn, arg) for fn, arg in todo]:
            f.result()


def _int8(
    fp32: ResolvedModel, infer_s: float, fp32_best: dict, batches, threads, per_clip: int, hw: tuple[int, int]
) -> tuple[float, float]:
    det = build_detector(fp32)
    # Built where the agent looks for it (as scripts/build-int8 does), with its build record, so
    # that the Xueliang contender's default (detector.precision: auto) can take it where it pays.
    q = int8.build_int8(fp32.path, REPO_ROOT / "models" / (fp32.spec.int8_file or "yolox_nano_int8.onnx"))
    qdet = build_detector(ResolvedModel(fp32.spec, q, fp32.labels))
    photos = sorted(glob.glob(str(workloads.CLIPS.parent / "photos" / "*.jpg")))
    imgs = [cv2.imread(p) for p in photos] + int8.sample_frames(int8.EVAL_CLIPS, per_clip, offset=3)
    match, _ = agreement.match_fraction([det.detect_bgr(i) for i in imgs], [qdet.detect_bgr(i) for i in imgs])
    q_inf = ceilings.inference_only(q, infer_s, batches, threads, hw)
    # The two sweeps ran a minute apart; on a shared box that alone moved the ratio by +-20%. Both
    # best settings again, in alternating rounds, best of each.
    best = {fp32.path: fp32_best, q: q_inf}
    ips = {m: r["best_ips"] for m, r in best.items()}
    for _ in range(2):
        for m, r in best.items():
            again = ceilings.inference_only(m, infer_s, (r["best_batch"],), threads, hw,
                                            settings=[(r["best_sessions"], r["best_threads"])])["best_ips"]  # fmt: skip
            ips[m] = max(ips[m], again)
    speedup = ips[q] / ips[fp32.path]
    int8.write_record(q, fp32.path, match, speedup)
    return speedup, match


DETECT_FPS = 5.0  # inferences a second each busy camera needs (../shared/bench/README.md)


@dataclass
class Ceilings:
    dec_fps: float  # 1080p25 frames/s, decode only
    inf: dict  # inference only at the pipeline's busy input shape (ceilings.inference_only)
    inf_sq: dict  # the same at the model's own 416x416

    @property
    def main_cams(self) -> float:
        """Main-stream cameras the decode-only ceiling allows."""
        return self.dec_fps / workloads.WORKLOADS["main"].fps

    @property
    def busy_cams(self) -> float:
        """Busy cameras (DETECT_FPS inferences/s each) the 416x416 inference ceiling allows."""
        return self.inf_sq["best_ips"] / DETECT_FPS

    @property
    def busy_cams_own(self) -> float:
        """The same at the pipeline's own input shape."""
        return self.inf["best_ips"] / DETECT_FPS

    def log(self, busy_hw: tuple[int, int]) -> None:
        log(f"  decode-only 1080p25: {self.dec_fps:.0f} frames/s = {self.main_cams:.1f} cameras")
        shapes = ((f"{busy_hw[1]}x{busy_hw[0]}", self.inf, self.busy_cams_own), ("416x416", self.inf_sq, self.busy_cams))
        for name, r, cams in shapes:
            log(f"  inference-only {name}: {r['best_ips']:.1f} inferences/s (batch {r['best_batch']}, "
                f"{r['best_sessions']} session(s) x {r['best_threads']} threads) = {cams:.1f} busy cameras")  # fmt: skip

    def best(self, other: Ceilings) -> Ceilings:
        """Each ceiling at the higher of two readings."""
        return Ceilings(
            max(self.dec_fps, other.dec_fps),
            max(self.inf, other.inf, key=lambda r: r["best_ips"]),
            max(self.inf_sq, other.inf_sq, key=lambda r: r["best_ips"]),
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short windows, few steps (< 3 min)")
    ap.add_argument("--workloads", default="quiet,busy,main")
    ap.add_argument("--window", type=float, help="seconds measured per probe (default 30, quick 4)")
    ap.add_argument(
        "--sync",
        action="store_true",
        help="start all of Xueliang's cameras at the same point of the clip (default: staggered)",
    )
    ap.add_argument(
        "--no-int8",
        action="store_true",
        help="leave out the int8 build and check (a machine without the shared photos and clips)",
    )
    a = ap.parse_args(argv)
    window = a.window or (4.0 if a.quick else 30.0)
    warmup = 1.5 if a.quick else 5.0
    settle = 2.0 if a.quick else 3.0
    quiet_s = 10.0 if a.quick else 60.0  # longest wait for a quiet box before each probe
    # --quick starts at this machine's last full run (or at counts estimated from its ceilings) and
    # takes two or three steps: a rough bracket, not the full search.
    max_probes = 2 if a.quick else 7
    infer_s = 1.0 if a.quick else 4.0
    # --quick leaves out one session on one thread: two of them side by side always beat it.
    batches, threads = ((1, 4, 8), (2,)) if a.quick else ((1, 2, 4, 8), (1, 2))
    t_start = time.monotonic()

    model = resolve_model("yolox_nano_416")
    names = a.workloads.split(",")
    _prepare(names, None if a.no_int8 else model.path)
    paths = {name: workloads.ensure(workloads.WORKLOADS[name]) for name in names}
    log(f"machine: {machine_id()}, python {platform.python_version()}")
    log("ceilings ...")
    # The inference ceiling is the model's own: YOLOX-Nano as shipped, 416x416 tensors, flat out
    # (the scale: ~76/s = ~15 busy cameras on the reference box). The pipeline feeds a
    # 640x360 frame letterboxed at 416 as 416x256 (and crops around motion): ways of winning
    # inference time that the issue lists to get near that ceiling. The stricter figure, the
    # pipeline's own 416x256 tensors flat out, is printed beside it.
    det = build_detector(model)
    busy = workloads.WORKLOADS["busy"]
    g = det.geometry(busy.width, busy.height)
    busy_hw = det.input_hw(g.resized_w, g.resized_h)
    main_path = paths.get("main", workloads.WORKLOADS["main"].path)

    def measure_ceilings() -> Ceilings:
        c = Ceilings(
            ceilings.decode_only_fps(main_path, 2, 2.0 if a.quick else 10.0),
            ceilings.inference_only(model.path, infer_s, batches, threads, busy_hw),
            ceilings.inference_only(model.path, infer_s, batches, threads),
        )
        c.log(busy_hw)
        return c

    ceil = measure_ceilings()
    seeds = seeds_for(ceil.busy_cams_own, ceil.busy_cams, ceil.main_cams)
    int8_speedup = int8_match = float("nan")
    if not a.no_int8:
        log("int8 ...")
        # 100 frames sampled from the shared clips (20 per clip) besides the photos; --quick: 40.
        int8_speedup, int8_match = _int8(model, infer_s, ceil.inf, batches, threads, 8 if a.quick else 20, busy_hw)
        log(f"  int8 speed-up {int8_speedup:.2f}x, fp32 detections matched {int8_match:.1%}")
    stage_ms = {w: stages.stage_times(p, det, frames=60 if a.quick else 300) for w, p in paths.items()}

    work = Path(tempfile.mkdtemp(prefix="xl-bench-"))
    results: dict[str, dict] = {"naive": {}, "xueliang": {}}
    best_probe: dict[str, xueliang.Probe] = {}
    with xueliang.centre(work) as c:
        for name, path in paths.items():
            fps = workloads.WORKLOADS[name].fps
            log(f"workload {name} ({path.name}):")
            # The naive count is the ratios' denominator: --quick gives it one probe more.
            r = ramp(_naive_probe(path, window, quiet_s), seeds["naive"][name], 64, max_probes + (1 if a.quick else 0))
            results["naive"][name] = r.best
            stagger = 0.0 if a.sync else workloads.WORKLOADS[name].seconds
            r = ramp(_ours_probe(path, fps, window, warmup, c.broker.port, c.db, work, LABELS[name], stagger, settle,
                                 quiet_s, c.others),
                     seeds["xueliang"][name], 128, max_probes)  # fmt: skip
            results["xueliang"][name] = r.best
            ok = [info for n, good, info in r.probes if good and n == r.best]
            if ok:
                best_probe[name] = ok[0]
        n_rss = max(1, results["xueliang"].get("main", 1))
        # 60 s: resident memory still grows for about a minute (the clip ring of open events, the
        # inference arena meeting new crop shapes); 30 s read 10% low. One camera alone gives the
        # fixed part, so that the per-camera cost can be told from it.
        rss_s = 8.0 if a.quick else 60.0
        rss = _rss_per_camera(main_path, n_rss, rss_s, c.broker.port, work)
        rss_one = _rss_per_camera(main_path, 1, rss_s, c.broker.port, work) if n_rss > 1 else rss
    # Measured again at the end, and the higher of the two kept: a shared VM's speed drifts over a
    # run (two runs on one box read 343 and 259 1080p frames/s at their start), and a ceiling read
    # in a slow minute would flatter every fraction. --quick (a rough bracket) keeps its 3 minutes.
    if not a.quick:
        log("ceilings again ...")
        ceil = ceil.best(measure_ceilings())
    dec_fps, inf, inf_sq = ceil.dec_fps, ceil.inf, ceil.inf_sq
    main_ceiling, busy_ceiling, busy_ceiling_own = ceil.main_cams, ceil.busy_cams, ceil.busy_cams_own

    def ratio(w: str) -> float:
        n = results["naive"].get(w, 0)
        return results["xueliang"].get(w, 0) / n if n else float("inf")

    p99 = max((p.latency_p99_ms for p in best_probe.values()), default=0.0)
    out = {
        "quiet_ratio": ratio("quiet"),
        "busy_ratio": ratio("busy"),
        "busy_ceiling_frac": results["xueliang"].get("busy", 0) / busy_ceiling,
        # Against the pipeline's own 416x256 tensors flat out: stricter, not the defined ceiling.
        "busy_ceiling_frac_416x256": results["xueliang"].get("busy", 0) / busy_ceiling_own,
        "main_ratio": ratio("main"),
        "main_ceiling_frac": results["xueliang"].get("main", 0) / main_ceiling,
        "int8_speedup": int8_speedup,
        "int8_match": int8_match,
        "rss_mb_per_cam": rss,
        "p99_latency_ms": p99,
    }
    # A run of some workloads (--workloads) reports only their figures: a ratio of a workload that
    # did not run is not a result (it read inf, and its fraction 0).
    per_workload = {"quiet": ("quiet_ratio",), "busy": ("busy_ratio", "busy_ceiling_frac", "busy_ceiling_frac_416x256"),
                    "main": ("main_ratio", "main_ceiling_frac")}  # fmt: skip
    for w, keys in per_workload.items():
        if w not in paths:
            for k in keys:
                del out[k]
    if a.no_int8:
        del out["int8_speedup"], out["int8_match"]
    print("\nCameras sustained (30 s windows unless --quick; definition in ../shared/bench/README.md)")
    print(f"{'workload':10} {'naive':>6} {'xueliang':>9} {'ratio':>6}  ceiling")
    for w in paths:
        ceil = (
            f"{busy_ceiling:.1f} (inference 416x416; {busy_ceiling_own:.1f} at {busy_hw[1]}x{busy_hw[0]})"
            if w == "busy"
            else f"{main_ceiling:.1f} (decode)"
            if w == "main"
            else "-"
        )
        print(
            f"{w:10} {results['naive'].get(w, 0):6d} {results['xueliang'].get(w, 0):9d} {ratio(w):6.2f}  {ceil}"
        )
    print("\nPer-stage CPU time per frame (ms, all threads): " + ", ".join(
        f"{w}: " + " ".join(f"{k}={v:.2f}" for k, v in st.items()) for w, st in stage_ms.items()))  # fmt: skip
    for w, p in best_probe.items():
        print(f"At the sustained count, {w}: cpu={p.cpu_pct:.0f}% infer_calls/s={p.infer_calls_per_s:.1f} "
              f"batch_sizes={p.batch_hist} alerts={p.alerts} latency_p99={p.latency_p99_ms:.0f}ms "
              f"max={p.latency_max_ms:.0f}ms (on the station, p99 by stage: "
              f"{xueliang.stage_summary(p.alert_stage_p99_ms)}); CPU by part, % of one core: "
              f"{cpuparts.summary(p.cpu_parts)}")  # fmt: skip
    marginal = (rss * n_rss - rss_one) / (n_rss - 1) if n_rss > 1 else rss
    print(
        f"Peak RSS per 1080p camera ({n_rss} cameras, 10 s pre-event buffer, {rss_s:.0f} s): {rss:.1f} MB "
        f"({rss * n_rss:.0f} MB in all; one camera alone {rss_one:.0f} MB; each further camera {marginal:.1f} MB)"
    )
    print(f"Inference-only at {busy_hw[1]}x{busy_hw[0]}: {inf['best_ips']:.1f}/s (batch {inf['best_batch']}, "
          f"{inf['best_sessions']} x {inf['best_threads']} threads); at 416x416: {inf_sq['best_ips']:.1f}/s; "
          f"decode-only 1080p25: {dec_fps:.0f} frames/s; took {time.monotonic() - t_start:.0f} s")  # fmt: skip
    out_file = LAST.with_name("last-quick.json") if a.quick else LAST  # quick counts are rough: never seeds
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({"machine": machine_id(), "result": out,
                                    "sustained": {k: {w: max(1, n) for w, n in v.items()} for k, v in results.items()}},
                                   indent=1))  # fmt: skip
    print(
        "RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
