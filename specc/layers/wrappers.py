"""Wrappers: layers that apply another layer (or model) in their own way, with that layer's weights.

A wrapper names what it applies under `layer:`: a layer or model defined elsewhere in the spec (its weights
are shared), or an inline layer config. The graph compiler resolves it; the wrapper only says how shapes
and values pass through:

    inner_input_shapes(input_shapes)                 what the wrapped layer is called on (InputsError if unfit)
    outer_output_shape(input_shapes, inner_shape)    the wrapper's output from the wrapped layer's
    forward_around(inner, xs, training)              inner(xs, training) -> (y, cache) runs the wrapped layer
    backward_around(inner, cache, dy, need_dx)       inner(cache, dy, need_dx) -> [dx ...]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Union

from pydantic import Field

from .base import LAYERS, InputsError, Layer, Shape, TrainingFlag, show_shape

if TYPE_CHECKING:
    from ..spec.format import LayerConfig


class Wrapper(Layer):
    # the union of every layer type; resolved in spec.format, which knows them all
    layer: Union[str, "LayerConfig"] = Field(description="A layer or model name, or an inline layer config.")

    def inner_input_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        raise NotImplementedError

    def outer_output_shape(self, input_shapes: list[Shape], inner_shape: Shape) -> Shape:
        raise NotImplementedError

    def forward_around(self, inner, xs: list, training: TrainingFlag):
        raise NotImplementedError

    def backward_around(self, inner, cache, dy, need_dx: bool) -> list:
        raise NotImplementedError


@LAYERS.register()
class TimeDistributed(Wrapper):
    """Applies `layer` to each step along axis 1: (batch, steps, ...) -> (batch, steps, ...), one set of
    weights for every step: the steps are folded into the batch, the layer runs once, the result unfolds."""
    type: Literal["TimeDistributed"]

    def inner_input_shapes(self, input_shapes):
        if len(input_shapes) != 1 or len(input_shapes[0]) < 2:
            shown = " and ".join(map(show_shape, input_shapes))
            raise InputsError(f"TimeDistributed takes one input of shape (None, steps, ...), got {shown}")
        return [input_shapes[0][1:]]

    def outer_output_shape(self, input_shapes, inner_shape):
        return (input_shapes[0][0], *inner_shape)

    def forward_around(self, inner, xs, training):
        x = xs[0]
        folded, cache = inner([x.reshape(-1, *x.shape[2:])], training)
        return folded.reshape(*x.shape[:2], *folded.shape[1:]), cache

    def backward_around(self, inner, cache, dy, need_dx):
        (dx,) = inner(cache, dy.reshape(-1, *dy.shape[2:]), need_dx)
        return [None if dx is None else dx.reshape(*dy.shape[:2], *dx.shape[1:])]
