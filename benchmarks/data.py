"""Training on data bigger than memory: the memory a run holds, its rows per second and its time to the first batch,
on digits-shaped data memory-mapped from .npz files.

    python benchmarks/data.py [--gigabytes 20] [--memory-gigabytes 1] [--folder DIR] [--fresh] [--batch 256]
                              [--repeats 3] [--cold-batches 200] [--memory-max 4G]

Writes, once (kept between runs unless --fresh), three datasets of specs/digits.yaml's arrays (random 'images'
of (8, 8) float32 and int64 'labels': 264 bytes a row) into --folder, each with a spec naming it: a tiny one,
one that fits in memory (--memory-gigabytes) and a big one (--gigabytes). Each is written in chunks, as np.savez
writes an archive (uncompressed), never whole in memory. Then one epoch of each is trained at --batch in a child
process (`specc.load(spec)`, `spec_data()`, `fit`), whose anonymous resident memory (RssAnon) this process samples
every 50 ms; the child reports its VmHWM (all resident memory, mapped file pages included), its major page faults
(pages it waited for the disk to read) and its clock:
  * tiny, read whole: the model's own memory (interpreter, numpy, numba, the model), after a warm-up run;
  * the in-memory dataset read whole (specc.io.data.MAPPED_BYTES set above its size) and mapped (set to 0),
    alternately, --repeats times each: rows per second of each, and their ratio;
  * the big dataset, mapped, its pages first evicted from the page cache: peak memory, rows per second, and the
    time from loading the data (Model.spec_data) to the end of the first batch, which here includes checking
    every value once (and so reads the file into the page cache, where it fits); then, the values' summaries
    remembered, to its first batch with the page cache as the epoch left it; then its first --cold-batches
    batches with its pages evicted again: rows per second read from disk.
Rows per second count the batches after the first (numba's cache load and the first page faults are in the
first). Summaries are remembered in --folder/cache (SPECC_CACHE), emptied at the start of every run so that the
first run of the big dataset checks its values. --memory-max runs each child under
`systemd-run --user --scope -p MemoryMax=...` where that works; elsewhere memory is measured, not capped.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the package `benchmarks`, as run.py finds it

from benchmarks.machine import commit, cpu_model, memory_gb  # noqa: E402
from benchmarks.report import fmt_rate, fmt_seconds, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "specs" / "digits.yaml"
ROW_BYTES = 8 * 8 * 4 + 8  # an (8, 8) float32 image and an int64 label
TINY_ROWS = 65536
SAMPLE_S = 0.05
MB = 2 ** 20


# -- the child: one epoch (or its first batches) of a spec's data --------------------------------------------------

def child(spec: str, mapped_bytes: Optional[int], batch: int, batches: Optional[int]):
    """Train one epoch, or its first `batches`; print one JSON line: seconds from loading the data to the end of
    its first and of its last batch, rows per second after the first batch, VmHWM, major page faults (reads
    from disk)."""
    import specc
    import specc.io.data
    from specc.train.progress import Progress

    class Clock(Progress):
        """Shows nothing; notes when the first and the last batch ended, and the rows after the first."""
        first: Optional[float] = None
        last: float = 0.0
        rows_after_first = ended = 0

        def batch_end(self, batch: int, logs: dict, rows: int = 0):
            self.last = time.perf_counter()
            self.ended += 1
            if self.first is None:
                self.first = self.last
            else:
                self.rows_after_first += rows

    if mapped_bytes is not None:
        specc.io.data.MAPPED_BYTES = mapped_bytes
    model = specc.load(spec)
    clock = Clock(1, 0, quiet=True)
    start = time.perf_counter()
    train, _ = model.spec_data()
    loaded = time.perf_counter()
    model.fit(epochs=1, batch_size=batch, data=(train, None), progress=clock,
              stop=(lambda: clock.ended >= batches) if batches else None)
    assert clock.first is not None
    steady = clock.last - clock.first
    print(json.dumps({"rows": train.rows, "mapped": train.mapped, "load_s": loaded - start,
                      "first_batch_s": clock.first - start, "train_s": clock.last - loaded,
                      "rows_per_s": clock.rows_after_first / steady if steady > 0 else None,
                      "vm_hwm": proc_status("self")["VmHWM"],
                      "major_faults": resource.getrusage(resource.RUSAGE_SELF).ru_majflt}))


def proc_status(pid) -> dict[str, int]:
    """The memory fields (bytes) of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        fields = [line.split(":", 1) for line in f]
    return {name: int(value.split()[0]) * 1024 for name, value in fields if value.strip().endswith("kB")}


# -- the parent: data, children, table -------------------------------------------------------------------------------

def write_dataset(folder: Path, rows: int) -> Path:
    """The spec of a digits dataset of `rows` rows in `folder`, the data written unless already there."""
    from specc import load
    from specc.io.weights import write_members
    from specc.synth import synthetic_members

    data, spec = folder / f"digits-{rows}.npz", folder / f"digits-{rows}.yaml"
    model = load(DIGITS)
    train = model.spec.data.train
    if not data.exists():
        started = time.perf_counter()
        write_members(data, synthetic_members(model.graph, model.losses(), rows, 0, train.inputs, train.targets))
        print(f"wrote {data} ({data.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s")
    text = yaml.safe_load(DIGITS.read_text())
    text["data"] = {"train": {"path": data.name, "inputs": train.inputs, "targets": train.targets}}
    spec.write_text(yaml.safe_dump(text, sort_keys=False))
    return spec


def check_free_space(folder: Path, rows: list[int]):
    """Refuse when the datasets still to write would leave less than 2 GB of the disk free."""
    missing = sum(n * ROW_BYTES for n in rows if not (folder / f"digits-{n}.npz").exists())
    free = shutil.disk_usage(folder).free
    if missing + 2e9 > free:
        sys.exit(f"{folder}: the datasets need {missing / 1e9:.1f} GB more and 2 GB must stay free, but only "
                 f"{free / 1e9:.1f} GB is free; choose a smaller --gigabytes or another --folder")


def evict(path: Path):
    """Drop the file's pages from the page cache (they are clean: written and synced), so it is read from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_share(path: Path) -> float:
    """The share of the file's pages in the page cache (mincore over a mapping of it; nothing is read)."""
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    pages = -(-len(mapped) // os.sysconf("SC_PAGE_SIZE"))
    resident = np.zeros(pages, np.uint8)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mincore(ctypes.c_void_p(mapped.ctypes.data), ctypes.c_size_t(len(mapped)),
                    ctypes.c_void_p(resident.ctypes.data)) != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return float((resident & 1).mean())


def memory_cap(memory_max: Optional[str]) -> tuple[list[str], str]:
    """The command prefix that caps a child's memory, and what to say of it."""
    if memory_max is None:
        return [], "not capped (measured only)"
    prefix = ["systemd-run", "--user", "--scope", "--quiet", "-p", f"MemoryMax={memory_max}"]
    try:
        works = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except OSError:
        works = False
    return (prefix, f"capped at MemoryMax={memory_max}") if works else \
        ([], f"not capped: `{' '.join(prefix)}` does not work here (measured only)")


def measure(folder: Path, spec: Path, mapped_bytes: Optional[int], batch: int, cap: list[str],
            batches: Optional[int] = None) -> dict:
    """Run the child on `spec`; its result with the peak RssAnon sampled from here and the data's page-cache share
    before it started."""
    data = spec.with_suffix(".npz")
    command = [*cap, sys.executable, __file__, "--child", str(spec), "--batch", str(batch)]
    command += ["--mapped-bytes", str(mapped_bytes)] if mapped_bytes is not None else []
    command += ["--batches", str(batches)] if batches else []
    env = {**os.environ, "SPECC_CACHE": str(folder / "cache")}
    (folder / "run").mkdir(exist_ok=True)  # the child's checkpoint goes there
    cached = cached_share(data)
    peak = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, cwd=folder / "run", env=env, text=True) as process:
        while process.poll() is None:
            try:
                peak = max(peak, proc_status(process.pid)["RssAnon"])
            except (OSError, KeyError):  # exiting
                pass
            time.sleep(SAMPLE_S)
        out = process.stdout.read() if process.stdout else ""
    if process.returncode:
        sys.exit(f"the child failed ({process.returncode}): {' '.join(command)}")
    return {**json.loads(out.splitlines()[-1]), "peak_anon": peak, "cached": cached}


def row(label: str, result: dict) -> list[str]:
    rate = result["rows_per_s"]
    read = "mapped" if result["mapped"] else "whole"
    return [label, f"{result['rows']:,}", f"{result['rows'] * ROW_BYTES / 1e9:.2f}", read,
            f"{result['cached']:.0%}", fmt_seconds(result["load_s"]), fmt_seconds(result["first_batch_s"]),
            fmt_seconds(result["train_s"]), fmt_rate(rate) if rate else "-", f"{result['peak_anon'] / MB:,.0f}",
            f"{result['vm_hwm'] / MB:,.0f}", f"{result['major_faults']:,}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=20.0, help="size of the big dataset (GB, 10^9 bytes)")
    parser.add_argument("--memory-gigabytes", type=float, default=1.0, help="size of the dataset that fits in memory")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/specc-data-benchmark"))
    parser.add_argument("--fresh", action="store_true", help="write the datasets again")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-batches", type=int, default=200,
                        help="batches of the big dataset trained from disk (its pages evicted)")
    parser.add_argument("--memory-max", help="cap each child's memory (systemd-run MemoryMax, e.g. 4G)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mapped-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.mapped_bytes, args.batch, args.batches)

    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for old in folder.glob("digits-*.npz"):
            old.unlink()
    shutil.rmtree(folder / "cache", ignore_errors=True)
    big_rows, memory_rows = (int(gb * 1e9) // ROW_BYTES for gb in (args.gigabytes, args.memory_gigabytes))
    check_free_space(folder, [TINY_ROWS, memory_rows, big_rows])
    tiny, memory, big = (write_dataset(folder, rows) for rows in (TINY_ROWS, memory_rows, big_rows))
    cap, capped = memory_cap(args.memory_max)
    print(f"load average {os.getloadavg()[0]:.2f}; {cpu_model()}, {memory_gb()}; commit {commit()}; "
          f"batch {args.batch}; memory {capped}", flush=True)

    def run(spec, mapped_bytes, batches=None):
        return measure(folder, spec, mapped_bytes, args.batch, cap, batches)

    whole, mapped = 2 ** 62, 0
    rows = [row("tiny, warm-up", run(tiny, whole))]
    own = run(tiny, whole)
    rows.append(row("tiny: the model's own memory", own))
    rates: dict[str, list[float]] = {"whole": [], "mapped": []}
    for i in range(args.repeats):
        for read, mapped_bytes in (("whole", whole), ("mapped", mapped)):
            result = run(memory, mapped_bytes)
            rates[read].append(result["rows_per_s"])
            rows.append(row(f"fits in memory, {i + 1}", result))
    evict(big.with_suffix(".npz"))
    epoch = run(big, None)
    rows.append(row("big, values checked", epoch))
    again = run(big, None, batches=1)
    rows.append(row("big, first batch, remembered", again))
    evict(big.with_suffix(".npz"))
    cold = run(big, None, batches=args.cold_batches)
    rows.append(row(f"big, {args.cold_batches} batches, remembered, evicted", cold))
    print(f"load average {os.getloadavg()[0]:.2f}")

    print(table(["run", "rows", "GB", "read", "cached before", "load s", "first batch s", "train s", "rows/s",
                 "peak RssAnon MB", "VmHWM MB", "major faults"], rows))
    in_memory, from_map = statistics.median(rates["whole"]), statistics.median(rates["mapped"])
    beyond = epoch["peak_anon"] - own["peak_anon"]
    print(f"memory: the big epoch's peak RssAnon is the model's own {own['peak_anon'] / MB:,.0f} MB "
          f"+ {beyond / MB:,.0f} MB (target: under 1 GB more)")
    print(f"rows/s, medians: read whole {fmt_rate(in_memory)}, mapped {fmt_rate(from_map)} "
          f"({from_map / in_memory:.2f} of whole), big mapped {fmt_rate(epoch['rows_per_s'])} "
          f"({epoch['rows_per_s'] / in_memory:.2f} of whole) (target: at least 0.90); big mapped from disk "
          f"{fmt_rate(cold['rows_per_s'])} ({cold['rows_per_s'] / in_memory:.3f} of whole)")
    print(f"first batch of the big data: {again['first_batch_s']:.2f} s with its summaries remembered, "
          f"{cold['first_batch_s']:.2f} s with them remembered and its pages evicted (target: under 2 s); "
          f"{epoch['first_batch_s']:.2f} s checking its values first")


if __name__ == "__main__":
    main()
