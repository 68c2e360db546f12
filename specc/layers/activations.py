"""Activation functions by name, applied through the fused kernels; the Activation layer and the activation
layers with arguments (ReLU, LeakyReLU, PReLU, ELU, Softmax)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional, Union

import numpy as np
from pydantic import Field, NonNegativeFloat

from .. import kernels
from ..kernels.activation_codes import ALIASES, CODES, NEEDS_INPUT
from ..registry import Registry
from .base import (
    LAYERS,
    ConstraintArgument,
    InitializerArgument,
    Layer,
    RegularizerArgument,
    Shape,
    ShapeError,
    show_shape,
)

ACTIVATIONS: Registry[int] = Registry("activation")  # name -> the fused kernels' code for it
for _name, _code in CODES.items():
    ACTIVATIONS.add(_name, _code, ALIASES.get(_name, ()))
if TYPE_CHECKING:  # a Literal of the registry's names, built at import time: a type checker sees a str
    ActivationName = str
else:
    ActivationName = Literal[tuple(ACTIVATIONS.names(with_aliases=True))]


def as_rows(a: np.ndarray) -> np.ndarray:
    """A view of `a` as (rows, last axis), the layout every activation kernel works on."""
    return a.reshape(-1, a.shape[-1])


def needs_input(activation: str) -> bool:
    """Whether the activation's derivative needs its pre-activation, not only its output (gelu, silu...)."""
    return ACTIVATIONS[activation] in NEEDS_INPUT


def fused(activation: str) -> str:
    """The activation a layer's kernels may apply in place as they write their output: the activation, or
    "linear" for one that needs its input (the layer then applies it after, with activate_keeping_input)."""
    return "linear" if needs_input(activation) else activation


def activate(z: np.ndarray, bias: np.ndarray | None, activation: str) -> np.ndarray:
    """act(z + bias) in place in z (a fresh, contiguous array), returned. An activation that needs its input
    (needs_input) then has no derivative for backward: a layer that takes those applies them with
    activate_keeping_input, or fuses `fused(activation)` and applies the rest after."""
    bias = np.empty(0, dtype=z.dtype) if bias is None else bias
    kernels.activations.bias_activation_forward(as_rows(z), bias, ACTIVATIONS[activation])
    return z


def activate_keeping_input(z: np.ndarray, bias: np.ndarray | None, activation: str) -> np.ndarray:
    """act(z + bias), z a fresh contiguous array that gets the bias added. The result is z itself, computed
    in place, unless the activation needs its input: then a new array, and z keeps the pre-activation that
    activation_grad needs."""
    if not needs_input(activation):
        return activate(z, bias, activation)
    bias = np.empty(0, dtype=z.dtype) if bias is None else bias
    y = np.empty_like(z)
    kernels.activations.bias_activation_forward_into(as_rows(z), bias, ACTIVATIONS[activation], as_rows(y))
    return y


def activation_grad(dy: np.ndarray, y: np.ndarray, activation: str, z: np.ndarray | None = None) -> np.ndarray:
    """d(loss)/d(pre-activation) from dy and the activation's output y, or its pre-activation z for an
    activation that needs it (as activate_keeping_input left them)."""
    if activation == "linear":
        return dy
    k = kernels.activations
    dz = np.empty_like(y)
    code = ACTIVATIONS[activation]
    if code in NEEDS_INPUT:
        if z is None:
            raise ValueError(f"{activation}'s derivative needs the pre-activation: apply it with "
                             "activate_keeping_input")
        k.activation_backward_from_input(as_rows(np.ascontiguousarray(dy)), as_rows(z), code, as_rows(dz))
    else:
        k.activation_backward(as_rows(np.ascontiguousarray(dy)), as_rows(y), code, as_rows(dz))
    return dz


@LAYERS.register()
class Activation(Layer):
    """Applies an activation function to its input."""
    type: Literal["Activation"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    activation: ActivationName

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]

    def forward(self, weights, xs, training):
        # in place into a copy, or from the input itself into a new array
        x = np.ascontiguousarray(xs[0]) if needs_input(self.activation) else np.array(xs[0], copy=True, order="C")
        y = activate_keeping_input(x, None, self.activation)
        return y, (x, y)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        z, y = cache
        return [activation_grad(dy, y, self.activation, z)]



# -- activation layers with arguments -----------------------------------------------------------------------

class ElementWise(Layer):
    """A layer that keeps its input's shape."""
    supports_masking = True  # each type passes its input's mask on, as Keras' does

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]


def piecewise_linear(x: np.ndarray, slope: float, threshold: float, max_value: Optional[float]) -> np.ndarray:
    """Keras' relu with arguments: min(x, max_value) above the threshold, slope * (x - threshold) below."""
    y = np.where(x > threshold, x, (x - x.dtype.type(threshold)) * x.dtype.type(slope))
    return y if max_value is None else np.minimum(y, x.dtype.type(max_value), out=y)


def piecewise_linear_grad(x: np.ndarray, dy: np.ndarray, slope: float, threshold: float,
                          max_value: Optional[float]) -> np.ndarray:
    dx = np.where(x > threshold, dy, dy * dy.dtype.type(slope))
    if max_value is not None:
        dx[x >= max_value] = 0
    return dx


@LAYERS.register()
class ReLU(ElementWise):
    """max(x, 0); with arguments, min(x, max_value) where x > threshold and negative_slope * (x - threshold)
    elsewhere."""
    type: Literal["ReLU"]
    max_value: Optional[NonNegativeFloat] = Field(None, description="Cap on the output; none by default.")
    negative_slope: NonNegativeFloat = Field(0.0, description="Slope below the threshold.")
    threshold: NonNegativeFloat = Field(0.0, description="Inputs above it pass; below, they are scaled by "
                                                         "negative_slope.")

    def _plain(self) -> bool:
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def forward(self, weights, xs, training):
        if self._plain():  # the fused kernel, in place in a copy
            y = activate(np.array(xs[0], copy=True, order="C"), None, "relu")
            return y, y
        return piecewise_linear(xs[0], self.negative_slope, self.threshold, self.max_value), xs[0]

    def backward(self, weights, grads, cache, dy, need_dx=True):
        if self._plain():
            return [activation_grad(dy, cache, "relu")]
        return [piecewise_linear_grad(cache, dy, self.negative_slope, self.threshold, self.max_value)]


@LAYERS.register()
class LeakyReLU(ElementWise):
    """x where x >= 0, negative_slope * x elsewhere."""
    type: Literal["LeakyReLU"]
    negative_slope: NonNegativeFloat = Field(0.3, description="Slope for negative inputs.")

    def forward(self, weights, xs, training):
        return piecewise_linear(xs[0], self.negative_slope, 0.0, None), xs[0]

    def backward(self, weights, grads, x, dy, need_dx=True):
        return [piecewise_linear_grad(x, dy, self.negative_slope, 0.0, None)]


@LAYERS.register()
class PReLU(ElementWise):
    """x where x > 0, alpha * x elsewhere, with a learned alpha for each input cell (zeros at first); one
    alpha is shared along each of `shared_axes`."""
    type: Literal["PReLU"]
    alpha_initializer: InitializerArgument = "Zeros"
    alpha_regularizer: Optional[RegularizerArgument] = None
    alpha_constraint: Optional[ConstraintArgument] = None
    shared_axes: Optional[Union[int, list[int]]] = Field(
        None, description="Axes (counted with the batch as axis 0) along which one alpha is shared, e.g. "
                          "[1, 2] for one alpha per channel of images.")

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        (shape,) = input_shapes
        axes = [self.shared_axes] if isinstance(self.shared_axes, int) else self.shared_axes or []
        alpha = list(shape)
        for axis in axes:
            if not 1 <= axis <= len(shape):
                raise ShapeError(f"shared_axes {self.shared_axes} must be axes 1 to {len(shape)} of its input "
                                 f"{show_shape(shape)} (axis 0 is the batch)")
            alpha[axis - 1] = 1
        return {"alpha": tuple(alpha)}

    def forward(self, weights, xs, training):
        x = xs[0]
        alpha = weights["alpha"].astype(x.dtype, copy=False)
        return np.where(x > 0, x, alpha * x), x

    def backward(self, weights, grads, x, dy, need_dx=True):
        alpha = weights["alpha"]
        negative = x <= 0
        slope_grad = np.where(negative, dy * x, 0)  # d y / d alpha = min(x, 0)
        summed = tuple(i for i in range(x.ndim) if i == 0 or alpha.shape[i - 1] == 1)
        grads["alpha"] += slope_grad.sum(axis=summed).reshape(alpha.shape)
        return [np.where(negative, dy * alpha.astype(dy.dtype, copy=False), dy) if need_dx else None]


@LAYERS.register()
class ELU(ElementWise):
    """x where x > 0, alpha * (e^x - 1) elsewhere."""
    type: Literal["ELU"]
    alpha: float = Field(1.0, description="Scale of the negative part.")

    def forward(self, weights, xs, training):
        x = xs[0]
        y = np.expm1(np.minimum(x, 0)) * x.dtype.type(self.alpha)
        np.copyto(y, x, where=x > 0)
        return y, (x, y)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, y = cache  # below 0, alpha * e^x = y + alpha
        return [np.where(x > 0, dy, dy * (y + y.dtype.type(self.alpha)))]


@LAYERS.register()
class Softmax(ElementWise):
    """e^x / sum(e^x) along `axis` (counted with the batch as axis 0; default the last), or along several."""
    type: Literal["Softmax"]
    axis: Union[int, list[int]] = Field(-1, description="The axis, or axes, the outputs sum to 1 along.")

    def _axes(self, rank: int) -> tuple[int, ...]:
        """The axes as indices into a batch of rank `rank` (with the batch axis)."""
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        if not all(-rank <= a < rank for a in axes):
            raise ShapeError(f"axis {self.axis} is out of range for inputs of rank {rank} (axis 0 is the batch)")
        return tuple(sorted({a % rank for a in axes}))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        self._axes(len(input_shapes[0]) + 1)
        return input_shapes[0]

    def forward(self, weights, xs, training):
        x = xs[0]
        axes = self._axes(x.ndim)
        if axes == (x.ndim - 1,):  # the fused kernel, in place in a copy
            y = activate(np.array(x, copy=True, order="C"), None, "softmax")
        else:
            y = np.exp(x - x.max(axis=axes, keepdims=True))
            y /= y.sum(axis=axes, keepdims=True)
        return y, y

    def backward(self, weights, grads, y, dy, need_dx=True):
        axes = self._axes(y.ndim)
        if axes == (y.ndim - 1,):
            return [activation_grad(dy, y, "softmax")]
        return [y * (dy - (dy * y).sum(axis=axes, keepdims=True))]
