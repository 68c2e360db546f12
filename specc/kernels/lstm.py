"""LSTM recurrence kernels (Keras gate order i, f, c, o): one fused step forward, one backward.

Work split (layers/recurrent.py drives it): the input projection x @ kernel + bias of all timesteps is
one BLAS GEMM; per step, h_{t-1} @ recurrent_kernel is a small numpy BLAS GEMM (B, u) @ (u, 4u) and
everything else (adding it in, the gate nonlinearities, the state update) is one call of forward_step
over the whole batch. Backward mirrors it: backward_step yields the gate-preactivation gradients of a
step, dh for the step before is dz_t @ recurrent_kernel.T in BLAS, and after the loop one GEMM each
gives d kernel, d recurrent_kernel and dx. Arrays here are time-major, (time, batch, ...): a step's
rows are one contiguous block (batch-major rows 1 KB apart every T KB made each step wait on cache
misses: 2x slower steps at 280 steps) and the per-step GEMMs get contiguous operands.

Why per-step BLAS rather than one numba kernel over all steps with the matmul written as loops:
measured on the 2-core AVX-512 machine, float32, batch 32, forward / backward ms of the recurrence
alone, same elementwise code in both (first design round, batch-major):
                          numba loops (vectorized, 1 thread)    per-step OpenBLAS (1 thread)
    units 32,  100 steps:    1.5 / 2.0                             1.3 / 0.8
    units 64,  280 steps:   12.7 / 18.6                            9.0 / 9.9
    units 256, 100 steps:   57 / 55                               33 / 25   (26 / 23 on 2 threads)
The loops reach ~15 GFMA/s at best (each FMA loads a U element and a partial sum), OpenBLAS' register-
blocked microkernel more, and the per-step Python + dispatch overhead is only ~1-2 us a call. After the
vectorization and layout fixes below, the per-step design runs the recurrence in 0.8 / 0.8 ms (units
32), 5.2 / 5.2 ms (units 64, 280 steps) and 16 / 14 ms (units 256). Threads: numba stays serial
(a prange over the batch would put numba's pool next to OpenBLAS' on 2 cores); BLAS threads as it will.

Activations are the integer codes of kernels.activation_codes: any element-wise one whose derivative
follows from its output (not NEEDS_INPUT: the gates keep only their values). tanh, sigmoid and relu have
loops of their own, the others go through kernels.activations' `value` and `slope_from_output`. With
`fast` (float32 arrays) tanh and sigmoid use a rational approximation that LLVM vectorizes (Eigen's float
tanh, as TensorFlow uses on CPU; |error| < 4e-7; sigmoid(x) = (1 + tanh(x/2)) / 2): libm's scalar
tanh/exp calls cost ~4x the rest of a step. float64 arrays always take the exact libm functions (the
gradient checks run in float64).

error_model="numpy" drops numba's per-division zero check, which otherwise blocks vectorization;
fastmath={"contract"} only lets LLVM fuse multiply-adds (no reassociation, NaN and inf semantics kept).
"""
from typing import Literal, TypedDict

import numpy as np
from numba import njit

from .activation_codes import LINEAR, RELU, SIGMOID, TANH
from .activations import slope_from_output, value


class _JitOptions(TypedDict):
    """The njit settings every kernel here shares, typed so that `njit(**_OPTS)` checks against njit's own."""
    cache: bool
    error_model: Literal["python", "numpy"]
    fastmath: set[str]


_OPTS: _JitOptions = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}}


@njit(inline="always", **_OPTS)
def _tanh32(x):
    """tanh(x) in float32 without libm: Eigen's 13/6 rational approximation (|error| < 4e-7)."""
    x = min(max(x, np.float32(-9.0)), np.float32(9.0))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    p = x * p
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return min(max(p / q, np.float32(-1.0)), np.float32(1.0))


# Every loop below starts at 0 and indexes 1-D views (or constant leading indices): numba's negative-
# index wraparound check then folds away and LLVM vectorizes; `for j in range(lo, hi): v[j]` with a
# runtime lo does not vectorize (measured ~8x slower). Hence the (..., 4, u) gate layout.

@njit(**_OPTS)
def _activate(v, act, fast):
    """v <- act(v) in place, over a 1-D array."""
    n = v.shape[0]
    if act == RELU:
        for j in range(n):
            if v[j] < 0:
                v[j] = 0
    elif act == SIGMOID:
        if fast:
            for j in range(n):
                v[j] = np.float32(0.5) * _tanh32(np.float32(0.5) * v[j]) + np.float32(0.5)
        else:
            for j in range(n):
                x = v[j]
                # the two branches keep exp() from overflowing for large |x|
                if x >= 0:
                    v[j] = 1.0 / (1.0 + np.exp(-x))
                else:
                    e = np.exp(x)
                    v[j] = e / (1.0 + e)
    elif act == TANH:
        if fast:
            for j in range(n):
                v[j] = _tanh32(v[j])
        else:
            for j in range(n):
                v[j] = np.tanh(v[j])
    elif act != LINEAR:
        for j in range(n):
            v[j] = value(v[j], act)


@njit(**_OPTS)
def _slope(y, out, act):
    """out <- act'(z), written in terms of the activation's output y = act(z), over 1-D arrays."""
    n = y.shape[0]
    if act == SIGMOID:
        for j in range(n):
            out[j] = y[j] * (np.float32(1.0) - y[j])
    elif act == TANH:
        for j in range(n):
            out[j] = np.float32(1.0) - y[j] * y[j]
    elif act == RELU:
        for j in range(n):
            out[j] = np.float32(1.0) if y[j] > 0 else np.float32(0.0)
    else:
        for j in range(n):
            out[j] = slope_from_output(y[j], act)


@njit(**_OPTS)
def forward_step(z, r, t, act, ract, fast, hs, cs, ac, keep):
    """Step t of the recurrence, for every batch row.

    z  (T, B, 4, u): x @ kernel + bias for every step, gates i, f, c, o; step t gets r added and is
                     then overwritten by the gate values after their activations (what backward needs).
    r  (B, 4, u):    h_{t-1} @ recurrent_kernel (zeros when h_{t-1} is zero).
    hs, cs (T+1, B, u): step t reads the state before it at [t] (the initial state at 0), writes [t+1].
    ac (T, B, u):    step t written with act(c_t).
    keep (T, B):     whether step t of a row counts (a mask): a row that does not carries h and c over
                     unchanged (Keras' masking); (0, 0) when every step counts.
    """
    T, B, _, u = z.shape
    masked = keep.shape[0] > 0
    for b in range(B):
        cp = cs[t, b]
        c = cs[t + 1, b]
        h = hs[t + 1, b]
        if masked and not keep[t, b]:
            hp = hs[t, b]
            for k in range(u):
                h[k] = hp[k]
                c[k] = cp[k]
            continue
        zt = z[t, b]
        rb = r[b]
        for q in range(4):
            for k in range(u):
                zt[q, k] += rb[q, k]
        _activate(zt[0], ract, fast)
        _activate(zt[1], ract, fast)
        _activate(zt[2], act, fast)
        _activate(zt[3], ract, fast)
        a = ac[t, b]
        for k in range(u):
            c[k] = zt[1, k] * cp[k] + zt[0, k] * zt[2, k]
        for k in range(u):
            a[k] = c[k]
        _activate(a, act, fast)
        for k in range(u):
            h[k] = zt[3, k] * a[k]


@njit(**_OPTS)
def backward_step(dy, t, gates, cs, ac, act, ract, dh, dc, dz, keep):
    """Step t of backpropagation through time, for every batch row (call for t = T-1 down to 0).

    dy (Ty, B, u): gradient of the outputs: Ty = T for every step's h, or Ty = 1 for the last step's only.
    gates, cs, ac, keep: as left by and given to forward_step; gates (T, B, 4, u), cs (T+1, B, u).
    dh, dc (B, u): in: d loss / d h_t from step t+1 (h_t @ U feeds it) and d loss / d c_t from step t+1
                   (the final states' gradients at t = T-1); dc is updated in place to d loss / d c_{t-1},
                   and dh gets dy added. The caller then sets dh <- dz[t] @ U.T for step t-1 (keeping dh
                   as it is in the rows whose step t is masked: they carried their state over).
    dz (T, B, 4, u): step t written with the gradient of the gate pre-activations (zero where masked).
    """
    T, B, _, u = gates.shape
    off = T - dy.shape[0]
    masked = keep.shape[0] > 0
    slope_a = np.empty(u, dz.dtype)
    for b in range(B):
        dhb = dh[b]
        dcb = dc[b]
        if t >= off:
            dyt = dy[t - off, b]
            for k in range(u):
                dhb[k] += dyt[k]
        d = dz[t, b]
        if masked and not keep[t, b]:
            for q in range(4):
                for k in range(u):
                    d[q, k] = 0
            continue
        g = gates[t, b]
        a = ac[t, b]
        cp = cs[t, b]
        _slope(g[0], d[0], ract)
        _slope(g[1], d[1], ract)
        _slope(g[2], d[2], act)
        _slope(g[3], d[3], ract)
        _slope(a, slope_a, act)
        for k in range(u):
            dcb[k] += dhb[k] * g[3, k] * slope_a[k]  # now d loss / d c_t
        for k in range(u):
            d[3, k] *= dhb[k] * a[k]
        for k in range(u):
            d[0, k] *= dcb[k] * g[2, k]
            d[1, k] *= dcb[k] * cp[k]
            d[2, k] *= dcb[k] * g[0, k]
        for k in range(u):
            dcb[k] *= g[1, k]  # d loss / d c_{t-1}
