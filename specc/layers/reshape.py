"""Flatten: all axes but the batch into one."""
from __future__ import annotations

import math
from typing import Literal

from .base import LAYERS, Layer, Shape


@LAYERS.register()
class Flatten(Layer):
    """Flattens every axis but the batch into one."""
    type: Literal["Flatten"]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return (math.prod(input_shapes[0]),)

    def forward(self, weights, xs, training):
        x = xs[0]
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, weights, grads, shape, dy, need_dx=True):
        return [dy.reshape(shape)]
