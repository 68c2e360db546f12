"""Timing: wall time of one call, best of several, the timed epochs and inference passes of a benchmark row,
and numpy's matmul rate as a yardstick of what BLAS can do on the machine at that moment."""
from __future__ import annotations

import statistics
import time
from typing import Callable

PREDICT_BUDGET_S = 10.0  # timed inference passes stop after this many seconds (at least one, at most repeats)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """The least wall time of `repeat` calls after a warm-up call (compilation, page faults): the least
    disturbed by other processes."""
    fn()
    return min(timed(fn) for _ in range(repeat))


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """numpy's float32 n x n matmul rate, GFLOP/s."""
    import numpy as np
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    return 2 * n ** 3 / best_time(lambda: a @ b, repeat) / 1e9


def time_epochs_and_predictions(epoch: Callable[[], None], infer: Callable[[], None], rows: int,
                                repeats: int) -> dict:
    """A warm-up epoch (compilation, caches), then `repeats` timed epochs; a warm-up inference pass, then
    timed passes until `repeats` or PREDICT_BUDGET_S. Medians summarize, every time is kept."""
    epochs = [timed(epoch) for _ in range(1 + repeats)]
    predictions = [timed(infer)]
    while len(predictions) <= repeats and sum(predictions[1:]) < PREDICT_BUDGET_S:
        predictions.append(timed(infer))
    return {"warmup_s": epochs[0], "epoch_s": epochs[1:], "median_s": statistics.median(epochs[1:]),
            "predict_warmup_s": predictions[0], "predict_s": predictions[1:],
            "predict_samples_per_s": rows / statistics.median(predictions[1:])}
