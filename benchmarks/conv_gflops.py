"""Conv2D forward+backward throughput (GFLOP/s) at the benchmark's sizes, next to numpy's matmul rate.

    python benchmarks/conv_gflops.py [--repeat 5]

The layers of the shared vision, inception and residual specs at their benchmark batch sizes. FLOPs
counted are the convolution's multiply-adds (2 * N*OH*OW * kh*kw*C * filters per GEMM); a forward +
backward pass does three such GEMMs (output, kernel gradient, input gradient), two for a first layer,
whose input gradient nobody needs (as in training). Bias, activation and im2col/col2im are overhead that
the rate includes but does not count. Layers that Conv2D computes by Winograd's algorithm (marked
winograd) do 2.25x fewer multiply-adds than counted: theirs is the rate of an im2col GEMM that took as
long, and can exceed matmul's. Each rate is also given as a share of numpy's float32 2048^3
matmul rate, measured in the same process before and after (their mean): what BLAS can do on this machine
at that moment. Times are the best of --repeat runs; on a shared machine, anything else running (see the
load average printed) shows up as noise.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_time, matmul_gflops

from specc.layers.conv import Conv2D, MaxPooling2D
from specc.runtime import blas


def conv_rate(batch, size, channels, filters, k, padding, activation, need_dx, repeat):
    layer = Conv2D(type="Conv2D", filters=filters, kernel_size=k, padding=padding, activation=activation)
    rng = np.random.default_rng(0)
    shapes = layer.weight_shapes([(size, size, channels)])
    weights = {name: w.astype(np.float32) for name, w in layer.init_weights(shapes, rng).items()}
    x = rng.standard_normal((batch, size, size, channels), dtype=np.float32)
    out = layer.output_shape([x.shape[1:]])
    dy = rng.standard_normal((batch, *out), dtype=np.float32)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}

    def forward():
        return layer.forward(weights, [x], training=True)

    def step():
        _, cache = forward()
        layer.backward(weights, grads, cache, dy, need_dx)

    gemm = 2 * batch * out[0] * out[1] * k * k * channels * filters
    with blas.managed():  # as in training
        t_fwd = best_time(forward, repeat)
        t_step = best_time(step, repeat)
    path = "direct" if layer._direct(channels) else "winograd" if layer._winograd(channels) else "im2col"
    return gemm / t_fwd / 1e9, (3 if need_dx else 2) * gemm / t_step / 1e9, t_fwd, t_step, path


def pool_time(batch, size, channels, pool, stride, repeat):
    layer = MaxPooling2D(type="MaxPooling2D", pool_size=pool, strides=stride, padding="same")
    x = np.random.default_rng(0).standard_normal((batch, size, size, channels), dtype=np.float32)

    def step():
        y, cache = layer.forward({}, [x], training=True)
        layer.backward({}, {}, cache, y)

    return best_time(step, repeat)


# (spec, batch, input size, channels, filters, kernel, padding, activation, input gradient needed)
CASES = [
    ("shared_vision conv_1", 32, 27, 1, 64, 3, "valid", "linear", False),
    ("shared_vision conv_2", 32, 25, 64, 64, 3, "valid", "linear", True),
    ("inception tower_1a", 8, 256, 3, 64, 1, "same", "relu", False),
    ("inception tower_1", 8, 256, 64, 64, 3, "same", "relu", True),
    ("inception tower_2", 8, 256, 64, 64, 5, "same", "relu", True),
    ("residual y", 8, 256, 3, 3, 3, "same", "linear", False),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    before = matmul_gflops()
    results = []
    for _, batch, size, channels, filters, k, padding, activation, need_dx in CASES:
        results.append(conv_rate(batch, size, channels, filters, k, padding, activation, need_dx, args.repeat))
    after = matmul_gflops()
    peak = (before + after) / 2
    print(f"numpy float32 matmul 2048x2048: {before:.1f} GFLOP/s before, {after:.1f} after; "
          f"shares below are of their mean, {peak:.1f}")
    print("Conv2D, float32 (forward+backward: the kernel and bias gradients, and the input gradient "
          "where marked dx):")
    for (name, batch, size, channels, filters, k, padding, _, need_dx), result in zip(CASES, results):
        fwd, step, t_fwd, t_step, path = result
        shape = f"{batch}x{size}x{size}x{channels} -> {filters} {k}x{k} {padding}{' dx' if need_dx else ''}"
        print(f"  {name:21s} {shape:34s} {path:8s} "
              f"forward {fwd:6.1f} GFLOP/s ({t_fwd * 1e3:7.1f} ms) = {fwd / peak:4.0%}, "
              f"forward+backward {step:6.1f} GFLOP/s ({t_step * 1e3:7.1f} ms) = {step / peak:4.0%} of matmul")
    for size, channels, pool, stride in [(256, 3, 3, 1), (256, 192, 16, None)]:
        t = pool_time(8, size, channels, pool, stride, args.repeat)
        print(f"MaxPooling2D {pool}x{pool} stride {stride or pool} same on 8x{size}x{size}x{channels}: "
              f"forward+backward {t * 1e3:.1f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
