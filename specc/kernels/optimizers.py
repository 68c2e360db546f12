"""Optimizer updates, each one pass over all trainable weights held in one flat array (Keras 3 formulas)."""
import numpy as np
from numba import njit


@njit(cache=True)
def sgd_update(w, g, velocity, learning_rate, momentum, nesterov):
    if momentum == 0.0:
        for i in range(w.shape[0]):
            w[i] -= learning_rate * g[i]
        return
    for i in range(w.shape[0]):
        velocity[i] = momentum * velocity[i] - learning_rate * g[i]
        if nesterov:
            w[i] += momentum * velocity[i] - learning_rate * g[i]
        else:
            w[i] += velocity[i]


@njit(cache=True)
def rmsprop_update(w, g, mean_square, mean_grad, velocity, learning_rate, rho, momentum, epsilon, centered):
    for i in range(w.shape[0]):
        mean_square[i] = rho * mean_square[i] + (1.0 - rho) * g[i] * g[i]
        denominator = mean_square[i]
        if centered:
            mean_grad[i] = rho * mean_grad[i] + (1.0 - rho) * g[i]
            denominator -= mean_grad[i] * mean_grad[i]
        step = learning_rate * g[i] / np.sqrt(denominator + epsilon)
        if momentum > 0.0:
            velocity[i] = momentum * velocity[i] + step
            w[i] -= velocity[i]
        else:
            w[i] -= step


@njit(cache=True)
def adam_update(w, g, m, v, step_size, beta_1, beta_2, epsilon):
    """step_size is the bias-corrected learning rate lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
    for i in range(w.shape[0]):
        m[i] += (g[i] - m[i]) * (1.0 - beta_1)
        v[i] += (g[i] * g[i] - v[i]) * (1.0 - beta_2)
        w[i] -= step_size * m[i] / (np.sqrt(v[i]) + epsilon)
