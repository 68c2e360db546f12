"""Losses and their gradients in one pass over predictions; each returns the summed per-position loss.

`scale` is 1 / (number of loss positions in the batch), the Keras reduction: the gradient written is
that of the mean loss. Probabilities are clipped to [EPSILON, 1 - EPSILON] as Keras does.
"""
import numpy as np
from numba import njit

EPSILON = 1e-7


@njit(cache=True, error_model="numpy")
def categorical_crossentropy(pred, true, scale, grad):
    """pred, true, grad: (rows, classes); pred rows are renormalized to sum to 1 first, as in Keras."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        total = t(0.0)
        true_sum = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
            true_sum += true[r, c]
        for c in range(pred.shape[1]):
            p = min(max(pred[r, c] / total, eps), t(1.0) - eps)
            total_loss -= true[r, c] * np.log(p)
            # d/dpred of -sum(t log(pred / total)) = -t / pred + sum(t) / total
            grad[r, c] = (-true[r, c] / max(pred[r, c], eps * total) + true_sum / total) * s
    return total_loss


@njit(cache=True, error_model="numpy")
def sparse_categorical_crossentropy(pred, labels, scale, grad):
    """pred, grad: (rows, classes); labels: (rows,) integer class ids."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        total = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
        k = labels[r]
        for c in range(pred.shape[1]):
            grad[r, c] = s / total
        p = min(max(pred[r, k] / total, eps), t(1.0) - eps)
        total_loss -= np.log(p)
        grad[r, k] -= s / max(pred[r, k], eps * total)
    return total_loss


@njit(cache=True, error_model="numpy")
def binary_crossentropy(pred, true, scale, grad):
    """Flat arrays of probabilities and 0/1 (or soft) targets."""
    t = pred.dtype.type
    eps, s, one = t(EPSILON), t(scale), t(1.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        p = min(max(pred[i], eps), one - eps)
        total_loss -= true[i] * np.log(p) + (one - true[i]) * np.log(one - p)
        grad[i] = (p - true[i]) / (p * (one - p)) * s
    return total_loss


@njit(cache=True, error_model="numpy")
def squared_error(pred, true, scale, grad):
    s = pred.dtype.type(2.0 * scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        diff = pred[i] - true[i]
        total_loss += diff * diff
        grad[i] = diff * s
    return total_loss


@njit(cache=True, error_model="numpy")
def absolute_error(pred, true, scale, grad):
    s = pred.dtype.type(scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        diff = pred[i] - true[i]
        total_loss += abs(diff)
        grad[i] = s if diff > 0 else (-s if diff < 0 else 0)
    return total_loss
