"""What every layer type is: a pydantic config that also knows its shapes, weights, forward and backward.

A layer object holds configuration only. Weights live outside it (the executor passes them in as a dict
of arrays), so one layer can be called at many nodes and every call shares the same weights.

    output_shape(input_shapes)            shape rule; raises ShapeError with a sentence a user can act on
    weight_shapes(input_shapes)           {name: shape}, Keras names and layouts
    init_weights(shapes, rng)             {name: array}, Keras default initializers
    forward(weights, xs, training)        -> (y, cache)
    backward(weights, grads, cache, dy, need_dx)
                                          -> [dx for each input]; adds weight gradients into `grads`.
                                             When need_dx is False no input needs a gradient (a graph input,
                                             or only frozen layers upstream): return [None] and skip the work.
"""
from __future__ import annotations

from typing import ClassVar, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Shape = tuple  # of int, without the batch dimension


class ShapeError(ValueError):
    """A layer cannot take the shapes it is given; the message says why in the user's terms."""


def show_shape(shape: Shape) -> str:
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


def glorot_uniform(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


class Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    inputs: Optional[Union[str, list[str]]] = Field(
        None, description="Tensor(s) this layer is applied to; without it the entry only defines the layer.")
    name: Optional[str] = Field(None, description="Layer name inside a `sequential:` list.")
    trainable: bool = Field(True, description="false freezes this layer's weights.")

    arity: ClassVar[Optional[int]] = 1  # number of input tensors; None: two or more

    @property
    def input_names(self) -> list[str]:
        if self.inputs is None:
            return []
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {}

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {name: (glorot_uniform(shape, rng) if name == "kernel" else np.zeros(shape))
                for name, shape in shapes.items()}

    def forward(self, weights: dict, xs: list[np.ndarray], training: bool):
        raise NotImplementedError

    def backward(self, weights: dict, grads: dict, cache, dy: np.ndarray, need_dx: bool = True) -> list:
        raise NotImplementedError
