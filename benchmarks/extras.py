"""The specc-only measurements after the tables: `specc validate` wall time per spec, and the time from
process start to the first finished training batch with a cold and a warm Numba cache."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .workers import run_worker
from .workloads import ROOT, SPECS, make_data

FIRST_BATCH_SPECS = ["digits.yaml", "headline.yaml", "shared_vision.yaml"]


def validate_times(repeats: int = 5) -> list[list[str]]:
    """Rows of (spec file, median seconds of `specc validate FILE` as a subprocess)."""
    script = Path(sys.executable).parent / "specc"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "specc"]
    rows = []
    for spec in sorted(SPECS.glob("*.yaml")):
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([*command, "validate", str(spec)], capture_output=True, cwd=ROOT)
            seconds.append(time.perf_counter() - start)
        rows.append([spec.name, f"{statistics.median(seconds):.2f}"])
    return rows


def first_batch_progress(batches: int):
    """specc's progress display, silent, noting the time the first training batch ends."""
    from specc.train.progress import Progress

    class FirstBatch(Progress):
        ended: Optional[float] = None

        def batch_end(self, *args, **kwargs):
            if self.ended is None:
                self.ended = time.time()
            super().batch_end(*args, **kwargs)

    return FirstBatch(1, batches, quiet=True)


def first_batch_worker(spec: str, t0: float) -> dict:
    """Seconds from `t0` (taken by the parent just before it started this process) to the end of the first
    training batch, with the steps on the way: imports, loading the spec, reading the data."""
    marks = {}
    import specc
    from specc.io.data import Dataset
    marks["imports"] = time.time()
    model = specc.load(SPECS / spec)
    marks["load"] = time.time()
    if model.spec.data is not None and (SPECS / model.spec.data.train.path).exists():
        train, _ = model.spec_data()
    else:
        train = Dataset(*make_data(model, 2 * model.spec.fit.batch_size))
    marks["data"] = time.time()
    batch = model.spec.fit.batch_size
    progress = first_batch_progress(-(-train.rows // batch))
    model.fit(epochs=1, batch_size=batch, data=(train, None), progress=progress)  # a short epoch: let it end
    marks["first_batch"] = progress.ended
    return {"spec": spec, **{k: v - t0 for k, v in marks.items()}}


def first_batch_times(env: dict, warm_repeats: int = 3) -> list[list[str]]:
    """Rows of (spec, cold or warm, seconds of each step and in total), each from fresh worker processes."""
    rows = []
    for spec in FIRST_BATCH_SPECS:
        with tempfile.TemporaryDirectory(prefix="specc-numba-") as cache:
            env = {**env, "NUMBA_CACHE_DIR": cache}

            def once(spec=spec, env=env):
                t0 = time.time()
                return run_worker(["--first-batch", spec, "--t0", repr(t0)], env)

            cold = once()
            warm = sorted((once() for _ in range(warm_repeats)), key=lambda r: r["first_batch"])
            warm = warm[len(warm) // 2]
        for label, r in (("cold", cold), ("warm", warm)):
            rows.append([spec, label, f"{r['imports']:.2f}", f"{r['load'] - r['imports']:.2f}",
                         f"{r['data'] - r['load']:.2f}", f"{r['first_batch'] - r['data']:.2f}",
                         f"{r['first_batch']:.2f}"])
    return rows
