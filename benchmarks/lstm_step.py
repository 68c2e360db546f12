"""Time LSTM forward + backward (float32) at the benchmark sizes; prints ms per batch.

    python benchmarks/lstm_step.py [--reps N] [--all]

Reference point: Keras/JAX trains the shared-LSTM(64) model (two 280x256 tweets per sample, batch 32)
at 4.3 s/epoch over 1024 samples, i.e. ~135 ms per batch for two LSTM calls forward + backward (plus
the rest of the model). The "x2" column is two calls, to compare with that.
"""
from __future__ import annotations

import argparse

import numpy as np
from timing import best_time

from specc.layers import LSTM

SIZES = [  # batch, timesteps, features, units
    (32, 100, 512, 32),
    (32, 280, 256, 64),
]
EXTRA = [(32, 100, 256, 256)]


def bench(batch: int, steps: int, features: int, units: int, reps: int) -> None:
    rng = np.random.default_rng(0)
    layer = LSTM(type="LSTM", units=units)
    weights = {k: v.astype(np.float32)
               for k, v in layer.init_weights(layer.weight_shapes([(steps, features)]), rng).items()}
    grads = {k: np.zeros_like(v) for k, v in weights.items()}
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    dy = rng.normal(size=(batch, units)).astype(np.float32)

    def forward():
        return layer.forward(weights, [x], training=True)

    def ms(f) -> float:  # the best of `reps` calls after a warm-up call (Numba compiles or loads its cache)
        return best_time(f, reps) * 1e3

    _, cache = forward()  # what the backward pass alone is timed with
    fwd = ms(forward)
    bwd = ms(lambda: layer.backward(weights, grads, cache, dy))
    both = ms(lambda: layer.backward(weights, grads, forward()[1], dy))
    gemm = ms(lambda: x.reshape(-1, features) @ weights["kernel"])  # one of the four big GEMMs
    print(f"batch {batch}, {steps} steps, {features} -> {units} units: forward {fwd:6.1f} ms   "
          f"backward {bwd:6.1f} ms   forward+backward {both:6.1f} ms   x2 {2 * both:6.1f} ms   "
          f"(x @ kernel alone: {gemm:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--all", action="store_true", help="also units 256")
    args = parser.parse_args()
    for size in SIZES + (EXTRA if args.all else []):
        bench(*size, reps=args.reps)


if __name__ == "__main__":
    main()
