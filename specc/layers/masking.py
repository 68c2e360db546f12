"""Masking: marks the steps whose features all equal `mask_value` as padding (Keras semantics)."""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from .base import LAYERS, Layer, Shape, ShapeError, show_shape


@LAYERS.register()
class Masking(Layer):
    """Masks each step (each position along the second-to-last axis) whose values along the last axis all equal
    `mask_value`: the layers after skip it (RNNs carry their state over it, GlobalAveragePooling1D leaves it
    out, a loss ignores it). Its output is its input with the masked steps set to zero, as Keras'."""
    type: Literal["Masking"]
    mask_value: float = Field(0.0, description="The value of every feature of a padding step.")

    supports_masking: ClassVar[bool] = True

    def makes_masks(self) -> bool:
        return True

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) < 1:
            raise ShapeError(f"Masking needs input of shape (None, ..., features); got {show_shape(shape)}")
        return shape

    def compute_mask(self, xs, masks):
        return np.any(xs[0] != self.mask_value, axis=-1)

    def forward(self, weights, xs, training):
        kept = self.compute_mask(xs, [None])[..., None]
        return xs[0] * kept, kept

    def backward(self, weights, grads, kept, dy, need_dx=True):
        return [dy * kept if need_dx else None]
