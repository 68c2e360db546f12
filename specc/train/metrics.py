"""Metrics reported per output, by Keras' names; `accuracy` takes the variant that fits the loss, as in Keras.

A registry entry makes the metric for one output from that output's loss and shape."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..registry import Registry
from .losses import Loss

MetricFunction = Callable[[np.ndarray, np.ndarray], float]  # (predictions, targets) -> mean over the batch
METRICS: Registry[Callable[[Loss, tuple], MetricFunction]] = Registry("metric")


def binary_accuracy(pred, true):
    return float(np.mean((pred > 0.5) == (true > 0.5)))


def categorical_accuracy(pred, true):
    return float(np.mean(pred.argmax(-1) == true.argmax(-1)))


def sparse_categorical_accuracy(pred, labels):
    return float(np.mean(pred.argmax(-1) == labels.reshape(pred.shape[:-1])))


def mse(pred, true):
    return float(np.mean((pred - true) ** 2))


def mae(pred, true):
    return float(np.mean(np.abs(pred - true)))


def accuracy_for(loss: Loss, output_shape: tuple) -> MetricFunction:
    if loss.targets == "labels":
        return sparse_categorical_accuracy
    if loss.targets == "binary" or output_shape[-1] == 1:
        return binary_accuracy
    return categorical_accuracy


def _whatever_the_loss(metric: MetricFunction) -> Callable[[Loss, tuple], MetricFunction]:
    """The registry entry of a metric that is the same for every loss and output shape."""
    return lambda loss, output_shape: metric


METRICS.add("accuracy", accuracy_for, aliases=("acc",))
for _function in (binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, mse, mae):
    METRICS.add(_function.__name__, _whatever_the_loss(_function))
