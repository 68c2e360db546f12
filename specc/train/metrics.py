"""Metrics reported per output; `accuracy` takes the variant that fits the loss, as in Keras."""
from __future__ import annotations

import numpy as np


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


def accuracy_for(loss_name: str, output_shape: tuple):
    if loss_name == "sparse_categorical_crossentropy":
        return sparse_categorical_accuracy
    if loss_name == "binary_crossentropy" or output_shape[-1] == 1:
        return binary_accuracy
    return categorical_accuracy


def metric_function(name: str, loss_name: str, output_shape: tuple):
    if name in ("accuracy", "acc"):
        return accuracy_for(loss_name, output_shape)
    return {"mse": mse, "mae": mae}[name]
