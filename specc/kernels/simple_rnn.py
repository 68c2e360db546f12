"""SimpleRNN recurrence kernels, driven by layers/recurrent.py as the LSTM's are (kernels/lstm.py says why):

    h_t = act(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

Masked rows (keep false) carry h over and get zero gradients.
"""
from numba import njit

from .lstm import _OPTS, _activate, _slope


@njit(**_OPTS)
def forward_step(z, r, t, act, fast, hs, keep):
    """Step t: z[t] (T, B, u), x @ kernel + bias, gets r (B, u) = h_{t-1} @ recurrent_kernel added and
    becomes h_t, also written to hs[t+1] (hs (T+1, B, u): the initial state at 0)."""
    T, B, u = z.shape
    masked = keep.shape[0] > 0
    for b in range(B):
        h = hs[t + 1, b]
        if masked and not keep[t, b]:
            hp = hs[t, b]
            for k in range(u):
                h[k] = hp[k]
            continue
        zt = z[t, b]
        rb = r[b]
        for k in range(u):
            zt[k] += rb[k]
        _activate(zt, act, fast)
        for k in range(u):
            h[k] = zt[k]


@njit(**_OPTS)
def backward_step(dy, t, outputs, act, dh, dz, keep):
    """Step t of backpropagation through time (t = T-1 down to 0): dh (B, u) gets dy (Ty, B, u; Ty = T or
    1 for the last step only) added; dz[t] <- dh * act'(z_t), zero in masked rows. The caller then sets
    dh <- dz[t] @ U.T, keeping dh in the masked rows."""
    T, B, u = outputs.shape
    off = T - dy.shape[0]
    masked = keep.shape[0] > 0
    for b in range(B):
        dhb = dh[b]
        if t >= off:
            dyt = dy[t - off, b]
            for k in range(u):
                dhb[k] += dyt[k]
        d = dz[t, b]
        if masked and not keep[t, b]:
            for k in range(u):
                d[k] = 0
            continue
        _slope(outputs[t, b], d, act)
        for k in range(u):
            d[k] *= dhb[k]
