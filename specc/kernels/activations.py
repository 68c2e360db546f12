"""Activations fused with the bias add that precedes them, and their derivatives.

Activations are identified by the integer codes of activation_codes.py, with Keras 3's definitions and
default arguments. linear, relu, sigmoid, tanh and softmax (the common ones) have loops of their own;
every other element-wise activation goes through `value` and a `slope_*` function, also used by the LSTM
kernels. Derivatives at a kink are those of Keras on JAX (relu'(0) = 0, leaky_relu'(0) = 1, elu'(0) = 1).
"""
import math

import numpy as np
from numba import njit

from .activation_codes import (
    CELU,
    ELU,
    EXPONENTIAL,
    GELU,
    HARD_SHRINK,
    HARD_SIGMOID,
    HARD_SILU,
    HARD_TANH,
    LEAKY_RELU,
    LINEAR,
    LOG_SIGMOID,
    LOG_SOFTMAX,
    MISH,
    NEEDS_INPUT,
    RELU,
    RELU6,
    SELU,
    SIGMOID,
    SILU,
    SOFT_SHRINK,
    SOFTMAX,
    SOFTPLUS,
    SOFTSIGN,
    SPARSE_PLUS,
    SPARSE_SIGMOID,
    SQUAREPLUS,
    TANH,
    TANH_SHRINK,
)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default
SHRINK = 0.5  # soft_shrink's and hard_shrink's default threshold
SQUAREPLUS_B = 4.0
INV_SQRT2 = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327


@njit(cache=True, inline="always")
def sigmoid(x):
    """1 / (1 + e^-x), in two branches that keep exp() from overflowing for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact for large |x|."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit(cache=True, inline="always")
def value(x, act):
    """act(x) for one element, any element-wise activation (computed in float64)."""
    if act == RELU:
        return max(x, 0.0)
    if act == SIGMOID:
        return sigmoid(x)
    if act == TANH:
        return math.tanh(x)
    if act == ELU or act == CELU:  # celu with Keras' alpha = 1 is elu
        return x if x > 0 else math.expm1(x)
    if act == SELU:
        return SELU_SCALE * (x if x > 0 else SELU_ALPHA * math.expm1(x))
    if act == SOFTPLUS:
        return softplus(x)
    if act == SOFTSIGN:
        return x / (1.0 + abs(x))
    if act == HARD_SIGMOID:  # Keras 3: relu6(x + 3) / 6
        return min(max(x + 3.0, 0.0), 6.0) / 6.0
    if act == RELU6:
        return min(max(x, 0.0), 6.0)
    if act == LEAKY_RELU:
        return x if x >= 0 else LEAKY_SLOPE * x
    if act == EXPONENTIAL:
        return math.exp(x)
    if act == HARD_TANH:
        return min(max(x, -1.0), 1.0)
    if act == SOFT_SHRINK:
        return x - SHRINK if x > SHRINK else (x + SHRINK if x < -SHRINK else 0.0)
    if act == HARD_SHRINK:
        return x if abs(x) > SHRINK else 0.0
    if act == SPARSE_PLUS:  # 0, then (x + 1)^2 / 4 on (-1, 1), then x
        return 0.0 if x <= -1 else (x if x >= 1 else 0.25 * (x + 1.0) * (x + 1.0))
    if act == SPARSE_SIGMOID:
        return 0.5 * min(max(x + 1.0, 0.0), 2.0)
    if act == LOG_SIGMOID:
        return -softplus(-x)
    if act == SQUAREPLUS:
        return 0.5 * (x + math.sqrt(x * x + SQUAREPLUS_B))
    if act == GELU:  # the exact form (Keras' approximate=False)
        return 0.5 * x * (1.0 + math.erf(x * INV_SQRT2))
    if act == SILU:
        return x * sigmoid(x)
    if act == MISH:
        return x * math.tanh(softplus(x))
    if act == HARD_SILU:
        return x * min(max(x + 3.0, 0.0), 6.0) / 6.0
    if act == TANH_SHRINK:
        return x - math.tanh(x)
    return x


@njit(cache=True, inline="always")
def slope_from_output(y, act):
    """act'(z) from y = act(z), for an element-wise activation not in NEEDS_INPUT."""
    if act == RELU:
        return 1.0 if y > 0 else 0.0
    if act == SIGMOID:
        return y * (1.0 - y)
    if act == TANH:
        return 1.0 - y * y
    if act == ELU or act == CELU:  # z <= 0 exactly where y <= 0, and there e^z = y + 1
        return 1.0 if y > 0 else y + 1.0
    if act == SELU:
        return SELU_SCALE if y > 0 else y + SELU_SCALE * SELU_ALPHA
    if act == SOFTPLUS:  # sigmoid(z) = 1 - e^-y
        return -math.expm1(-y)
    if act == SOFTSIGN:  # 1 / (1 + |z|)^2 = (1 - |y|)^2
        return (1.0 - abs(y)) * (1.0 - abs(y))
    if act == HARD_SIGMOID:
        return 1.0 / 6.0 if 0 < y < 1 else 0.0
    if act == RELU6:
        return 1.0 if 0 < y < 6 else 0.0
    if act == LEAKY_RELU:
        return 1.0 if y >= 0 else LEAKY_SLOPE
    if act == EXPONENTIAL:
        return y
    if act == HARD_TANH:
        return 1.0 if -1 < y < 1 else 0.0
    if act == SOFT_SHRINK or act == HARD_SHRINK:  # zero exactly on the dead zone
        return 1.0 if y != 0 else 0.0
    if act == SPARSE_PLUS:  # (z + 1) / 2 = sqrt(y) on (-1, 1)
        return 0.0 if y <= 0 else (1.0 if y >= 1 else math.sqrt(y))
    if act == SPARSE_SIGMOID:
        return 0.5 if 0 < y < 1 else 0.0
    if act == LOG_SIGMOID:  # 1 - sigmoid(z) = 1 - e^y
        return -math.expm1(y)
    if act == SQUAREPLUS:  # z = y - b / 4y and sqrt(z^2 + b) = y + b / 4y, so (1 + z / sqrt(z^2 + b)) / 2
        return y * y / (y * y + 0.25 * SQUAREPLUS_B)
    return 1.0


@njit(cache=True, inline="always")
def slope_from_input(z, act):
    """act'(z) for an activation in NEEDS_INPUT."""
    if act == GELU:  # Phi(z) + z phi(z)
        return 0.5 * (1.0 + math.erf(z * INV_SQRT2)) + z * INV_SQRT_2PI * math.exp(-0.5 * z * z)
    if act == SILU:
        s = sigmoid(z)
        return s * (1.0 + z * (1.0 - s))
    if act == MISH:
        t = math.tanh(softplus(z))
        return t + z * (1.0 - t * t) * sigmoid(z)
    if act == HARD_SILU:
        return min(max(z + 3.0, 0.0), 6.0) / 6.0 + (z / 6.0 if -3 < z < 3 else 0.0)
    if act == TANH_SHRINK:
        t = math.tanh(z)
        return t * t
    return 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def bias_activation_forward(z, bias, act):
    """z <- act(z + bias), in place, over rows of a 2-D array; bias may be empty. (For the activations in
    NEEDS_INPUT the pre-activation is then lost: bias_activation_forward_into keeps it.)

    softmax: e^(z - max z) / sum e^(z - max z) over a row; log_softmax: z - max z - log sum e^(z - max z)."""
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
        elif act == LOG_SOFTMAX:
            peak = z[r, 0]
            for c in range(1, cols):
                peak = max(peak, z[r, c])
            total = 0.0
            for c in range(cols):
                total += math.exp(z[r, c] - peak)
            shift = peak + math.log(total)
            for c in range(cols):
                z[r, c] -= shift
        elif act != LINEAR:
            for c in range(cols):
                z[r, c] = value(z[r, c], act)


@njit(cache=True, nogil=True, error_model="numpy")
def bias_activation_forward_into(z, bias, act, y):
    """z <- z + bias (kept: backward reads it) and y <- act(z), over rows; for the activations in NEEDS_INPUT."""
    rows, cols = z.shape
    has_bias = bias.shape[0] > 0
    for r in range(rows):
        for c in range(cols):
            if has_bias:
                z[r, c] += bias[c]
            y[r, c] = value(z[r, c], act)


@njit(cache=True, nogil=True, error_model="numpy")
def activation_backward(dy, y, act, dz):
    """dz <- d(loss)/d(pre-activation) given dy = d(loss)/dy and the activation's output y (not NEEDS_INPUT).

    softmax: dz = y * (dy - sum(dy * y)); log_softmax: dz = dy - e^y * sum(dy), over a row."""
    if act in NEEDS_INPUT:
        raise ValueError("this activation's derivative needs its pre-activation: activation_backward_from_input")
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
        elif act == LOG_SOFTMAX:
            total = 0.0
            for c in range(cols):
                total += dy[r, c]
            for c in range(cols):
                dz[r, c] = dy[r, c] - math.exp(y[r, c]) * total
        else:
            for c in range(cols):
                dz[r, c] = dy[r, c] * slope_from_output(y[r, c], act)


@njit(cache=True, nogil=True, error_model="numpy")
def activation_backward_from_input(dy, z, act, dz):
    """dz <- dy * act'(z) given the pre-activation z, for the activations in NEEDS_INPUT."""
    rows, cols = dy.shape
    for r in range(rows):
        for c in range(cols):
            dz[r, c] = dy[r, c] * slope_from_input(z[r, c], act)
