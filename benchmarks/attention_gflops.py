"""MultiHeadAttention forward+backward throughput (GFLOP/s) at the attention specs' sizes, next to numpy's
matmul rate.

    python benchmarks/attention_gflops.py [--repeat 5]

The layers of the transformer text classifier (batch 32, 200 steps of 32 features, 2 heads of 32) and of the
timeseries transformer (batch 64, 500 steps of 1 feature, 4 heads of 256), without dropout. FLOPs counted
are the GEMMs' multiply-adds: the query, key and value projections, the scores (T x S per head), the
probability-weighted values and the output projection; a forward + backward pass does each three times
(output, weight gradient, input gradient: their inputs come from layers that learn). The softmax, the
head transposes and the biases are overhead that the rate includes but does not count. Each rate is also
given as a share of numpy's float32 2048^3 matmul rate, measured in the same process before and after
(their mean). Times are the best of --repeat runs; on a shared machine, anything else running (see the
load average printed) shows up as noise.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_time, matmul_gflops

from specc.layers.attention import MultiHeadAttention
from specc.runtime import blas


def gemm_flops(batch: int, steps: int, features: int, heads: int, key_dim: int) -> int:
    """Multiply-adds x 2 of one forward pass of self-attention (value_dim = key_dim, output of `features`)."""
    projections = 4 * batch * steps * features * heads * key_dim  # query, key, value, output
    attention = 2 * batch * heads * steps * steps * key_dim  # scores, weighted values
    return 2 * (projections + attention)


def attention_rate(batch, steps, features, heads, key_dim, repeat):
    """(forward GFLOP/s, forward+backward GFLOP/s, their times) of self-attention over a float32 batch."""
    layer = MultiHeadAttention(type="MultiHeadAttention", num_heads=heads, key_dim=key_dim)
    rng = np.random.default_rng(0)
    shape = (steps, features)
    shapes = layer.weight_shapes([shape, shape])
    weights = {name: w.astype(np.float32) for name, w in layer.init_weights(shapes, rng).items()}
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    dy = rng.standard_normal((batch, *shape), dtype=np.float32)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}

    def forward():
        return layer.forward(weights, [x, x], training=True)

    def step():
        _, cache = forward()
        layer.backward(weights, grads, cache, dy)

    flops = gemm_flops(batch, steps, features, heads, key_dim)
    with blas.managed():  # as in training
        t_fwd = best_time(forward, repeat)
        t_step = best_time(step, repeat)
    return flops / t_fwd / 1e9, 3 * flops / t_step / 1e9, t_fwd, t_step


# (spec, batch, steps, features, heads, key_dim)
CASES = [
    ("transformer_classifier attention", 32, 200, 32, 2, 32),
    ("timeseries_transformer attention", 64, 500, 1, 4, 256),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    before = matmul_gflops()
    rows = [(name, f"{batch}x{steps}x{features} {heads} heads of {key_dim}",
             attention_rate(batch, steps, features, heads, key_dim, args.repeat))
            for name, batch, steps, features, heads, key_dim in CASES]
    after = matmul_gflops()
    peak = (before + after) / 2
    print(f"numpy float32 matmul 2048x2048: {before:.1f} GFLOP/s before, {after:.1f} after; "
          f"shares below are of their mean, {peak:.1f}")
    print("float32 self-attention (forward+backward: weight gradients and the input's):")
    for name, shape, (fwd, step, t_fwd, t_step) in rows:
        print(f"  MultiHeadAttention {name:34s} {shape:26s} "
              f"forward {fwd:6.1f} GFLOP/s ({t_fwd * 1e3:7.1f} ms) = {fwd / peak:4.0%}, "
              f"forward+backward {step:6.1f} GFLOP/s ({t_step * 1e3:7.1f} ms) = {step / peak:4.0%} of matmul")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
