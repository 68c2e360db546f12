"""Optimizer updates, each one pass over all trainable weights held in one flat array (Keras 3 formulas).

Hyper-parameters are cast to the weights' dtype so float32 weights are updated in float32 arithmetic,
which vectorizes; error_model="numpy" drops the division-by-zero checks that would prevent it.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sgd_update(w, g, velocity, learning_rate, momentum, nesterov):
    t = w.dtype.type
    lr, mu = t(learning_rate), t(momentum)
    if momentum == 0.0:
        for i in range(w.shape[0]):
            w[i] -= lr * g[i]
        return
    for i in range(w.shape[0]):
        velocity[i] = mu * velocity[i] - lr * g[i]
        if nesterov:
            w[i] += mu * velocity[i] - lr * g[i]
        else:
            w[i] += velocity[i]


@njit(cache=True, error_model="numpy")
def rmsprop_update(w, g, mean_square, mean_grad, velocity, learning_rate, rho, momentum, epsilon, centered):
    t = w.dtype.type
    lr, r, mu, eps = t(learning_rate), t(rho), t(momentum), t(epsilon)
    keep = t(1.0) - r
    for i in range(w.shape[0]):
        mean_square[i] = r * mean_square[i] + keep * g[i] * g[i]
        denominator = mean_square[i]
        if centered:
            mean_grad[i] = r * mean_grad[i] + keep * g[i]
            denominator -= mean_grad[i] * mean_grad[i]
        step = lr * g[i] / np.sqrt(denominator + eps)
        if momentum > 0.0:
            velocity[i] = mu * velocity[i] + step
            w[i] -= velocity[i]
        else:
            w[i] -= step


@njit(cache=True, error_model="numpy")
def adam_update(w, g, m, v, step_size, beta_1, beta_2, epsilon):
    """step_size is the bias-corrected learning rate lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
    t = w.dtype.type
    alpha, eps = t(step_size), t(epsilon)
    keep_1, keep_2 = t(1.0) - t(beta_1), t(1.0) - t(beta_2)
    for i in range(w.shape[0]):
        m[i] += (g[i] - m[i]) * keep_1
        v[i] += (g[i] * g[i] - v[i]) * keep_2
        w[i] -= alpha * m[i] / (np.sqrt(v[i]) + eps)
