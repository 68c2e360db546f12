"""Depthwise convolution kernels for channels-last (NHWC) images: each channel convolved with its own
depth_multiplier (M) filters, as DepthwiseConv2D and the first half of SeparableConv2D compute it.

A depthwise convolution does kh*kw multiply-adds per output value, too few for a GEMM: it is bound by
memory traffic, so it runs here directly, one output pixel at a time, its taps accumulated into the pixel's
C*M outputs while they sit in L1, each tap a contiguous run over the channels that vectorizes. Where a
kernel row of three taps lies inside the image (all but the edges of 3x3 and 3-tap 1-D layers), the three
run in one pass over the pixel's outputs (`_row3_forward`, `_row3_backward`): on 2 images of 90x90x256,
3x3 'same', the forward pass takes 5.2 ms on one core against 7.3 ms tap by tap. Runs are indexed through
per-pixel array views: flat runs with unsigned indices (kernels.conv's helpers) took 10 ms here.

Both kernels work on *lines*, as kernels.conv does: a line is one output row (image n, output row oh),
numbered n * out_h + oh, and output rows are laid out (line - line_start) * out_w + ow, channel c * M + m,
so a caller can run any slice of the batch into a bounded buffer (SeparableConv2D's chunks) or straight
into its output. Kernels are single-threaded, release the GIL and write only the images of their lines;
the layers run several ranges on threads of their own (specc.runtime.workers).

Geometry, as for a convolution: output pixel (oh, ow) reads, for kernel cell (i, j), input pixel
(oh * sh - pad_top + i * dh, ow * sw - pad_left + j * dw); cells outside the image read as zero.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _row3_forward(out, p0, p1, p2, taps):
    """out[c] += p0[c] * taps[0, c] + p1[c] * taps[1, c] + p2[c] * taps[2, c]: a kernel row of three taps on
    the three pixels under it (M = 1)."""
    t0, t1, t2 = taps[0], taps[1], taps[2]
    for c in range(out.shape[0]):
        out[c] += p0[c] * t0[c] + p1[c] * t1[c] + p2[c] * t2[c]


@njit(cache=True, nogil=True)
def _row3_backward(dout, p0, p1, p2, taps, dtaps, d0, d1, d2, need_dx):
    """The gradients of _row3_forward: dtaps[t, c] += dout[c] * p_t[c], and when need_dx,
    d_t[c] += dout[c] * taps[t, c]."""
    t0, t1, t2, e0, e1, e2 = taps[0], taps[1], taps[2], dtaps[0], dtaps[1], dtaps[2]
    for c in range(dout.shape[0]):
        e0[c] += dout[c] * p0[c]
        e1[c] += dout[c] * p1[c]
        e2[c] += dout[c] * p2[c]
    if need_dx:
        for c in range(dout.shape[0]):
            d0[c] += dout[c] * t0[c]
            d1[c] += dout[c] * t1[c]
            d2[c] += dout[c] * t2[c]


@njit(cache=True, nogil=True)
def _tap_forward(out, pixel, taps, multiplier):
    """out[c * M + m] += pixel[c] * taps[c * M + m]: one kernel cell of every channel."""
    if multiplier == 1:
        for c in range(out.shape[0]):
            out[c] += pixel[c] * taps[c]
        return
    for m in range(multiplier):  # m outermost: the channel loop vectorizes, strided by M
        for c in range(pixel.shape[0]):
            out[c * multiplier + m] += pixel[c] * taps[c * multiplier + m]


@njit(cache=True, nogil=True)
def _tap_backward(dout, pixel, taps, multiplier, dtaps, dpixel, need_dx):
    """The gradients of _tap_forward: dtaps[c * M + m] += dout[c * M + m] * pixel[c], and when need_dx,
    dpixel[c] += the sum over m of dout[c * M + m] * taps[c * M + m]."""
    if multiplier == 1:
        for c in range(pixel.shape[0]):
            dtaps[c] += dout[c] * pixel[c]
        if need_dx:
            for c in range(pixel.shape[0]):
                dpixel[c] += dout[c] * taps[c]
        return
    for m in range(multiplier):
        for c in range(pixel.shape[0]):
            dtaps[c * multiplier + m] += dout[c * multiplier + m] * pixel[c]
    if need_dx:
        for m in range(multiplier):
            for c in range(pixel.shape[0]):
                dpixel[c] += dout[c * multiplier + m] * taps[c * multiplier + m]


@njit(cache=True, nogil=True)
def depthwise_forward(x, kernel, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w, line_start, line_stop, out):
    """out[r, c * M + m] <- sum over (i, j) of x[n, ih, iw, c] * kernel[i, j, c, m], for the output pixels r of
    lines [line_start, line_stop); x is (N, H, W, C), kernel (kh, kw, C, M), out (rows, C * M), overwritten."""
    h, w, channels = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, multiplier = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    taps = kernel.reshape(kh, kw, channels * multiplier)
    row3 = kw == 3 and multiplier == 1
    for line in range(line_start, line_stop):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        for ow in range(out_w):
            pixel_out = out[(line - line_start) * out_w + ow]
            pixel_out[:] = 0
            left = ow * sw - pad_left
            row_inside = row3 and left >= 0 and left + 2 * dw < w
            for i in range(kh):
                ih = top + i * dh
                if ih < 0 or ih >= h:
                    continue
                if row_inside:
                    _row3_forward(pixel_out, x[n, ih, left], x[n, ih, left + dw], x[n, ih, left + 2 * dw], taps[i])
                    continue
                for j in range(kw):
                    iw = left + j * dw
                    if 0 <= iw < w:
                        _tap_forward(pixel_out, x[n, ih, iw], taps[i, j], multiplier)


@njit(cache=True, nogil=True)
def depthwise_backward(x, kernel, dout, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w, line_start, line_stop,
                       dkernel, dx):
    """The gradients of depthwise_forward over lines [line_start, line_stop), from dout (rows, C * M) laid
    out as its out: dkernel[i, j, c, m] += sum over pixels of dout[r, c * M + m] * x[n, ih, iw, c], and, when
    dx is not empty, dx[n, ih, iw, c] += sum over (i, j, m) reading it of dout[r, c * M + m] * kernel[i, j, c, m].

    The kernel gradient of each line is summed apart and then added in, so no float32 accumulator takes more
    than out_w terms at a time (a whole batch of large images would lose digits)."""
    h, w, channels = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, multiplier = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    taps = kernel.reshape(kh, kw, channels * multiplier)
    need_dx = dx.size > 0
    row3 = kw == 3 and multiplier == 1
    line_dk = np.empty(taps.shape, dtype=dkernel.dtype)
    unused_drow = np.empty((0 if need_dx else w, channels), dtype=dkernel.dtype)  # stands for dx's rows
    for line in range(line_start, line_stop):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        line_dk[:] = 0
        for ow in range(out_w):
            pixel_dout = dout[(line - line_start) * out_w + ow]
            left = ow * sw - pad_left
            row_inside = row3 and left >= 0 and left + 2 * dw < w
            for i in range(kh):
                ih = top + i * dh
                if ih < 0 or ih >= h:
                    continue
                drow = dx[n, ih] if need_dx else unused_drow
                if row_inside:
                    a, b, c = left, left + dw, left + 2 * dw
                    _row3_backward(pixel_dout, x[n, ih, a], x[n, ih, b], x[n, ih, c], taps[i], line_dk[i],
                                   drow[a], drow[b], drow[c], need_dx)
                    continue
                for j in range(kw):
                    iw = left + j * dw
                    if 0 <= iw < w:
                        _tap_backward(pixel_dout, x[n, ih, iw], taps[i, j], multiplier, line_dk[i, j], drow[iw],
                                      need_dx)
        dkernel += line_dk.reshape(dkernel.shape)
