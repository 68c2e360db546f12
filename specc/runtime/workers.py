"""A layer's work split by images over a few threads, each with single-threaded BLAS.

Conv2D and MaxPooling2D run all their work this way. A convolution over a batch is a sequence of chunks
(unfold some output rows, multiply, fold back). Run with one multithreaded BLAS, every product waits at
the barriers of its threads and the unfolding between products runs on one core. Here each thread takes
whole images and runs its chunks end to end with BLAS on one thread: the cores meet once per layer instead
of inside every product, and everything between the products runs in parallel too (shared vision's 3x3
Conv2D(64) forward: 7.3 ms instead of 8.3 ms). How many threads: `blas.threads().workers`.

Results do not depend on scheduling: the images of each thread are fixed by the batch size and the
thread count alone, each thread writes only its images' rows, and per-thread sums are added up in
thread order by the caller (add_in_thread_order). numpy's products and the nogil Numba kernels release
the GIL.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading

from . import blas

_lock = threading.Lock()  # one split at a time: the BLAS thread count is process-wide
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = 0  # the process that made the pool: a forked child has none of its threads, so makes its own


def image_groups(images: int) -> list[tuple[int, int]]:
    """(first, stop) image ranges, one per thread, as equal as can be; fewer when there are fewer images."""
    k = max(1, min(blas.threads().workers, images))
    return [(images * i // k, images * (i + 1) // k) for i in range(k)]


@contextlib.contextmanager
def split_over(count: int):
    """Within: splits take `count` threads, whatever the machine allows (to compare results across counts)."""
    settings = blas.threads()
    before, settings.workers = settings.workers, count
    try:
        yield
    finally:
        settings.workers = before


def run(task, groups: list[tuple[int, int]]) -> list:
    """[task(first, stop) for each group], the first on the calling thread, the others on the pool, with
    BLAS on one thread meanwhile. An exception in any task is raised here."""
    global _pool, _pool_pid
    if len(groups) == 1:
        return [task(*groups[0])]
    settings = blas.threads()
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = concurrent.futures.ThreadPoolExecutor(settings.workers - 1, thread_name_prefix="specc-images")
            _pool_pid = os.getpid()
        before = [library.num_threads for library in settings.libraries]
        for library in settings.libraries:
            library.set_num_threads(1)
        try:
            futures = [_pool.submit(task, *group) for group in groups[1:]]
            try:
                first = task(*groups[0])
            finally:
                rest = [future.result() for future in futures]  # waits for all, raises the first error
            return [first, *rest]
        finally:
            for library, threads in zip(settings.libraries, before):
                library.set_num_threads(threads)


def add_in_thread_order(total, parts):
    """Adds each thread's partial sum into `total` in thread order, and returns `total`: one fixed order,
    so the result does not depend on which thread finished first."""
    for part in parts:
        total += part
    return total
