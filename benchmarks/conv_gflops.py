"""Conv2D forward+backward throughput (GFLOP/s) at inception-module sizes, next to numpy's matmul rate.

    python benchmarks/conv_gflops.py [--batch 8] [--size 256] [--repeat 3]

FLOPs counted are the convolution's multiply-adds (2 * N*OH*OW * kh*kw*C * filters per GEMM); a forward
+ backward pass does three such GEMMs (output, kernel gradient, input gradient). Bias, activation and
im2col/col2im are overhead that the rate includes but does not count. Times are the best of --repeat
runs; on a shared machine, anything else running (see the load average printed) shows up as noise.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from specc.layers.conv import Conv2D, MaxPooling2D


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: numba compilation, page faults
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(n: int = 2048, repeat: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    return 2 * n ** 3 / best_time(lambda: a @ b, repeat) / 1e9


def conv_rate(batch, size, channels, filters, k, repeat, activation="relu"):
    layer = Conv2D(type="Conv2D", filters=filters, kernel_size=k, padding="same", activation=activation)
    rng = np.random.default_rng(0)
    shapes = layer.weight_shapes([(size, size, channels)])
    weights = {name: w.astype(np.float32) for name, w in layer.init_weights(shapes, rng).items()}
    x = rng.standard_normal((batch, size, size, channels), dtype=np.float32)
    dy = rng.standard_normal((batch, size, size, filters), dtype=np.float32)

    def forward():
        return layer.forward(weights, [x], training=True)

    def step():
        grads = {name: np.zeros_like(w) for name, w in weights.items()}
        _, cache = forward()
        layer.backward(weights, grads, cache, dy)

    gemm = 2 * batch * size * size * k * k * channels * filters
    t_fwd = best_time(forward, repeat)
    t_step = best_time(step, repeat)
    return gemm / t_fwd / 1e9, 3 * gemm / t_step / 1e9, t_fwd, t_step


def pool_time(batch, size, channels, repeat):
    layer = MaxPooling2D(type="MaxPooling2D", pool_size=3, strides=1, padding="same")
    x = np.random.default_rng(0).standard_normal((batch, size, size, channels), dtype=np.float32)

    def step():
        y, cache = layer.forward({}, [x], training=True)
        layer.backward({}, {}, cache, y)

    return best_time(step, repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    peak = matmul_rate()
    print(f"numpy float32 matmul 2048x2048: {peak:7.1f} GFLOP/s")
    print(f"Conv2D, batch {args.batch}, {args.size}x{args.size}, padding same, relu, float32:")
    for channels, filters, k in [(3, 64, 1), (3, 64, 3), (64, 64, 1), (64, 64, 3)]:
        fwd, step, t_fwd, t_step = conv_rate(args.batch, args.size, channels, filters, k, args.repeat)
        print(f"  {channels:3d} -> {filters} {k}x{k}: forward {fwd:6.1f} GFLOP/s ({t_fwd * 1e3:7.1f} ms), "
              f"forward+backward {step:6.1f} GFLOP/s ({t_step * 1e3:7.1f} ms) = {step / peak:4.0%} of matmul")
    t = pool_time(args.batch, args.size, 64, args.repeat)
    print(f"MaxPooling2D 3x3 stride 1 same on {args.size}x{args.size}x64: forward+backward {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
