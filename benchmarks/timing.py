"""Timing: wall time of one call, best of several, the timed epochs and inference passes of a benchmark row,
and numpy's matmul rate as a yardstick of what BLAS can do on the machine at that moment."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

PREDICT_BUDGET_S = 10.0  # timed inference passes stop after this many seconds (at least one, at most repeats)
LATENCY_CALLS, LATENCY_BUDGET_S = 200, 3.0  # batch-1 predictions timed: this many, or fewer in this many seconds


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


def batch_one_latency(infer_one: Callable[[], None]) -> list[float]:
    """Seconds per call of a one-sample prediction: a few warm-up calls, then LATENCY_CALLS timed calls
    (fewer when they take more than LATENCY_BUDGET_S)."""
    for _ in range(5):
        infer_one()
    times: list[float] = []
    while len(times) < LATENCY_CALLS and sum(times) < LATENCY_BUDGET_S:
        times.append(timed(infer_one))
    return times


def time_epochs_and_predictions(epoch: Optional[Callable[[], None]], infer: Callable[[], None],
                                infer_one: Callable[[], None], rows: int, repeats: int) -> dict:
    """A warm-up epoch (compilation, caches), then `repeats` timed epochs (none without `epoch`: inference
    only); a warm-up inference pass, then timed passes until `repeats` or PREDICT_BUDGET_S; then the latency
    of one-sample predictions. Medians summarize, every time is kept."""
    result: dict = {}
    if epoch is not None:
        epochs = [timed(epoch) for _ in range(1 + repeats)]
        result = {"warmup_s": epochs[0], "epoch_s": epochs[1:], "median_s": statistics.median(epochs[1:])}
    predictions = [timed(infer)]
    while len(predictions) <= repeats and sum(predictions[1:]) < PREDICT_BUDGET_S:
        predictions.append(timed(infer))
    latencies = batch_one_latency(infer_one)
    return {**result, "predict_warmup_s": predictions[0], "predict_s": predictions[1:],
            "predict_samples_per_s": rows / statistics.median(predictions[1:]),
            "latency_s": statistics.median(latencies), "latency_calls": len(latencies)}
