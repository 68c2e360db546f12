"""Losses on probabilities/values, each with its gradient, reduced as in Keras.

The per-position loss is averaged over every non-batch position, then over the batch; the gradient is
that of the reduced loss with respect to the predictions. Each loss is one fused kernel pass.
"""
from __future__ import annotations

import numpy as np

from .. import kernels


def _like(a: np.ndarray, pred: np.ndarray, shape) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=pred.dtype).reshape(shape)


def categorical_crossentropy(pred, true):
    rows = _like(pred, pred, (-1, pred.shape[-1]))
    grad = np.empty_like(rows)
    total = kernels.losses.categorical_crossentropy(rows, _like(true, pred, rows.shape), 1.0 / len(rows), grad)
    return total / len(rows), grad.reshape(pred.shape)


def sparse_categorical_crossentropy(pred, labels):
    rows = _like(pred, pred, (-1, pred.shape[-1]))
    grad = np.empty_like(rows)
    ids = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
    total = kernels.losses.sparse_categorical_crossentropy(rows, ids, 1.0 / len(rows), grad)
    return total / len(rows), grad.reshape(pred.shape)


def _elementwise(kernel):
    def loss(pred, true):
        flat = _like(pred, pred, -1)
        grad = np.empty_like(flat)
        total = getattr(kernels.losses, kernel)(flat, _like(true, pred, -1), 1.0 / flat.size, grad)
        return total / flat.size, grad.reshape(pred.shape)
    return loss


binary_crossentropy = _elementwise("binary_crossentropy")
mean_squared_error = _elementwise("squared_error")
mean_absolute_error = _elementwise("absolute_error")

LOSSES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
}
