"""Matrix products through numpy's BLAS, with the number of threads chosen for each product; and the
process's thread settings, one `Threads` object.

OpenBLAS splits every product above ~262k multiply-adds across all its threads. For a small product that
saves little on an idle machine ((32, 784) @ (784, 64): 27 us on two threads, 38 us on one), and on a busy
machine each split waits for a thread that is not running (74 us on average then, with stalls of many ms).
So, while training or predicting (inside `managed()`), products below SMALL multiply-adds run on one thread
and larger ones on all; afterwards numpy's thread count is what it was. Where numpy's BLAS is not OpenBLAS,
or its threads cannot be set, products run as numpy runs them.

The thread settings (numpy's BLAS libraries, the OpenBLAS threads of the moment, and how many threads
split a layer's images in specc.runtime.workers) are found once, on first use, and read from `threads()`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from threadpoolctl import LibController

SMALL = 1 << 22  # multiply-adds: about 40 us on one core


@dataclasses.dataclass
class Threads:
    """How many threads the process runs its work on.

    workers    threads a layer's images are split over (specc.runtime.workers); 1: no split
    libraries  threadpoolctl controllers of numpy's BLAS libraries; empty where their threads cannot be set
    openblas   the OpenBLAS one among them, whose threads `matmul` picks; None where there is none
    managing   inside managed()
    most       OpenBLAS threads for a large product: numpy's count when managed() began
    current    OpenBLAS threads set now
    """
    workers: int
    libraries: list = dataclasses.field(default_factory=list)
    openblas: Optional[LibController] = None
    managing: bool = False
    most: int = 0
    current: int = 0

    def use_openblas(self, threads: int):
        """Runs OpenBLAS on `threads` threads, setting them only when they change (a call costs ~2 us)."""
        assert self.openblas is not None, "use_openblas is only called where there is OpenBLAS"
        if threads != self.current:
            self.openblas.set_num_threads(threads)
            self.current = threads


_threads: Threads | None = None


def threads() -> Threads:
    """The process's thread settings, found on first use."""
    global _threads
    if _threads is None:
        _threads = _find_threads()
    return _threads


def _find_threads() -> Threads:
    try:
        from threadpoolctl import ThreadpoolController
        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    except Exception:  # no threadpoolctl: leave the threads to numpy
        libraries = []
    if not libraries:  # BLAS keeps its own threads, so a layer's work stays on one thread
        return Threads(workers=1)
    import numba
    openblas = next((library for library in libraries if library.internal_api == "openblas"), None)
    # as many threads as the user allows Numba and BLAS (NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS, ...)
    numba_threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # numba sets it via globals()
    workers = min([numba_threads, *(library.num_threads for library in libraries)])
    return Threads(workers, libraries, openblas)


@contextlib.contextmanager
def managed():
    """Within: `matmul` picks each product's threads. On leaving: the thread count numpy had before."""
    settings = threads()
    if settings.managing:
        yield
        return
    if settings.openblas is not None:
        settings.most = settings.current = settings.openblas.num_threads
    settings.managing = True
    try:
        yield
    finally:
        settings.managing = False
        if settings.openblas is not None:
            settings.use_openblas(settings.most)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b (into `out` when given); on one BLAS thread when the product is small. Stacked matrices
    are as many products, each small or not by its own size."""
    settings = _threads
    if settings is not None and settings.managing and settings.openblas is not None:
        settings.use_openblas(1 if a.shape[-2] * a.shape[-1] * b.shape[-1] < SMALL else settings.most)
    return np.matmul(a, b, out=out)
