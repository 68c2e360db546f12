"""Losses on probabilities/values, each with its gradient, reduced as in Keras.

The per-position loss is averaged over every non-batch position, then over the batch; the gradient is
that of the reduced loss with respect to the predictions.
"""
from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # Keras' clipping of probabilities away from 0 and 1


def binary_crossentropy(pred, true):
    p = np.clip(pred, EPSILON, 1 - EPSILON)
    loss = -(true * np.log(p) + (1 - true) * np.log(1 - p))
    grad = (p - true) / (p * (1 - p)) / pred.size
    return float(loss.mean()), grad.astype(pred.dtype, copy=False)


def categorical_crossentropy(pred, true):
    total = pred.sum(axis=-1, keepdims=True)
    p = np.clip(pred / total, EPSILON, 1 - EPSILON)
    positions = pred.size // pred.shape[-1]
    loss = -(true * np.log(p)).sum(axis=-1)
    # d/dpred of -sum(t log(pred / total)) = -t / pred + sum(t) / total
    grad = (-true / np.maximum(pred, EPSILON * total) + true.sum(axis=-1, keepdims=True) / total) / positions
    return float(loss.mean()), grad.astype(pred.dtype, copy=False)


def sparse_categorical_crossentropy(pred, labels):
    labels = labels.reshape(pred.shape[:-1]).astype(np.intp, copy=False)
    true = np.zeros_like(pred)
    np.put_along_axis(true, labels[..., None], 1, axis=-1)
    return categorical_crossentropy(pred, true)


def mean_squared_error(pred, true):
    diff = pred - true
    return float(np.mean(diff * diff)), (2 * diff / pred.size).astype(pred.dtype, copy=False)


def mean_absolute_error(pred, true):
    diff = pred - true
    return float(np.mean(np.abs(diff))), (np.sign(diff) / pred.size).astype(pred.dtype, copy=False)


LOSSES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
}


def sparse_targets(loss_name: str) -> bool:
    """Whether the loss takes integer class labels rather than arrays shaped like the prediction."""
    return loss_name == "sparse_categorical_crossentropy"
