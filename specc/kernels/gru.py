"""GRU recurrence kernels (Keras gate order z, r, h), driven by layers/recurrent.py as the LSTM's are
(kernels/lstm.py says why: per-step BLAS GEMMs for h_{t-1} @ recurrent_kernel, one fused numba call over
the batch for everything else; time-major arrays; the activations' fast float32 paths).

Keras' equations, with x_z, x_r, x_h = x @ kernel + input bias and m = h_{t-1} @ recurrent_kernel:

    reset_after (Keras' default; bias (2, 3u): input bias, recurrent bias b'):
        z = ract(x_z + m_z + b'_z)   r = ract(x_r + m_r + b'_r)   hh = act(x_h + r * (m_h + b'_h))
    not reset_after (bias (3u)): m over the z and r columns only, then
        z = ract(x_z + m_z)          r = ract(x_r + m_r)          hh = act(x_h + (r * h_{t-1}) @ U_h)
    h_t = z * h_{t-1} + (1 - z) * hh

so a step is forward_gates, (without reset_after: the GEMM of r * h_{t-1}), forward_state. Backward,
per step: backward_candidate gives the pre-activation gradients and the part of d h_{t-1} that does not
go through a GEMM (z * dh); without reset_after, after d(r * h_{t-1}) = d hh_pre @ U_h.T in BLAS,
backward_reset gives r's. Masked rows (keep false) carry h over and get zero gradients.
"""
import numpy as np
from numba import njit

from .lstm import _OPTS, _activate, _slope


@njit(**_OPTS)
def forward_gates(z, m, rb, t, ract, fast, mh, reset_after, keep):
    """The update and reset gates of step t: z[t, :, 0:2] <- ract(z + m + rb) in place.

    z (T, B, 3, u): x @ kernel + input bias of every step; m (B, 3, u) with reset_after, else (B, 2, u):
    h_{t-1} @ recurrent_kernel (its z and r columns without reset_after); rb (3, u): the recurrent bias
    (zeros without one). With reset_after, mh[t] <- m_h + rb_h, the candidate's recurrent part."""
    T, B, _, u = z.shape
    masked = keep.shape[0] > 0
    for b in range(B):
        if masked and not keep[t, b]:
            continue
        zt = z[t, b]
        mb = m[b]
        for q in range(2):
            for k in range(u):
                zt[q, k] += mb[q, k] + rb[q, k]
        _activate(zt[0], ract, fast)
        _activate(zt[1], ract, fast)
        if reset_after:
            out = mh[t, b]
            for k in range(u):
                out[k] = mb[2, k] + rb[2, k]


@njit(**_OPTS)
def forward_state(z, mh, t, act, fast, hs, reset_after, keep):
    """The candidate and the new state of step t: z[t, :, 2] <- hh, hs[t+1] <- h_t.

    mh (T, B, u): the candidate's recurrent part (m_h + b'_h with reset_after, (r * h_{t-1}) @ U_h
    without); hs (T+1, B, u): the state before step t at [t] (the initial state at 0)."""
    T, B, _, u = z.shape
    masked = keep.shape[0] > 0
    for b in range(B):
        hp = hs[t, b]
        h = hs[t + 1, b]
        if masked and not keep[t, b]:
            for k in range(u):
                h[k] = hp[k]
            continue
        g = z[t, b]
        rec = mh[t, b]
        if reset_after:
            for k in range(u):
                g[2, k] += g[1, k] * rec[k]
        else:
            for k in range(u):
                g[2, k] += rec[k]
        _activate(g[2], act, fast)
        for k in range(u):
            h[k] = g[0, k] * hp[k] + (1 - g[0, k]) * g[2, k]


@njit(**_OPTS)
def backward_candidate(dy, t, gates, hs, mh, act, ract, reset_after, dh, dgx, dgm, carry, keep):
    """Step t of backpropagation through time (call for t = T-1 down to 0).

    dy (Ty, B, u): the outputs' gradient (Ty = T: every step's h; 1: the last one's). dh (B, u): in,
    d loss / d h_t from the steps after; dy is added. Written for step t: dgx[t] (T, B, 3, u), the
    gradient of the pre-activations x_z, x_r, x_h (x_r only with reset_after: backward_reset does it
    otherwise); with reset_after dgm[t], that of m + b' (z and r as dgx, h times r); carry[b] (B, u),
    the part of d loss / d h_{t-1} that is not a GEMM's: z * dh (dh itself in a masked row)."""
    T, B, _, u = gates.shape
    off = T - dy.shape[0]
    masked = keep.shape[0] > 0
    slope_z = np.empty(u, dgx.dtype)
    slope_h = np.empty(u, dgx.dtype)
    slope_r = np.empty(u, dgx.dtype)
    for b in range(B):
        dhb = dh[b]
        if t >= off:
            dyt = dy[t - off, b]
            for k in range(u):
                dhb[k] += dyt[k]
        d = dgx[t, b]
        cb = carry[b]
        if masked and not keep[t, b]:
            for q in range(3):
                for k in range(u):
                    d[q, k] = 0
            if reset_after:
                dm = dgm[t, b]
                for q in range(3):
                    for k in range(u):
                        dm[q, k] = 0
            for k in range(u):
                cb[k] = dhb[k]
            continue
        g = gates[t, b]
        hp = hs[t, b]
        _slope(g[0], slope_z, ract)
        _slope(g[2], slope_h, act)
        for k in range(u):
            d[0, k] = dhb[k] * (hp[k] - g[2, k]) * slope_z[k]
            d[2, k] = dhb[k] * (1 - g[0, k]) * slope_h[k]
            cb[k] = dhb[k] * g[0, k]
        if reset_after:
            _slope(g[1], slope_r, ract)
            rec = mh[t, b]
            dm = dgm[t, b]
            for k in range(u):
                d[1, k] = d[2, k] * rec[k] * slope_r[k]
                dm[0, k] = d[0, k]
                dm[1, k] = d[1, k]
                dm[2, k] = d[2, k] * g[1, k]


@njit(**_OPTS)
def backward_reset(drh, t, gates, hm, ract, dgx, keep):
    """Without reset_after: the reset gate's part of step t, from drh (B, u) = d(r * h_{t-1}), which
    becomes d h_{t-1} through r in place; hm (B, u): h_{t-1} as the GEMMs saw it. dgx[t, :, 1] <- d x_r."""
    T, B, _, u = gates.shape
    masked = keep.shape[0] > 0
    slope_r = np.empty(u, dgx.dtype)
    for b in range(B):
        d = dgx[t, b]
        if masked and not keep[t, b]:
            continue  # dgx[t, b] is zero, and so is drh[b]
        g = gates[t, b]
        _slope(g[1], slope_r, ract)
        dr = drh[b]
        hb = hm[b]
        for k in range(u):
            d[1, k] = dr[k] * hb[k] * slope_r[k]
            dr[k] *= g[1, k]
