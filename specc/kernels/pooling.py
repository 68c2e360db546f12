"""Average pooling, global max pooling and upsampling (nearest and bilinear) over channels-last arrays.

Like kernels.conv (whose run helpers these reuse), every kernel is single-threaded, releases the GIL, works
on the images [first, stop) of a batch and writes only their rows, so a layer can run several ranges at once
on threads of its own (specc.runtime.workers). All arrays must be C-contiguous. Pooling windows are placed
as kernels.conv.maxpool_forward places them (explicit top/left padding; cells outside the image are never
read), which is how Keras places them.
"""
import numpy as np
from numba import njit

from .conv import _axpy, _output_range, add_into, copy_into, zero_fill


@njit(cache=True, nogil=True)
def _scale(dst, d, src, s, factor, count):
    """dst[d:d + count] = factor * src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] = factor * src[s + q]


@njit(cache=True, nogil=True)
def avgpool_forward(x, inv_counts, ph, pw, sh, sw, pad_top, pad_left, first, stop, y):
    """For images n in [first, stop): y[n, oh, ow, c] <- inv_counts[oh, ow] * the sum of x[n, :, :, c] over
    the window of (oh, ow), whose inside cells are counted by 1 / inv_counts[oh, ow].

    x is (N, H, W, C), y (N, out_h, out_w, C). Works an output line at a time: the line is zeroed, then
    each window cell (ih, j) adds the input run it covers for every output column at once."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    xf, yf = x.reshape(-1), y.reshape(-1)
    for line_no in range(first * out_h, stop * out_h):
        n = line_no // out_h
        oh = line_no - n * out_h
        xn = n * h * w * c
        top = oh * sh - pad_top
        line = line_no * out_w
        zero_fill(yf, line * c, out_w * c)
        for ih in range(max(top, 0), min(top + ph, h)):
            for j in range(pw):
                lo, hi = _output_range(j, pad_left, sw, w, out_w)
                if sw == 1:
                    if lo < hi:
                        add_into(yf, (line + lo) * c, xf, xn + (ih * w + lo - pad_left + j) * c, (hi - lo) * c)
                else:
                    for ow in range(lo, hi):
                        add_into(yf, (line + ow) * c, xf, xn + (ih * w + ow * sw - pad_left + j) * c, c)
        for ow in range(out_w):
            _scale(yf, (line + ow) * c, yf, (line + ow) * c, inv_counts[oh, ow], c)


@njit(cache=True, nogil=True)
def avgpool_backward(dy, inv_counts, ph, pw, sh, sw, pad_top, pad_left, first, stop, dx):
    """dx[n] <- the transpose of avgpool_forward applied to dy[n], for images n in [first, stop): each
    window's dy, times its inv_counts, added to every inside cell of the window. Those images of dx are
    overwritten."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    dyf, dxf = dy.reshape(-1), dx.reshape(-1)
    scaled = np.empty(out_w * c, dtype=dx.dtype)  # one output line of dy, each window's times its inv_count
    for n in range(first, stop):
        xn = n * h * w * c
        zero_fill(dxf, xn, h * w * c)
        for oh in range(out_h):
            top = oh * sh - pad_top
            line = (n * out_h + oh) * out_w
            for ow in range(out_w):
                _scale(scaled, ow * c, dyf, (line + ow) * c, inv_counts[oh, ow], c)
            for ih in range(max(top, 0), min(top + ph, h)):
                for j in range(pw):
                    lo, hi = _output_range(j, pad_left, sw, w, out_w)
                    if sw == 1:
                        if lo < hi:
                            add_into(dxf, xn + (ih * w + lo - pad_left + j) * c, scaled, lo * c, (hi - lo) * c)
                    else:
                        for ow in range(lo, hi):
                            add_into(dxf, xn + (ih * w + ow * sw - pad_left + j) * c, scaled, ow * c, c)


@njit(cache=True, nogil=True)
def global_max_backward(x, y, dy, first, stop, dx):
    """For images n in [first, stop): dx[n, p, c] <- dy[n, c] / k if x[n, p, c] is the maximum y[n, c]
    (k = how many cells of channel c hold it), else 0: ties share the gradient equally, as the gradient of
    a maximum over whole axes is defined in JAX.

    x and dx are (N, positions, C), y and dy (N, C)."""
    positions, c = x.shape[1], x.shape[2]
    xf, dxf = x.reshape(-1), dx.reshape(-1)
    share = np.empty(c, dtype=dx.dtype)  # per channel: how many cells hold the maximum, then dy over that
    uc = np.uint64(c)
    for n in range(first, stop):
        yn, dyn = y[n], dy[n]
        start = np.uint64(n * positions * c)
        share[:] = 0
        for p in range(np.uint64(positions)):
            row = start + p * uc
            for q in range(uc):
                share[q] += 1 if xf[row + q] == yn[q] else 0
        for q in range(uc):
            share[q] = dyn[q] / share[q]
        for p in range(np.uint64(positions)):
            row = start + p * uc
            for q in range(uc):
                dxf[row + q] = share[q] if xf[row + q] == yn[q] else 0


@njit(cache=True, nogil=True)
def upsample_forward(x, rows, row_weights, cols, col_weights, first, stop, y):
    """For images n in [first, stop): y[n, i, j] <- sum over r, s in {0, 1} of
    row_weights[i, r] * col_weights[j, s] * x[n, rows[i, r], cols[j, s]].

    x is (N, H, W, C), y (N, out_h, out_w, C); rows and cols hold the two input indices each output row and
    column reads, row_weights and col_weights their weights in x's dtype. Second weights of 0 on both axes
    (nearest-neighbour upsampling, a sample on a cell centre) copy the one cell read."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    xf, yf = x.reshape(-1), y.reshape(-1)
    uc = np.uint64(c)
    for n in range(first, stop):
        for i in range(out_h):
            r0 = np.uint64((n * h + rows[i, 0]) * w * c)
            r1 = np.uint64((n * h + rows[i, 1]) * w * c)
            a0, a1 = row_weights[i, 0], row_weights[i, 1]
            for j in range(out_w):
                c0, c1 = np.uint64(cols[j, 0] * c), np.uint64(cols[j, 1] * c)
                b0, b1 = col_weights[j, 0], col_weights[j, 1]
                d = np.uint64(((n * out_h + i) * out_w + j) * c)
                if a1 == 0 and b1 == 0:
                    copy_into(yf, d, xf, r0 + c0, c)
                    continue
                w00, w01, w10, w11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
                for q in range(uc):
                    yf[d + q] = (w00 * xf[r0 + c0 + q] + w01 * xf[r0 + c1 + q]
                                 + w10 * xf[r1 + c0 + q] + w11 * xf[r1 + c1 + q])


@njit(cache=True, nogil=True)
def upsample_backward(dy, rows, row_weights, cols, col_weights, first, stop, dx):
    """dx[n] <- the transpose of upsample_forward applied to dy[n], for images n in [first, stop): each
    output cell's gradient added to the input cells it mixes, with their weights. Those images of dx are
    overwritten.

    Separable: an output row's gradient is first gathered into a buffer one input row long (the column
    weights), which is then added to the output row's two input rows (the row weights)."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    dyf, dxf = dy.reshape(-1), dx.reshape(-1)
    row = np.empty(w * c, dtype=dx.dtype)
    uc = np.uint64(c)
    for n in range(first, stop):
        zero_fill(dxf, n * h * w * c, h * w * c)
        for i in range(out_h):
            zero_fill(row, 0, w * c)
            for j in range(out_w):
                c0, c1 = np.uint64(cols[j, 0] * c), np.uint64(cols[j, 1] * c)
                b0, b1 = col_weights[j, 0], col_weights[j, 1]
                s = np.uint64(((n * out_h + i) * out_w + j) * c)
                if b1 == 0:
                    _axpy(row, c0, b0, dyf, s, c)
                    continue
                for q in range(uc):
                    g = dyf[s + q]
                    row[c0 + q] += b0 * g
                    row[c1 + q] += b1 * g
            _axpy(dxf, (n * h + rows[i, 0]) * w * c, row_weights[i, 0], row, 0, w * c)
            if row_weights[i, 1] != 0:
                _axpy(dxf, (n * h + rows[i, 1]) * w * c, row_weights[i, 1], row, 0, w * c)
