"""Losses and their gradients in one pass over predictions; each returns the summed, weighted loss.

`scale` is 1 / (number of loss positions in the batch), the Keras reduction: the gradient written is that
of the mean loss. `row_weight` holds one weight per sample (Keras' sample_weight; empty: all 1), and
`per_row` says how many consecutive positions belong to one sample. Probabilities are clipped to
[EPSILON, 1 - EPSILON] as Keras does.
"""
import numpy as np
from numba import njit

EPSILON = 1e-7


@njit(cache=True)
def _weight(row_weight, position, per_row):
    if row_weight.shape[0] == 0:
        return row_weight.dtype.type(1.0)
    return row_weight[position // per_row]


@njit(cache=True, error_model="numpy")
def categorical_crossentropy(pred, true, scale, row_weight, per_row, grad):
    """pred, true, grad: (positions, classes); pred rows are renormalized to sum to 1 first, as in Keras."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        w = _weight(row_weight, r, per_row)
        total = t(0.0)
        true_sum = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
            true_sum += true[r, c]
        ws = w * s
        for c in range(pred.shape[1]):
            p = min(max(pred[r, c] / total, eps), t(1.0) - eps)
            total_loss -= w * true[r, c] * np.log(p)
            # d/dpred of -sum(t log(pred / total)) = -t / pred + sum(t) / total
            grad[r, c] = (-true[r, c] / max(pred[r, c], eps * total) + true_sum / total) * ws
    return total_loss


@njit(cache=True, error_model="numpy")
def sparse_categorical_crossentropy(pred, labels, scale, row_weight, per_row, grad):
    """pred, grad: (positions, classes); labels: (positions,) integer class ids."""
    t = pred.dtype.type
    eps, s = t(EPSILON), t(scale)
    total_loss = 0.0
    for r in range(pred.shape[0]):
        ws = _weight(row_weight, r, per_row) * s
        total = t(0.0)
        for c in range(pred.shape[1]):
            total += pred[r, c]
        k = labels[r]
        for c in range(pred.shape[1]):
            grad[r, c] = ws / total
        p = min(max(pred[r, k] / total, eps), t(1.0) - eps)
        total_loss -= _weight(row_weight, r, per_row) * np.log(p)
        grad[r, k] -= ws / max(pred[r, k], eps * total)
    return total_loss


@njit(cache=True, error_model="numpy")
def binary_crossentropy(pred, true, scale, row_weight, per_row, grad):
    """Flat arrays of probabilities and 0/1 (or soft) targets."""
    t = pred.dtype.type
    eps, s, one = t(EPSILON), t(scale), t(1.0)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        p = min(max(pred[i], eps), one - eps)
        total_loss -= w * (true[i] * np.log(p) + (one - true[i]) * np.log(one - p))
        grad[i] = (p - true[i]) / (p * (one - p)) * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def squared_error(pred, true, scale, row_weight, per_row, grad):
    s = pred.dtype.type(2.0 * scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        w = _weight(row_weight, i, per_row)
        diff = pred[i] - true[i]
        total_loss += w * diff * diff
        grad[i] = diff * (w * s)
    return total_loss


@njit(cache=True, error_model="numpy")
def absolute_error(pred, true, scale, row_weight, per_row, grad):
    s = pred.dtype.type(scale)
    total_loss = 0.0
    for i in range(pred.shape[0]):
        ws = _weight(row_weight, i, per_row) * s
        diff = pred[i] - true[i]
        total_loss += _weight(row_weight, i, per_row) * abs(diff)
        grad[i] = ws if diff > 0 else (-ws if diff < 0 else 0)
    return total_loss
