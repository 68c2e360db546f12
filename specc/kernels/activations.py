"""Activations fused with the bias add that precedes them, and their derivatives.

Activations are identified by the integer codes of activation_codes.py.
"""
import numpy as np
from numba import njit

from .activation_codes import LINEAR, RELU, SIGMOID, SOFTMAX, TANH


@njit(cache=True, nogil=True, error_model="numpy")
def bias_activation_forward(z, bias, act):
    """z <- act(z + bias), in place, over rows of a 2-D array; bias may be empty."""
    rows, cols = z.shape
    has_bias = bias.shape[0] > 0
    one = z.dtype.type(1.0)
    for r in range(rows):
        if has_bias:
            for c in range(cols):
                z[r, c] += bias[c]
        if act == RELU:
            for c in range(cols):
                if z[r, c] < 0:
                    z[r, c] = 0
        elif act == SIGMOID:
            for c in range(cols):
                v = z[r, c]
                # the two branches keep exp() from overflowing for large |v|
                if v >= 0:
                    z[r, c] = one / (one + np.exp(-v))
                else:
                    e = np.exp(v)
                    z[r, c] = e / (one + e)
        elif act == TANH:
            for c in range(cols):
                z[r, c] = np.tanh(z[r, c])
        elif act == SOFTMAX:
            peak = z[r, 0]
            for c in range(1, cols):
                peak = max(peak, z[r, c])
            total = z.dtype.type(0.0)
            for c in range(cols):
                z[r, c] = np.exp(z[r, c] - peak)
                total += z[r, c]
            scale = one / total
            for c in range(cols):
                z[r, c] *= scale


@njit(cache=True, nogil=True, error_model="numpy")
def activation_backward(dy, y, act, dz):
    """dz <- d(loss)/d(pre-activation) given dy = d(loss)/dy and the activation's output y."""
    rows, cols = dy.shape
    one = y.dtype.type(1.0)
    for r in range(rows):
        if act == LINEAR:
            for c in range(cols):
                dz[r, c] = dy[r, c]
        elif act == RELU:
            for c in range(cols):
                dz[r, c] = dy[r, c] if y[r, c] > 0 else 0
        elif act == SIGMOID:
            for c in range(cols):
                dz[r, c] = dy[r, c] * y[r, c] * (one - y[r, c])
        elif act == TANH:
            for c in range(cols):
                dz[r, c] = dy[r, c] * (one - y[r, c] * y[r, c])
        elif act == SOFTMAX:
            dot = y.dtype.type(0.0)
            for c in range(cols):
                dot += dy[r, c] * y[r, c]
            for c in range(cols):
                dz[r, c] = y[r, c] * (dy[r, c] - dot)
