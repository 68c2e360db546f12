"""Activation functions by name, applied through the fused kernels, and the standalone Activation layer."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import kernels
from ..kernels.activation_codes import CODES
from ..registry import Registry
from .base import LAYERS, Layer, Shape

ACTIVATIONS: Registry[int] = Registry("activation")  # name -> the fused kernels' code for it
for _name, _code in CODES.items():
    ACTIVATIONS.add(_name, _code)
if TYPE_CHECKING:  # a Literal of the registry's names, built at import time: a type checker sees a str
    ActivationName = str
else:
    ActivationName = Literal[tuple(ACTIVATIONS)]


def as_rows(a: np.ndarray) -> np.ndarray:
    """A view of `a` as (rows, last axis), the layout every activation kernel works on."""
    return a.reshape(-1, a.shape[-1])


def activate(z: np.ndarray, bias: np.ndarray | None, activation: str) -> np.ndarray:
    """act(z + bias) computed in place in z (which must be a fresh, contiguous array)."""
    k = kernels.activations
    empty = np.empty(0, dtype=z.dtype)
    k.bias_activation_forward(as_rows(z), empty if bias is None else bias, ACTIVATIONS[activation])
    return z


def activation_grad(dy: np.ndarray, y: np.ndarray, activation: str) -> np.ndarray:
    """d(loss)/d(pre-activation) from dy and the activation's own output y."""
    if activation == "linear":
        return dy
    k = kernels.activations
    dz = np.empty_like(y)
    k.activation_backward(as_rows(np.ascontiguousarray(dy)), as_rows(y), ACTIVATIONS[activation], as_rows(dz))
    return dz


@LAYERS.register()
class Activation(Layer):
    """Applies an activation function to its input."""
    type: Literal["Activation"]
    activation: ActivationName

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]

    def forward(self, weights, xs, training):
        y = activate(np.array(xs[0], copy=True, order="C"), None, self.activation)
        return y, y

    def backward(self, weights, grads, y, dy, need_dx=True):
        return [activation_grad(dy, y, self.activation)]
