"""Conv2D and Conv1D forward+backward throughput (GFLOP/s) at the benchmark's sizes, next to numpy's matmul rate.

    python benchmarks/conv_gflops.py [--repeat 5]

The layers of the shared vision, inception and residual specs (Conv2D), and of the text classifier and
timeseries FCN specs (Conv1D), at their batch sizes. FLOPs counted are the convolution's multiply-adds
(2 * N*OH*OW * kh*kw*C * filters per GEMM); a forward + backward pass does three such GEMMs (output, kernel
gradient, input gradient), two for a first layer, whose input gradient nobody needs (as in training). Bias,
activation and im2col/col2im are overhead that the rate includes but does not count. Layers that Conv2D
computes by Winograd's algorithm (marked winograd) do 2.25x fewer multiply-adds than counted: theirs is the
rate of an im2col GEMM that took as long, and can exceed matmul's. Each rate is also given as a share of
numpy's float32 2048^3 matmul rate, measured in the same process before and after (their mean): what BLAS
can do on this machine at that moment. Times are the best of --repeat runs; on a shared machine, anything
else running (see the load average printed) shows up as noise.
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np
from timing import best_time, matmul_gflops

from specc.layers.conv import Conv1D, Conv2D, MaxPooling2D
from specc.runtime import blas


def conv_rate(layer, batch, input_shape, need_dx, repeat):
    """(forward GFLOP/s, forward+backward GFLOP/s, their times, the algorithm) of a layer over a float32 batch."""
    rng = np.random.default_rng(0)
    shapes = layer.weight_shapes([input_shape])
    weights = {name: w.astype(np.float32) for name, w in layer.init_weights(shapes, rng).items()}
    x = rng.standard_normal((batch, *input_shape), dtype=np.float32)
    out = layer.output_shape([x.shape[1:]])
    dy = rng.standard_normal((batch, *out), dtype=np.float32)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}

    def forward():
        return layer.forward(weights, [x], training=True)

    def step():
        _, cache = forward()
        layer.backward(weights, grads, cache, dy, need_dx)

    gemm = 2 * batch * math.prod(out[:-1]) * math.prod(shapes["kernel"])
    with blas.managed():  # as in training
        t_fwd = best_time(forward, repeat)
        t_step = best_time(step, repeat)
    channels = input_shape[-1]
    path = ("direct" if layer._direct(channels) else "winograd" if layer._winograd(channels)
            else "pointwise" if layer._pointwise() else "im2col")
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
# (spec, batch, steps, channels, filters, kernel, strides, padding, activation, input gradient needed): the
# text classifier's convolutions read an Embedding, which learns, so they need their input gradient
CASES_1D = [
    ("text_classifier conv1d", 32, 500, 128, 128, 7, 3, "valid", "relu", True),
    ("text_classifier conv1d_1", 32, 165, 128, 128, 7, 3, "valid", "relu", True),
    ("timeseries_fcn conv1", 32, 500, 1, 64, 3, 1, "same", "linear", False),
    ("timeseries_fcn conv2", 32, 500, 64, 64, 3, 1, "same", "linear", True),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    before = matmul_gflops()
    rows = []
    for name, batch, size, channels, filters, k, padding, activation, need_dx in CASES:
        layer = Conv2D(type="Conv2D", filters=filters, kernel_size=k, padding=padding, activation=activation)
        shape = f"{batch}x{size}x{size}x{channels} -> {filters} {k}x{k} {padding}{' dx' if need_dx else ''}"
        rows.append((f"Conv2D {name}", shape, conv_rate(layer, batch, (size, size, channels), need_dx, args.repeat)))
    for name, batch, steps, channels, filters, k, strides, padding, activation, need_dx in CASES_1D:
        layer = Conv1D(type="Conv1D", filters=filters, kernel_size=k, strides=strides, padding=padding,
                       activation=activation)
        shape = f"{batch}x{steps}x{channels} -> {filters} {k}/{strides} {padding}{' dx' if need_dx else ''}"
        rows.append((f"Conv1D {name}", shape, conv_rate(layer, batch, (steps, channels), need_dx, args.repeat)))
    after = matmul_gflops()
    peak = (before + after) / 2
    print(f"numpy float32 matmul 2048x2048: {before:.1f} GFLOP/s before, {after:.1f} after; "
          f"shares below are of their mean, {peak:.1f}")
    print("float32 (forward+backward: the kernel and bias gradients, and the input gradient where marked dx):")
    for name, shape, (fwd, step, t_fwd, t_step, path) in rows:
        print(f"  {name:31s} {shape:34s} {path:9s} "
              f"forward {fwd:6.1f} GFLOP/s ({t_fwd * 1e3:7.1f} ms) = {fwd / peak:4.0%}, "
              f"forward+backward {step:6.1f} GFLOP/s ({t_step * 1e3:7.1f} ms) = {step / peak:4.0%} of matmul")
    for size, channels, pool, stride in [(256, 3, 3, 1), (256, 192, 16, None)]:
        t = pool_time(8, size, channels, pool, stride, args.repeat)
        print(f"MaxPooling2D {pool}x{pool} stride {stride or pool} same on 8x{size}x{size}x{channels}: "
              f"forward+backward {t * 1e3:.1f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
