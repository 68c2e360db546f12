"""Dense forward+backward throughput (GFLOP/s) at the benchmark's sizes, next to numpy's matmul rate.

    python benchmarks/dense_gflops.py [--repeat 200]

FLOPs counted are the three GEMMs of a Dense layer (output, kernel gradient, input gradient: 2 * rows *
inputs * units each; the first layer of a model needs no input gradient). Bias, activation and the Python
around the layer are overhead that the rate includes but does not count. Next to each rate: the same GEMMs
as bare numpy matmuls on preallocated arrays, the ceiling for that size, and numpy's 2048x2048 rate.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_time, matmul_gflops

from specc.layers.dense import Dense

# (what, rows, inputs, units, needs the input gradient)
CASES = [
    ("dense 784-64-64-10, batch 32: 784 -> 64", 32, 784, 64, False),
    ("dense 784-64-64-10, batch 32: 64 -> 64", 32, 64, 64, True),
    ("headline, batch 32: 37 -> 64", 32, 37, 64, True),
    ("shared vision, batch 32: 15488 -> 1", 32, 15488, 1, True),
    ("digits, batch 32: 64 -> 64", 32, 64, 64, True),
    ("dense at batch 1024: 784 -> 64", 1024, 784, 64, False),
]


def dense_rates(rows, inputs, units, need_dx, repeat):
    layer = Dense(type="Dense", units=units, activation="relu")
    rng = np.random.default_rng(0)
    weights = {k: w.astype(np.float32) for k, w in layer.init_weights(layer.weight_shapes([(inputs,)]), rng).items()}
    grads = {k: np.zeros_like(w) for k, w in weights.items()}
    x = rng.standard_normal((rows, inputs), dtype=np.float32)
    dy = rng.standard_normal((rows, units), dtype=np.float32)

    def layer_step():
        _, cache = layer.forward(weights, [x], training=True)
        layer.backward(weights, grads, cache, dy, need_dx=need_dx)

    kernel, z, dw, dx = weights["kernel"], np.empty_like(dy), np.empty_like(weights["kernel"]), np.empty_like(x)

    def bare_gemms():
        np.matmul(x, kernel, out=z)
        np.matmul(x.T, dy, out=dw)
        if need_dx:
            np.matmul(dy, kernel.T, out=dx)

    flops = 2 * rows * inputs * units * (3 if need_dx else 2)
    return flops / best_time(layer_step, repeat) / 1e9, flops / best_time(bare_gemms, repeat) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    peak = matmul_gflops()
    print(f"numpy float32 matmul 2048x2048: {peak:7.1f} GFLOP/s")
    print("Dense (relu, float32), forward+backward:")
    for what, rows, inputs, units, need_dx in CASES:
        rate, ceiling = dense_rates(rows, inputs, units, need_dx, args.repeat)
        print(f"  {what:42s} {rate:6.1f} GFLOP/s = {rate / peak:4.0%} of 2048x2048 matmul, "
              f"{rate / ceiling:4.0%} of the same GEMMs bare ({ceiling:6.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
