"""Losses on probabilities/values, each with its gradient, reduced as in Keras.

The per-position loss is averaged over every non-batch position, then over the batch; with
`sample_weight` (one weight per row) each row's loss is multiplied by its weight before the mean over the
batch size. The gradient is that of the reduced loss with respect to the predictions. Each loss is one
fused kernel pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np

from .. import kernels
from ..registry import Registry

# What a loss compares predictions with, which decides how its targets are read and checked (io.data),
# what random targets look like (synth), which accuracy applies, and whether class weights make sense:
#   labels   integer class ids, one fewer axis than the output      binary   0/1 per position
#   one_hot  a probability distribution over the last axis           values   any real numbers
TargetKind = Literal["labels", "one_hot", "binary", "values"]


@dataclass(frozen=True)
class Loss:
    compute: Callable  # (pred, true, sample_weight) -> (mean loss, gradient shaped like pred)
    targets: TargetKind

    def __call__(self, pred: np.ndarray, true: np.ndarray, sample_weight: Optional[np.ndarray] = None):
        return self.compute(pred, true, sample_weight)

    @property
    def classifies(self) -> bool:
        return self.targets != "values"


LOSSES: Registry[Loss] = Registry("loss")


def _like(a: np.ndarray, pred: np.ndarray, shape) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=pred.dtype).reshape(shape)


def _call(kernel, pred, flat_pred, true, sample_weight):
    """Run a loss kernel; returns (mean loss, gradient shaped like pred)."""
    grad = np.empty_like(flat_pred)
    weights = pred[:0, ...].reshape(-1) if sample_weight is None else _like(sample_weight, pred, -1)
    positions = flat_pred.shape[0]
    total = kernel(flat_pred, true, 1.0 / positions, weights, positions // len(pred), grad)
    return total / positions, grad.reshape(pred.shape)


def categorical_crossentropy(pred, true, sample_weight: Optional[np.ndarray] = None):
    rows = _like(pred, pred, (-1, pred.shape[-1]))
    return _call(kernels.losses.categorical_crossentropy, pred, rows, _like(true, pred, rows.shape), sample_weight)


def sparse_categorical_crossentropy(pred, labels, sample_weight: Optional[np.ndarray] = None):
    rows = _like(pred, pred, (-1, pred.shape[-1]))
    ids = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
    return _call(kernels.losses.sparse_categorical_crossentropy, pred, rows, ids, sample_weight)


def _elementwise(kernel):
    def loss(pred, true, sample_weight: Optional[np.ndarray] = None):
        return _call(getattr(kernels.losses, kernel), pred, _like(pred, pred, -1), _like(true, pred, -1),
                     sample_weight)
    return loss


binary_crossentropy = _elementwise("binary_crossentropy")
mean_squared_error = _elementwise("squared_error")
mean_absolute_error = _elementwise("absolute_error")

LOSSES.add("binary_crossentropy", Loss(binary_crossentropy, "binary"))
LOSSES.add("categorical_crossentropy", Loss(categorical_crossentropy, "one_hot"))
LOSSES.add("sparse_categorical_crossentropy", Loss(sparse_categorical_crossentropy, "labels"))
LOSSES.add("mse", Loss(mean_squared_error, "values"), aliases=("mean_squared_error",))
LOSSES.add("mae", Loss(mean_absolute_error, "values"), aliases=("mean_absolute_error",))
