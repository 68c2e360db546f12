"""Side-by-side training and inference benchmark: specc against PyTorch (eager), Keras 3 (JAX and torch
backends) and, for inference, onnxruntime on the model specc exports.

    python benchmarks/run.py [--arch dense headline ...]
                             [--frameworks specc torch keras-jax keras-torch onnxruntime]
                             [--repeats 3] [--quick] [--no-extras] [--inference-only] [--save results.json]

Each guide architecture (specs/*.yaml) is trained for a fixed number of random samples at the same batch
size by every framework, one fresh worker process per (framework, architecture), frameworks alternating
within each architecture. A worker builds the model, makes the data, runs one warm-up epoch (compilation,
caches) and then --repeats timed epochs; the table shows the median. Then it predicts over the same data
at the same batch size (samples/s), and one sample at a time (batch-1 latency). Frameworks that are not installed
show as n/a; PyTorch, Keras and JAX are the optional `bench` extra (`pip install -e '.[bench]'`).

Extras (specc only): `specc validate` wall time per spec, and the time from process start to the first
finished batch with a cold and a warm Numba cache. Then the machine, the versions, the load average
before and after (the machine may be shared), and numpy's float32 matmul rate as a yardstick.

A worker can be run alone: python benchmarks/run.py --worker torch --arch dense --json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Run as a script (`python benchmarks/run.py`), Python puts benchmarks/ on the path; the modules next to this
# file are the package `benchmarks`, found from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.extras import first_batch_worker  # noqa: E402
from benchmarks.orchestrator import orchestrate  # noqa: E402
from benchmarks.workers import FRAMEWORKS, training_worker  # noqa: E402
from benchmarks.workloads import ARCHS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=FRAMEWORKS)
    parser.add_argument("--repeats", type=int, help="timed epochs after the warm-up (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1/16 of the samples (at least one batch) and one "
                        "timed epoch: a smoke run")
    parser.add_argument("--threads", type=int, help="cap every framework's compute threads (BLAS, OpenMP, "
                        "Numba, XLA) with environment variables; default: each framework's own default")
    parser.add_argument("--no-extras", action="store_true", help="only the training and inference tables")
    parser.add_argument("--inference-only", action="store_true", help="no training: only the inference table "
                        "(implies --no-extras)")
    parser.add_argument("--save", metavar="JSON", help="also write every measurement to this file")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--first-batch", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.worker:
        print(json.dumps(training_worker(args.worker, args.arch[0], args.repeats, args.quick, args.inference_only)))
    elif args.first_batch:
        print(json.dumps(first_batch_worker(args.first_batch, args.t0 if args.t0 is not None else time.time())))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
