"""Layers that join several tensors into one: Concatenate and Add."""
from __future__ import annotations

from typing import Literal

import numpy as np

from .base import LAYERS, Layer, Shape, ShapeError, show_shape


@LAYERS.register()
class Concatenate(Layer):
    """Joins its inputs along one axis (counted with the batch axis, as in Keras; default the last)."""
    type: Literal["Concatenate"]
    axis: int = -1
    arity = None

    def _axis(self, rank: int) -> int:
        """The axis as an index into a shape without the batch dimension."""
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if not 1 <= axis <= rank:
            raise ShapeError(f"axis {self.axis} is out of range for inputs of rank {rank + 1} "
                             "(axis 0 is the batch)")
        return axis - 1

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in input_shapes}
        shown = " and ".join(show_shape(s) for s in input_shapes)
        if len(ranks) != 1:
            raise ShapeError(f"cannot concatenate tensors of different ranks: {shown}")
        axis = self._axis(ranks.pop())
        rest = {s[:axis] + s[axis + 1:] for s in input_shapes}
        if len(rest) != 1:
            raise ShapeError(f"cannot concatenate {shown} on axis {self.axis}: "
                             "every other axis must match")
        out = list(input_shapes[0])
        out[axis] = sum(s[axis] for s in input_shapes)
        return tuple(out)

    def forward(self, weights, xs, training):
        axis = self._axis(xs[0].ndim - 1) + 1
        return np.concatenate(xs, axis=axis), (axis, [x.shape[axis] for x in xs])

    def backward(self, weights, grads, cache, dy, need_dx=True):
        axis, sizes = cache
        return np.split(dy, np.cumsum(sizes)[:-1], axis=axis)


@LAYERS.register()
class Add(Layer):
    """Element-wise sum of inputs of one shape."""
    type: Literal["Add"]
    arity = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(set(input_shapes)) != 1:
            shown = " and ".join(show_shape(s) for s in input_shapes)
            raise ShapeError(f"cannot add tensors of different shapes: {shown}")
        return input_shapes[0]

    def forward(self, weights, xs, training):
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y, len(xs)

    def backward(self, weights, grads, count, dy, need_dx=True):
        return [dy] * count


@LAYERS.register()
class Subtract(Layer):
    """Element-wise difference of two inputs of one shape: inputs [a, b] give a - b."""
    type: Literal["Subtract"]
    arity = 2

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if input_shapes[0] != input_shapes[1]:
            raise ShapeError(f"cannot subtract tensors of different shapes: "
                             f"{show_shape(input_shapes[0])} and {show_shape(input_shapes[1])}")
        return input_shapes[0]

    def forward(self, weights, xs, training):
        return xs[0] - xs[1], None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        return [dy, -dy]
