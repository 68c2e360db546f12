"""Matrix products through numpy's BLAS, with the number of threads chosen for each product.

OpenBLAS splits every product above ~262k multiply-adds across all its threads. For a small product that
saves little on an idle machine ((32, 784) @ (784, 64): 27 us on two threads, 38 us on one), and on a busy
machine each split waits for a thread that is not running (74 us on average then, with stalls of many ms).
So, while training or predicting (inside `managed()`), products below SMALL multiply-adds run on one thread
and larger ones on all; afterwards numpy's thread count is what it was. Where numpy's BLAS is not OpenBLAS,
or its threads cannot be set, products run as numpy runs them.
"""
from __future__ import annotations

import contextlib

import numpy as np

SMALL = 1 << 22  # multiply-adds: about 40 us on one core


class _OpenBLAS:
    """numpy's OpenBLAS thread count, set only when it changes (a call costs ~2 us)."""

    def __init__(self):
        from threadpoolctl import ThreadpoolController
        self.library = ThreadpoolController().select(internal_api="openblas").lib_controllers[0]
        self.current = self.most = self.library.num_threads

    def use(self, threads: int):
        if threads != self.current:
            self.library.set_num_threads(threads)
            self.current = threads


_openblas: _OpenBLAS | None = None  # found once, on first use
_managing = False


@contextlib.contextmanager
def managed():
    """Within: `matmul` picks each product's threads. On leaving: the thread count numpy had before."""
    global _openblas, _managing
    if _managing:
        yield
        return
    if _openblas is None:
        try:
            _openblas = _OpenBLAS()
        except Exception:  # no threadpoolctl, or not OpenBLAS: leave the threads to numpy
            _openblas = False
    if _openblas:
        _openblas.most = _openblas.current = _openblas.library.num_threads
    _managing = True
    try:
        yield
    finally:
        _managing = False
        if _openblas:
            _openblas.use(_openblas.most)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b (into `out` when given); on one BLAS thread when the product is small. Stacked matrices
    are as many products, each small or not by its own size."""
    if _managing and _openblas:
        _openblas.use(1 if a.shape[-2] * a.shape[-1] * b.shape[-1] < SMALL else _openblas.most)
    return np.matmul(a, b, out=out)
