"""Convolution and max-pooling kernels for channels-last (NHWC) images.

Convolution with many filters runs as GEMM: `im2col_rows` unfolds output rows into a (rows, kh*kw*C)
matrix that numpy multiplies by the kernel, and `col2im_rows_add` folds column gradients back into the
input gradient. Both work on *lines*: a line is one output row (image n, output row oh), numbered
n * out_h + oh, so a caller can unfold any slice of the batch (several images, or a few rows of one) into
a bounded buffer. Convolution with few filters (a GEMM only a few columns wide, which BLAS runs at a
fraction of its speed) runs directly: `conv_direct_forward` and `conv_direct_kernel_grad`. 3x3 stride-1
convolutions with many channels use Winograd's algorithm instead (kernels.winograd). Each convolution
kernel here takes a dilation (dh, dw: kernel cell (i, j) reads the input i * dh rows and j * dw columns
from its window's corner) and a grouped convolution's groups (filter f reads only the channels of its
group): im2col and col2im a group's channels at a time, the direct kernels all groups at once.

Every kernel is single-threaded, releases the GIL and works on a range of images (or of their lines):
the layers run several ranges at once on threads of their own (specc.runtime.workers), with single-threaded
BLAS products in between, so one pool of threads does all the work. Numba's own threads (prange) were
tried: GNU OpenMP's idle workers spin and take the core BLAS needs next (a 3x3, 64-filter convolution
ran 10x slower), im2col on them was slower than on one thread (a chunk is copied at memory speed), and
GNU OpenMP makes a process unsafe to fork. A kernel writes only its own images' rows, and sums are
returned per range for the caller to add in a fixed order, so results do not depend on scheduling.

Padding is explicit (top/left); cells outside the image read as zero (convolution) or are never
candidates (pooling). All arrays must be C-contiguous. Inner loops go through the run helpers below
(`copy_into`, `add_into` and `zero_fill` serve kernels.winograd too), which index with unsigned integers:
that removes Numba's negative-index wraparound test and lets LLVM vectorize the loop (about 5x faster
than plain signed indexing here).
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def copy_into(dst, d, src, s, count):
    """dst[d:d + count] = src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] = src[s + q]


@njit(cache=True, nogil=True)
def add_into(dst, d, src, s, count):
    """dst[d:d + count] += src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] += src[s + q]


@njit(cache=True, nogil=True)
def _axpy(dst, d, a, src, s, count):
    """dst[d:d + count] += a * src[s:s + count] over flat arrays."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        dst[d + q] += a * src[s + q]


@njit(cache=True, nogil=True)
def _mul_add(dst, d, a, s, b, t, count):
    """dst[d:d + count] += a[s:s + count] * b[t:t + count] over flat arrays."""
    d, s, t = np.uint64(d), np.uint64(s), np.uint64(t)
    for q in range(np.uint64(count)):
        dst[d + q] += a[s + q] * b[t + q]


@njit(cache=True, nogil=True)
def zero_fill(dst, d, count):
    """dst[d:d + count] = 0 over a flat array."""
    d = np.uint64(d)
    for q in range(np.uint64(count)):
        dst[d + q] = 0


@njit(cache=True, nogil=True)
def _iota(dst, d, start, count):
    """dst[d + q] = start + q for q < count."""
    d = np.uint64(d)
    for q in range(np.uint64(count)):
        dst[d + q] = start + np.int64(q)


@njit(cache=True, nogil=True)
def _max_update(y, arg, d, x, s, at, count):
    """Where x[s + q] > y[d + q]: take it, and record at + q as where it came from.

    Written with selects rather than a branch so that it vectorizes."""
    d, s = np.uint64(d), np.uint64(s)
    for q in range(np.uint64(count)):
        v, old = x[s + q], y[d + q]
        take = v > old
        y[d + q] = v if take else old
        arg[d + q] = (at + np.int64(q)) if take else arg[d + q]


@njit(cache=True, nogil=True)
def im2col_rows(x, chan_start, chans, line_start, line_stop, kh, kw, sh, sw, dh, dw, pad_top, pad_left,
                out_h, out_w, cols):
    """cols[r] <- the kh*kw*chans input patch under output pixel r of lines [line_start, line_stop), over
    channels [chan_start, chan_start + chans) (one group's, of a grouped convolution).

    x is (N, H, W, C); row r = (line - line_start) * out_w + ow; kernel cell (i, j) of output pixel (oh, ow)
    reads input pixel (oh * sh - pad_top + i * dh, ow * sw - pad_left + j * dw) (dh, dw: the dilation). A
    patch is laid out (kernel row, kernel column, channel), matching kernel.reshape(kh * kw * chans, filters).
    Rows past the range are untouched."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    depth = cols.shape[1]
    run = kw * chans  # one kernel row of a patch
    whole_rows = dw == 1 and chans == c  # ... then contiguous in x when the window is inside horizontally
    span = (kw - 1) * dw + 1
    for line in range(line_start, line_stop):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        row0 = (line - line_start) * out_w
        for ow in range(out_w):
            left = ow * sw - pad_left
            inside = left >= 0 and left + span <= w
            for i in range(kh):
                ih = top + i * dh
                dst = (row0 + ow) * depth + i * run
                if ih < 0 or ih >= h:
                    zero_fill(cf, dst, run)
                elif inside and whole_rows:
                    copy_into(cf, dst, xf, ((n * h + ih) * w + left) * c, run)
                else:
                    for j in range(kw):
                        iw = left + j * dw
                        if iw < 0 or iw >= w:
                            zero_fill(cf, dst, chans)
                        else:
                            copy_into(cf, dst, xf, ((n * h + ih) * w + iw) * c + chan_start, chans)
                        dst += chans


@njit(cache=True, nogil=True)
def col2im_rows_add(dcols, chan_start, chans, line_start, line_stop, kh, kw, sh, sw, dh, dw, pad_top, pad_left,
                    out_h, out_w, dx):
    """dx += the column gradients dcols of lines [line_start, line_stop), each added where im2col_rows
    read it: the exact transpose of im2col_rows (padding cells receive nothing).

    Works by *input* row: each row of dx gathers everything that lands in it, kernel row by kernel row,
    so only the images the lines belong to are written (a thread can own whole images)."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    dxf = dx.reshape(-1)
    cf = dcols.reshape(-1)
    depth = dcols.shape[1]
    run = kw * chans
    whole_rows = dw == 1 and chans == c
    span = (kw - 1) * dw + 1
    n0 = line_start // out_h
    n1 = (line_stop - 1) // out_h + 1
    for q in range((n1 - n0) * h):
        n = n0 + q // h
        ih = q - (n - n0) * h
        for i in range(kh):
            t = ih + pad_top - i * dh  # = oh * sh for the output row oh whose kernel row i reads row ih
            if t < 0 or t % sh != 0 or t // sh >= out_h:
                continue
            line = n * out_h + t // sh
            if line < line_start or line >= line_stop:
                continue
            row0 = (line - line_start) * out_w
            for ow in range(out_w):
                left = ow * sw - pad_left
                src = (row0 + ow) * depth + i * run
                if whole_rows and left >= 0 and left + span <= w:
                    add_into(dxf, ((n * h + ih) * w + left) * c, cf, src, run)
                else:
                    for j in range(kw):
                        iw = left + j * dw
                        if 0 <= iw < w:
                            add_into(dxf, ((n * h + ih) * w + iw) * c + chan_start, cf, src, chans)
                        src += chans


@njit(cache=True, nogil=True)
def _output_range(j, pad_left, sw, w, out_w):
    """The output columns [lo, hi) whose window cell j columns right of the window's left edge falls inside
    an image row of width w (for a dilated kernel, j = kernel column * dilation)."""
    lo = max(0, -((j - pad_left) // sw))
    hi = min(out_w, (w - 1 + pad_left - j) // sw + 1)
    return lo, max(lo, hi)


@njit(cache=True, nogil=True)
def _row_transposed(x, n, ih, row_t):
    """row_t[c, iw] <- x[n, ih, iw, c]: one image row, channel by channel (a contiguous run each)."""
    for iw in range(x.shape[2]):
        for ch in range(x.shape[3]):
            row_t[ch, iw] = x[n, ih, iw, ch]


@njit(cache=True, nogil=True)
def conv_direct_forward(x, kernel, bias, sh, sw, dh, dw, pad_top, pad_left, first, stop, y):
    """y[n, oh, ow, f] <- bias[f] + the convolution of x with kernel (kh, kw, C / groups, F), dilated by
    (dh, dw), for images n in [first, stop); bias may be empty. With groups (C / kernel.shape[2] of them),
    filter f sees only the channels of its group, f // (F / groups).

    For few filters and channels. Per output line, the image rows under the window are transposed to
    (channel, width) and the line is accumulated transposed, (filter, width): every multiply-add is then
    a long contiguous run over the width (`_axpy`), which vectorizes, where a GEMM would be F columns
    wide. Each output element sums its window in the order (kernel row, kernel column, channel)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, group_chans, f = kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]
    group_filters = f // (c // group_chans)
    out_h, out_w = y.shape[1], y.shape[2]
    has_bias = bias.shape[0] > 0
    zero = y.dtype.type(0)
    row_t = np.empty((c, w), dtype=x.dtype)
    acc = np.empty((f, out_w), dtype=y.dtype)
    rf, af = row_t.reshape(-1), acc.reshape(-1)
    for line in range(first * out_h, stop * out_h):
        n = line // out_h
        top = (line - n * out_h) * sh - pad_top
        zero_fill(af, 0, f * out_w)
        for i in range(kh):
            ih = top + i * dh
            if ih < 0 or ih >= h:
                continue
            _row_transposed(x, n, ih, row_t)
            for j in range(kw):
                lo, hi = _output_range(j * dw, pad_left, sw, w, out_w)
                for ch in range(c):
                    group = ch // group_chans
                    for fo in range(group * group_filters, (group + 1) * group_filters):
                        wv = kernel[i, j, ch - group * group_chans, fo]
                        if sw == 1:
                            _axpy(af, fo * out_w + lo, wv, rf, ch * w + lo - pad_left + j * dw, hi - lo)
                        else:
                            for ow in range(lo, hi):
                                acc[fo, ow] += wv * row_t[ch, ow * sw - pad_left + j * dw]
        for fo in range(f):
            b = bias[fo] if has_bias else zero
            for ow in range(out_w):
                y[n, line - n * out_h, ow, fo] = acc[fo, ow] + b


@njit(cache=True, nogil=True)
def conv_direct_kernel_grad(x, dz, sh, sw, dh, dw, pad_top, pad_left, first, stop, block, dkernel, dbias):
    """dkernel[i, j, c, f] <- sum over the output pixels of images [first, stop) of dz[pixel, f] * x[input
    under (i, j), channel c of f's group]; dbias[f] <- sum of dz[..., f] (when dbias is not empty). Both
    are overwritten; dkernel is (kh, kw, C / groups, F), as the kernel.

    The transpose of conv_direct_forward, with the same transposed rows: each (i, j, c, f) term is a
    product of two contiguous runs over the width, accumulated elementwise into a (terms, width) array
    that is summed over the width at the end of each block of `block` lines (so no accumulator sums more
    than block * width terms), and the blocks in order."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, group_chans = dkernel.shape[0], dkernel.shape[1], dkernel.shape[2]
    f = dz.shape[3]
    group_filters = f // (c // group_chans)
    out_h, out_w = dz.shape[1], dz.shape[2]
    start, lines = first * out_h, stop * out_h
    blocks = (lines - start + block - 1) // block
    terms = kh * kw * group_chans * f
    partial = np.zeros((blocks, terms + f), dtype=dkernel.dtype)
    row_t = np.empty((c, w), dtype=x.dtype)
    dz_t = np.empty((f, out_w), dtype=dz.dtype)
    acc = np.empty((terms + f, out_w), dtype=dkernel.dtype)
    rf, df, af = row_t.reshape(-1), dz_t.reshape(-1), acc.reshape(-1)
    for b in range(blocks):
        zero_fill(af, 0, (terms + f) * out_w)
        for line in range(start + b * block, min(start + (b + 1) * block, lines)):
            n = line // out_h
            oh = line - n * out_h
            top = oh * sh - pad_top
            for ow in range(out_w):
                for fo in range(f):
                    dz_t[fo, ow] = dz[n, oh, ow, fo]
            for fo in range(f):
                add_into(af, (terms + fo) * out_w, df, fo * out_w, out_w)
            for i in range(kh):
                ih = top + i * dh
                if ih < 0 or ih >= h:
                    continue
                _row_transposed(x, n, ih, row_t)
                for j in range(kw):
                    lo, hi = _output_range(j * dw, pad_left, sw, w, out_w)
                    for ch in range(c):
                        group = ch // group_chans
                        for fo in range(group * group_filters, (group + 1) * group_filters):
                            term = ((i * kw + j) * group_chans + ch - group * group_chans) * f + fo
                            if sw == 1:
                                _mul_add(af, term * out_w + lo, df, fo * out_w + lo,
                                         rf, ch * w + lo - pad_left + j * dw, hi - lo)
                            else:
                                for ow in range(lo, hi):
                                    acc[term, ow] += dz_t[fo, ow] * row_t[ch, ow * sw - pad_left + j * dw]
        for t in range(terms + f):
            s = partial.dtype.type(0)
            for ow in range(out_w):
                s += acc[t, ow]
            partial[b, t] = s
    dk, has_bias = dkernel.reshape(-1), dbias.shape[0] > 0
    dk[:] = 0
    if has_bias:
        dbias[:] = 0
    for b in range(blocks):
        for t in range(terms):
            dk[t] += partial[b, t]
        if has_bias:
            for fo in range(f):
                dbias[fo] += partial[b, terms + fo]


@njit(cache=True, nogil=True)
def maxpool_forward(x, ph, pw, sh, sw, pad_top, pad_left, first, stop, y, argmax):
    """For images n in [first, stop): y[n, oh, ow, c] <- max of x[n, :, :, c] over the window;
    argmax[n, oh, ow, c] <- the flat index of the winning cell within image n, (ih * W + iw) * C + c (the
    first in row-major order on ties).

    Only cells inside the image are candidates; every window must hold at least one ('same' padding
    placed as TensorFlow does guarantees it). Works an output line at a time: with stride 1 along the
    width, one window cell of every window on a line is one contiguous run of x."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[1], y.shape[2]
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    for line_no in range(first * out_h, stop * out_h):
        n = line_no // out_h
        oh = line_no - n * out_h
        xn = n * h * w * c
        top = oh * sh - pad_top
        i0, i1 = max(top, 0), min(top + ph, h)
        line = line_no * out_w
        # start every window from its first inside cell: row i0, its first inside column
        for ow in range(out_w):
            left = ow * sw - pad_left
            if left >= 0 and sw == 1:  # the rest of the line in one run
                at = (i0 * w + left) * c
                copy_into(yf, (line + ow) * c, xf, xn + at, (out_w - ow) * c)
                _iota(af, (line + ow) * c, at, (out_w - ow) * c)
                break
            at = (i0 * w + max(left, 0)) * c
            copy_into(yf, (line + ow) * c, xf, xn + at, c)
            _iota(af, (line + ow) * c, at, c)
        for ih in range(i0, i1):
            for j in range(pw):
                lo, hi = _output_range(j, pad_left, sw, w, out_w)
                if sw == 1:
                    if lo < hi:
                        at = (ih * w + lo - pad_left + j) * c
                        _max_update(yf, af, (line + lo) * c, xf, xn + at, at, (hi - lo) * c)
                else:
                    for ow in range(lo, hi):
                        at = (ih * w + ow * sw - pad_left + j) * c
                        _max_update(yf, af, (line + ow) * c, xf, xn + at, at, c)


@njit(cache=True, nogil=True)
def maxpool_backward(dy, argmax, first, stop, dx):
    """dx[n] <- dy[n] routed to the cell each window's maximum came from (argmax from maxpool_forward),
    zero elsewhere, for images n in [first, stop); those images of dx are overwritten."""
    n_images = dy.shape[0]
    per_out, per_image = dy.size // n_images, dx.size // n_images
    dyf, af, dxf = dy.reshape(-1), argmax.reshape(-1), dx.reshape(-1)
    for n in range(first, stop):
        zero_fill(dxf, n * per_image, per_image)
        base = np.uint64(n * per_image)
        for k in range(np.uint64(n * per_out), np.uint64((n + 1) * per_out)):
            dxf[base + np.uint64(af[k])] += dyf[k]
