"""Conv2DTranspose and SeparableConv2D forward+backward throughput (GFLOP/s) at keras.io's sizes, next to
numpy's matmul rate; DepthwiseConv2D's time and memory traffic.

    python benchmarks/conv_variants_gflops.py [--repeat 5] [--batch 8]

The convolutional autoencoder's decoder (Conv2DTranspose(32, 3, strides 2, padding same, relu) on 7x7 and
14x14 maps, at its fit batch of 128) and a small version of the mini-Xception's separable blocks (its
SeparableConv2D(3x3, same) layers at their image sizes and channels, at --batch images instead of its 128).

FLOPs counted are the multiply-adds of the layer's products: a transposed convolution's GEMM, 2 * N*H*W
(input pixels) * kh*kw*filters * channels, three times forward + backward (output, kernel gradient, input
gradient); a separable convolution's pointwise GEMM, 2 * N*OH*OW * C*M * filters, and its depthwise part,
2 * N*OH*OW * kh*kw * C*M, each three times forward + backward. Bias, activation, im2col/col2im and the
depthwise output the backward pass recomputes are overhead that the rate includes but does not count. Each
rate is also given as a share of numpy's float32 2048^3 matmul rate, measured in the same process before
and after (their mean): what BLAS can do on this machine at that moment. Times are the best of --repeat
runs; on a shared machine, anything else running (see the load average printed) shows up as noise.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_time, matmul_gflops

from specc.layers.conv_variants import Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from specc.runtime import blas


def timings(layer, batch, input_shape, need_dx, repeat):
    """(forward time, forward+backward time) of a layer over a float32 batch, in training's thread settings."""
    rng = np.random.default_rng(0)
    shapes = layer.weight_shapes([input_shape])
    weights = {name: w.astype(np.float32) for name, w in layer.init_weights(shapes, rng).items()}
    x = rng.standard_normal((batch, *input_shape), dtype=np.float32)
    dy = rng.standard_normal((batch, *layer.output_shape([input_shape])), dtype=np.float32)
    grads = {name: np.zeros_like(w) for name, w in weights.items()}

    def forward():
        return layer.forward(weights, [x], training=True)

    def step():
        _, cache = forward()
        layer.backward(weights, grads, cache, dy, need_dx)

    with blas.managed():
        return best_time(forward, repeat), best_time(step, repeat)


# (spec layer, batch, input size, channels, filters): the autoencoder's decoder, both layers need dx
TRANSPOSED = [
    ("conv_autoencoder conv2d_transpose", 128, 7, 32, 32),
    ("conv_autoencoder conv2d_transpose_1", 128, 14, 32, 32),
]
# (spec layer, input size, channels, filters): mini-Xception's separable convolutions, all 3x3 same with dx
SEPARABLE = [
    ("mini_xception block1_sep_a", 90, 128, 256),
    ("mini_xception block1_sep_b", 90, 256, 256),
    ("mini_xception block2_sep_a", 45, 256, 512),
    ("mini_xception block3_sep_b", 23, 728, 728),
    ("mini_xception exit_sep", 12, 728, 1024),
]


def transposed_row(name, batch, size, channels, filters, repeat):
    layer = Conv2DTranspose(type="Conv2DTranspose", filters=filters, kernel_size=3, strides=2, padding="same",
                            activation="relu")
    t_fwd, t_step = timings(layer, batch, (size, size, channels), True, repeat)
    flops = 2 * batch * size * size * 9 * filters * channels
    shape = f"{batch}x{size}x{size}x{channels} -> {filters} 3x3/2 same dx"
    return f"Conv2DTranspose {name}", shape, flops / t_fwd / 1e9, 3 * flops / t_step / 1e9, t_fwd, t_step


def separable_row(name, batch, size, channels, filters, repeat):
    layer = SeparableConv2D(type="SeparableConv2D", filters=filters, kernel_size=3, padding="same")
    t_fwd, t_step = timings(layer, batch, (size, size, channels), True, repeat)
    pixels = batch * size * size
    flops = 2 * pixels * channels * filters + 2 * pixels * 9 * channels
    shape = f"{batch}x{size}x{size}x{channels} -> {filters} 3x3 same dx"
    return f"SeparableConv2D {name}", shape, flops / t_fwd / 1e9, 3 * flops / t_step / 1e9, t_fwd, t_step


def depthwise_line(batch, size, channels, repeat):
    """DepthwiseConv2D(3, same) alone: memory bound, so its time and the bytes it must move (input and
    output forward; input, output gradient and input gradient backward) per second."""
    layer = DepthwiseConv2D(type="DepthwiseConv2D", kernel_size=3, padding="same")
    t_fwd, t_step = timings(layer, batch, (size, size, channels), True, repeat)
    image_bytes = batch * size * size * channels * 4
    return (f"DepthwiseConv2D 3x3 same on {batch}x{size}x{size}x{channels}: forward {t_fwd * 1e3:.1f} ms "
            f"({2 * image_bytes / t_fwd / 1e9:.1f} GB/s), forward+backward {t_step * 1e3:.1f} ms "
            f"({5 * image_bytes / t_step / 1e9:.1f} GB/s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="mini-Xception images per batch")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    before = matmul_gflops()
    rows = [transposed_row(*case, args.repeat) for case in TRANSPOSED]
    rows += [separable_row(name, args.batch, *rest, args.repeat) for name, *rest in SEPARABLE]
    depthwise = depthwise_line(args.batch, 90, 256, args.repeat)
    after = matmul_gflops()
    peak = (before + after) / 2
    print(f"numpy float32 matmul 2048x2048: {before:.1f} GFLOP/s before, {after:.1f} after; "
          f"shares below are of their mean, {peak:.1f}")
    print("float32 (forward+backward: the weight and bias gradients and the input gradient, marked dx):")
    width = max(len(name) for name, *_ in rows)
    for name, shape, fwd, step, t_fwd, t_step in rows:
        print(f"  {name:{width}s} {shape:33s} "
              f"forward {fwd:6.1f} GFLOP/s ({t_fwd * 1e3:7.1f} ms) = {fwd / peak:4.0%}, "
              f"forward+backward {step:6.1f} GFLOP/s ({t_step * 1e3:7.1f} ms) = {step / peak:4.0%} of matmul")
    print(depthwise)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
