"""Winograd F(2x2, 3x3) transforms for 3x3, stride-1 convolutions over channels-last (NHWC) images.

A convolution's output is cut into 2x2 tiles; tile t of image n covers output rows 2*th, 2*th + 1 and
columns 2*tw, 2*tw + 1 (t = (n * tiles_h + th) * tiles_w + tw) and reads the 4x4 input patch under them.
Per tile, channel and filter, Winograd's algorithm computes the 2x2 outputs with 16 multiplications
instead of 36:

    V = B^T d B    (input patch d: 4x4, per channel)       U = G g G^T   (kernel g: 3x3, per channel, filter)
    M[xi] = V[xi] @ U[xi]  for each of the 16 positions xi: a GEMM (tiles, C) @ (C, F)
    Y = A^T M A    (2x2 output, per filter)

so the multiplications are 16 GEMMs, 2.25x fewer multiply-adds than im2col's. The algorithm is linear,
so the backward pass is its exact transpose: dM = A dY A^T, dU[xi] = V[xi]^T @ dM[xi],
dV[xi] = dM[xi] @ U[xi]^T, dd = B dV B^T added into the input gradient. Every transform coefficient
is 0, +-1 (or +-1/2, in G, applied by the caller to the small kernel), so the transforms add no
rounding beyond a few additions.

Transformed arrays are (16, tiles, channels): position-major, so each GEMM reads one contiguous matrix.
Each kernel takes a range of tiles, [tile_start, tile_stop), writing row t - tile_start of its
(16, T, *) buffer. Arithmetic runs over contiguous runs of channels through the small helpers, which
LLVM vectorizes (see kernels.conv on unsigned indexing). Cells outside the image read as zero and
receive nothing; outputs past the last row or column (odd sizes) are neither written nor read.
"""
import numpy as np
from numba import njit

from .conv import add_into, copy_into, zero_fill


@njit(cache=True, nogil=True)
def _lin2(dst, d, src, a, b, sign, count):
    """dst[d:d + count] = src[a:a + count] + sign * src[b:b + count] over flat arrays."""
    d, a, b, s = np.uint64(d), np.uint64(a), np.uint64(b), dst.dtype.type(sign)
    for q in range(np.uint64(count)):
        dst[d + q] = src[a + q] + s * src[b + q]


@njit(cache=True, nogil=True)
def _lin3(dst, d, src, a, b, sign_b, c, sign_c, count):
    """dst[d:d + count] = src[a:...] + sign_b * src[b:...] + sign_c * src[c:...] over flat arrays."""
    d, a, b, c = np.uint64(d), np.uint64(a), np.uint64(b), np.uint64(c)
    sb, sc = dst.dtype.type(sign_b), dst.dtype.type(sign_c)
    for q in range(np.uint64(count)):
        dst[d + q] = src[a + q] + sb * src[b + q] + sc * src[c + q]


@njit(cache=True, nogil=True)
def _negate(dst, d, src, a, count):
    """dst[d:d + count] = -src[a:a + count] over flat arrays."""
    d, a = np.uint64(d), np.uint64(a)
    for q in range(np.uint64(count)):
        dst[d + q] = -src[a + q]


@njit(cache=True, nogil=True)
def _tile_place(t, tiles_h, tiles_w):
    """(image, tile row, tile column) of tile t."""
    per_image = tiles_h * tiles_w
    n = t // per_image
    r = t - n * per_image
    return n, r // tiles_w, r - (r // tiles_w) * tiles_w


@njit(cache=True, nogil=True)
def winograd_input(x, pad_top, pad_left, tiles_h, tiles_w, tile_start, tile_stop, v):
    """v[xi, t - tile_start, :] <- (B^T d B)[xi] for the 4x4 input patch d of each tile t (all channels).

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf, vf = x.reshape(-1), v.reshape(-1)
    tiles = v.shape[1]
    run = 4 * c  # one patch row
    patch = np.zeros(4 * run, dtype=x.dtype)  # an edge tile's patch, zero outside the image
    rows = np.empty(4 * run, dtype=x.dtype)  # B^T d
    at = np.empty(4, dtype=np.int64)
    for t in range(tile_start, tile_stop):
        n, th, tw = _tile_place(t, tiles_h, tiles_w)
        top, left = 2 * th - pad_top, 2 * tw - pad_left
        if top >= 0 and top + 4 <= h and left >= 0 and left + 4 <= w:
            src = xf
            for i in range(4):
                at[i] = ((n * h + top + i) * w + left) * c
        else:
            src = patch
            zero_fill(patch, 0, 4 * run)
            for i in range(4):
                at[i] = i * run
                if 0 <= top + i < h:
                    for j in range(4):
                        if 0 <= left + j < w:
                            copy_into(patch, i * run + j * c, xf, ((n * h + top + i) * w + left + j) * c, c)
        _lin2(rows, 0, src, at[0], at[2], -1, run)
        _lin2(rows, run, src, at[1], at[2], 1, run)
        _lin2(rows, 2 * run, src, at[2], at[1], -1, run)
        _lin2(rows, 3 * run, src, at[1], at[3], -1, run)
        k = t - tile_start
        for a in range(4):
            r = a * run
            out = (4 * a * tiles + k) * c  # v[4a + b, k] is at out + b * tiles * c
            _lin2(vf, out, rows, r, r + 2 * c, -1, c)
            _lin2(vf, out + tiles * c, rows, r + c, r + 2 * c, 1, c)
            _lin2(vf, out + 2 * tiles * c, rows, r + 2 * c, r + c, -1, c)
            _lin2(vf, out + 3 * tiles * c, rows, r + c, r + 3 * c, -1, c)


@njit(cache=True, nogil=True)
def winograd_output(m, tiles_h, tiles_w, tile_start, tile_stop, y):
    """y[2x2 tile of t] <- (A^T M A) from m[:, t - tile_start, :] (all filters), inside y only.

    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]."""
    out_h, out_w, f = y.shape[1], y.shape[2], y.shape[3]
    mf, yf = m.reshape(-1), y.reshape(-1)
    tiles = m.shape[1]
    plane = tiles * f  # from m[xi, k] to m[xi + 1, k]
    cols = np.empty(8 * f, dtype=y.dtype)  # A^T M: 2 rows of 4 positions
    for t in range(tile_start, tile_stop):
        n, th, tw = _tile_place(t, tiles_h, tiles_w)
        k = (t - tile_start) * f
        for b in range(4):
            _lin3(cols, b * f, mf, k + b * plane, k + (4 + b) * plane, 1, k + (8 + b) * plane, 1, f)
            _lin3(cols, (4 + b) * f, mf, k + (4 + b) * plane, k + (8 + b) * plane, -1,
                  k + (12 + b) * plane, -1, f)
        for i in range(2):
            oh = 2 * th + i
            if oh >= out_h:
                break
            r = 4 * i * f
            at = ((n * out_h + oh) * out_w + 2 * tw) * f
            _lin3(yf, at, cols, r, r + f, 1, r + 2 * f, 1, f)
            if 2 * tw + 1 < out_w:
                _lin3(yf, at + f, cols, r + f, r + 2 * f, -1, r + 3 * f, -1, f)


@njit(cache=True, nogil=True)
def winograd_output_grad(dy, tiles_h, tiles_w, tile_start, tile_stop, dm):
    """dm[:, t - tile_start, :] <- A dY A^T for the 2x2 tile dY of dy under each tile t (zero past the
    edges): the transpose of winograd_output."""
    out_h, out_w, f = dy.shape[1], dy.shape[2], dy.shape[3]
    dyf, dmf = dy.reshape(-1), dm.reshape(-1)
    tiles = dm.shape[1]
    plane = tiles * f
    g = np.empty(4 * f, dtype=dy.dtype)  # the tile, rows of 2 pixels
    rows = np.empty(8 * f, dtype=dy.dtype)  # A dY: 4 rows of 2 pixels
    for t in range(tile_start, tile_stop):
        n, th, tw = _tile_place(t, tiles_h, tiles_w)
        for i in range(2):
            for j in range(2):
                oh, ow = 2 * th + i, 2 * tw + j
                if oh < out_h and ow < out_w:
                    copy_into(g, (2 * i + j) * f, dyf, ((n * out_h + oh) * out_w + ow) * f, f)
                else:
                    zero_fill(g, (2 * i + j) * f, f)
        copy_into(rows, 0, g, 0, 2 * f)
        _lin2(rows, 2 * f, g, 0, 2 * f, 1, 2 * f)
        _lin2(rows, 4 * f, g, 0, 2 * f, -1, 2 * f)
        _negate(rows, 6 * f, g, 2 * f, 2 * f)
        k = (t - tile_start) * f
        for a in range(4):
            r = 2 * a * f
            out = k + 4 * a * plane
            copy_into(dmf, out, rows, r, f)
            _lin2(dmf, out + plane, rows, r, r + f, 1, f)
            _lin2(dmf, out + 2 * plane, rows, r, r + f, -1, f)
            _negate(dmf, out + 3 * plane, rows, r + f, f)


@njit(cache=True, nogil=True)
def winograd_input_grad_add(dv, pad_top, pad_left, tiles_h, tiles_w, tile_start, tile_stop, dx):
    """dx[4x4 patch of t] += B dV B^T from dv[:, t - tile_start, :], for cells inside the image: the
    transpose of winograd_input. Patches overlap, so tiles are added one after another."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    dvf, dxf = dv.reshape(-1), dx.reshape(-1)
    tiles = dv.shape[1]
    plane = tiles * c
    run = 4 * c
    cols = np.empty(4 * run, dtype=dx.dtype)  # dV B^T: 4 rows of 4 cells
    patch = np.empty(4 * run, dtype=dx.dtype)  # B dV B^T
    for t in range(tile_start, tile_stop):
        n, th, tw = _tile_place(t, tiles_h, tiles_w)
        top, left = 2 * th - pad_top, 2 * tw - pad_left
        k = (t - tile_start) * c
        for a in range(4):
            src, r = k + 4 * a * plane, a * run  # dv[4a + b, k] is at src + b * plane
            copy_into(cols, r, dvf, src, c)
            _lin3(cols, r + c, dvf, src + plane, src + 2 * plane, -1, src + 3 * plane, 1, c)
            _lin3(cols, r + 2 * c, dvf, src + plane, src + 2 * plane, 1, src, -1, c)
            _negate(cols, r + 3 * c, dvf, src + 3 * plane, c)
        copy_into(patch, 0, cols, 0, run)
        _lin3(patch, run, cols, run, 2 * run, -1, 3 * run, 1, run)
        _lin3(patch, 2 * run, cols, run, 2 * run, 1, 0, -1, run)
        _negate(patch, 3 * run, cols, 3 * run, run)
        inside = left >= 0 and left + 4 <= w
        for i in range(4):
            ih = top + i
            if ih < 0 or ih >= h:
                continue
            if inside:
                add_into(dxf, ((n * h + ih) * w + left) * c, patch, i * run, run)
            else:
                for j in range(4):
                    if 0 <= left + j < w:
                        add_into(dxf, ((n * h + ih) * w + left + j) * c, patch, i * run + j * c, c)
