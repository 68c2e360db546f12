"""The orchestrator: one worker process per (framework, architecture), frameworks taking turns within each
architecture; then the tables, the specc-only extras, the machine, and optionally every number as JSON."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from .extras import first_batch_times, validate_times
from .machine import PACKAGES, commit, cpu_model, memory_gb, thread_env, version
from .report import inference_table, table, training_table
from .timing import matmul_gflops
from .workers import TRAINERS, installed, run_worker


def measure_rows(args, frameworks: list[str]) -> dict[tuple[str, str], dict]:
    """Each (framework, architecture) row's worker result; failures are reported and left out."""
    results = {}
    for name in args.arch:
        for framework in frameworks:
            print(f"  {name:<14} {framework:<12}", end="", flush=True, file=sys.stderr)
            try:
                r = run_worker(["--worker", framework, "--arch", name, "--repeats", str(args.repeats)]
                               + (["--quick"] if args.quick else [])
                               + (["--inference-only"] if args.inference_only else []), thread_env(args.threads))
                results[(framework, name)] = r
                trained = f"{r['median_s']:.3f} s/epoch (warm-up {r['warmup_s']:.2f} s), " if "median_s" in r else ""
                print(f" {trained}{r['predict_samples_per_s']:.0f} samples/s, batch 1 {r['latency_s'] * 1e3:.2f} ms",
                      file=sys.stderr)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f" failed\n{e}", file=sys.stderr)
    return results


def run_extras(args) -> dict:
    extras = {}
    print()
    print("`specc validate FILE` wall time, seconds (median of 5 runs)")
    extras["validate"] = validate_times()
    print(table(["spec", "seconds"], extras["validate"]))
    print()
    print("Process start to first finished training batch, seconds (Numba cache: cold = a fresh "
          "NUMBA_CACHE_DIR, warm = the same directory again, median of 3)")
    extras["first_batch"] = first_batch_times(thread_env(args.threads))
    print(table(["spec", "cache", "python + imports", "load spec", "data", "first batch", "total"],
                extras["first_batch"]))
    return extras


def orchestrate(args) -> None:
    started = datetime.datetime.now()
    load_before = os.getloadavg()
    gflops_before = matmul_gflops()
    available = [f for f in args.frameworks if installed(f)]
    missing = [f for f in args.frameworks if f not in available]
    print(f"specc benchmark, {started:%Y-%m-%d %H:%M}, commit {commit()}"
          + (" (--quick: a smoke run, 1/16 of the samples)" if args.quick else "")
          + (f", every framework capped at {args.threads} compute thread(s)" if args.threads else ""))
    if missing:
        print(f"not installed (shown as n/a): {', '.join(missing)}; pip install -e '.[bench]'")

    results = measure_rows(args, available)
    if not args.inference_only:
        print()
        print(f"Training: median seconds per epoch of {args.repeats} timed epoch(s) after a warm-up epoch")
        print(training_table(results, args.arch, [f for f in args.frameworks if f in TRAINERS], args.quick))
    print()
    print("Inference: samples/s of predict over the same data at the benchmark batch size (median after a "
          "warm-up), and the median latency of predicting one sample (batch 1), ms")
    print(inference_table(results, args.arch, args.frameworks))
    extras = run_extras(args) if not (args.no_extras or args.inference_only) and "specc" in available else {}

    load_after = os.getloadavg()
    gflops_after = matmul_gflops()
    print()
    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {memory_gb()} RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"Python {platform.python_version()}; " + ", ".join(f"{p} {version(p)}" for p in PACKAGES))
    threads = {r["threads"] for r in results.values() if "threads" in r}
    if threads:
        print(f"torch threads: {', '.join(map(str, sorted(threads)))}")
    print(f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)}")
    print(f"numpy float32 2048x2048 matmul: {gflops_before:.1f} GFLOP/s before, {gflops_after:.1f} after")
    print(f"Wall time: {(datetime.datetime.now() - started).total_seconds() / 60:.1f} min")

    if args.save:
        Path(args.save).write_text(json.dumps({
            "started": started.isoformat(), "commit": commit(), "quick": args.quick, "repeats": args.repeats,
            "threads": args.threads, "inference_only": args.inference_only,
            "results": list(results.values()), "extras": extras, "load_before": load_before,
            "load_after": load_after, "matmul_gflops": [gflops_before, gflops_after], "cpu": cpu_model(),
            "cpus": os.cpu_count(), "versions": {p: version(p) for p in PACKAGES}}, indent=2))
