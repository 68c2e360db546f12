"""Convolution and max-pooling kernels for channels-last (NHWC) images.

Convolution runs as GEMM: `im2col_rows` unfolds output rows into a (rows, kh*kw*C) matrix that numpy
multiplies by the kernel, and `col2im_rows_add` folds column gradients back into the input gradient. Both
work on *lines*: a line is one output row (image n, output row oh), numbered n * out_h + oh, so a caller
can unfold any slice of the batch (several images, or a few rows of one) into a bounded buffer.

Padding is explicit (top/left); cells outside the image read as zero (convolution) or are never
candidates (pooling). All arrays must be C-contiguous. Inner loops go through the `_copy`-style helpers
below, which index with unsigned integers: that removes Numba's negative-index wraparound test and lets
LLVM vectorize the loop (about 5x faster than plain signed indexing here).
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _copy(dst, d, src, s, count):
    """dst[d:d + count] = src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] = src[s + q]


@njit(cache=True)
def _add(dst, d, src, s, count):
    """dst[d:d + count] += src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] += src[s + q]


@njit(cache=True)
def _zero(dst, d, count):
    """dst[d:d + count] = 0 over a flat array."""
    d = np.uint64(d)
    for q in range(np.uint64(count)):
        dst[d + q] = 0


@njit(cache=True)
def _iota(dst, d, start, count):
    """dst[d + q] = start + q for q < count."""
    d = np.uint64(d)
    for q in range(np.uint64(count)):
        dst[d + q] = start + np.int64(q)


@njit(cache=True)
def _max_update(y, arg, d, x, s, at, count):
    """Where x[s + q] > y[d + q]: take it, and record at + q as where it came from.

    Written with selects rather than a branch so that it vectorizes."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        v, old = x[s + q], y[d + q]
        take = v > old
        y[d + q] = v if take else old
        arg[d + q] = (at + np.int64(q)) if take else arg[d + q]


@njit(cache=True)
def im2col_rows(x, line_start, line_stop, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, cols):
    """cols[r] <- the kh*kw*C input patch under output pixel r of lines [line_start, line_stop).

    x is (N, H, W, C); row r = (line - line_start) * out_w + ow; a patch is laid out (kernel row, kernel
    column, channel), matching kernel.reshape(kh * kw * C, filters). Rows past the range are untouched."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    depth = cols.shape[1]
    run = kw * c  # one kernel row of a patch: contiguous in x when the window is inside horizontally
    for line in range(line_start, line_stop):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        row0 = (line - line_start) * out_w
        for ow in range(out_w):
            left = ow * sw - pad_left
            inside = left >= 0 and left + kw <= w
            for i in range(kh):
                ih = top + i
                dst = (row0 + ow) * depth + i * run
                if ih < 0 or ih >= h:
                    _zero(cf, dst, run)
                elif inside:
                    _copy(cf, dst, xf, ((n * h + ih) * w + left) * c, run)
                else:
                    for j in range(kw):
                        iw = left + j
                        if iw < 0 or iw >= w:
                            _zero(cf, dst, c)
                        else:
                            _copy(cf, dst, xf, ((n * h + ih) * w + iw) * c, c)
                        dst += c


@njit(cache=True)
def col2im_rows_add(dcols, line_start, line_stop, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, dx):
    """dx += the column gradients dcols of lines [line_start, line_stop), each added where im2col_rows
    read it: the exact transpose of im2col_rows (padding cells receive nothing)."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    dxf = dx.reshape(-1)
    cf = dcols.reshape(-1)
    depth = dcols.shape[1]
    run = kw * c
    for line in range(line_start, line_stop):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        row0 = (line - line_start) * out_w
        for ow in range(out_w):
            left = ow * sw - pad_left
            inside = left >= 0 and left + kw <= w
            for i in range(kh):
                ih = top + i
                if ih < 0 or ih >= h:
                    continue
                src = (row0 + ow) * depth + i * run
                if inside:
                    _add(dxf, ((n * h + ih) * w + left) * c, cf, src, run)
                else:
                    for j in range(kw):
                        iw = left + j
                        if 0 <= iw < w:
                            _add(dxf, ((n * h + ih) * w + iw) * c, cf, src, c)
                        src += c


@njit(cache=True)
def maxpool_forward(x, ph, pw, sh, sw, pad_top, pad_left, y, argmax):
    """y[n, oh, ow, c] <- max of x[n, :, :, c] over the window; argmax[n, oh, ow, c] <- the flat index of
    the winning cell within image n, (ih * W + iw) * C + c (the first in row-major order on ties).

    Only cells inside the image are candidates; every window must hold at least one ('same' padding
    placed as TensorFlow does guarantees it). Works an output line at a time: with stride 1 along the
    width, one window cell of every window on a line is one contiguous run of x."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    for n in range(x.shape[0]):
        xn = n * h * w * c
        for oh in range(out_h):
            top = oh * sh - pad_top
            i0, i1 = max(top, 0), min(top + ph, h)
            line = (n * out_h + oh) * out_w
            # start every window from its first inside cell: row i0, its first inside column
            for ow in range(out_w):
                left = ow * sw - pad_left
                if left >= 0 and sw == 1:  # the rest of the line in one run
                    at = (i0 * w + left) * c
                    _copy(yf, (line + ow) * c, xf, xn + at, (out_w - ow) * c)
                    _iota(af, (line + ow) * c, at, (out_w - ow) * c)
                    break
                at = (i0 * w + max(left, 0)) * c
                _copy(yf, (line + ow) * c, xf, xn + at, c)
                _iota(af, (line + ow) * c, at, c)
            for ih in range(i0, i1):
                for j in range(pw):
                    # the output columns [lo, hi) whose window column j falls inside the image
                    lo = max(0, -((j - pad_left) // sw))
                    hi = min(out_w, (w - 1 + pad_left - j) // sw + 1)
                    if sw == 1:
                        if lo < hi:
                            at = (ih * w + lo - pad_left + j) * c
                            _max_update(yf, af, (line + lo) * c, xf, xn + at, at, (hi - lo) * c)
                    else:
                        for ow in range(lo, hi):
                            at = (ih * w + ow * sw - pad_left + j) * c
                            _max_update(yf, af, (line + ow) * c, xf, xn + at, at, c)


@njit(cache=True)
def maxpool_backward_add(dy, argmax, dx):
    """dx += dy routed to the cell each window's maximum came from (argmax from maxpool_forward)."""
    dyf, af, dxf = dy.reshape(-1), argmax.reshape(-1), dx.reshape(-1)
    n_images = dy.shape[0]
    per_out, per_image = dyf.size // n_images, dxf.size // n_images
    for n in range(n_images):
        base = np.uint64(n * per_image)
        for k in range(np.uint64(n * per_out), np.uint64((n + 1) * per_out)):
            dxf[base + np.uint64(af[k])] += dyf[k]
