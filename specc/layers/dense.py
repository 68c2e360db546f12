"""Dense: y = activation(x @ kernel + bias), applied over the last axis."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ..runtime.blas import matmul
from .activations import ActivationName, activate_keeping_input, activation_grad, as_rows
from .base import LAYERS, ActivityArguments, BiasArguments, KernelArguments, Layer, Shape, ShapeError


@LAYERS.register()
class Dense(KernelArguments, BiasArguments, ActivityArguments, Layer):
    """A fully connected layer over the last axis of its input."""
    type: Literal["Dense"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    units: PositiveInt = Field(description="Size of the output's last axis.")
    activation: ActivationName = "linear"
    use_bias: bool = True

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) < 1:
            raise ShapeError("Dense needs an input with at least one axis besides the batch")
        return (*shape[:-1], self.units)

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {"kernel": (input_shapes[0][-1], self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def forward(self, weights, xs, training):
        x = xs[0]
        z = matmul(as_rows(x), weights["kernel"])
        y = activate_keeping_input(z, weights.get("bias"), self.activation).reshape(*x.shape[:-1], self.units)
        return y, (x, z, y)  # z is y unless the activation needs its input

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, z, y = cache
        dz = as_rows(activation_grad(dy, y, self.activation, z))
        grads["kernel"] += matmul(as_rows(x).T, dz)
        if self.use_bias:
            grads["bias"] += dz.sum(axis=0)
        return [matmul(dz, weights["kernel"].T).reshape(x.shape) if need_dx else None]
