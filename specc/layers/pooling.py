"""Pooling over channels-last sequences (batch, steps, channels) and images (batch, height, width, channels),
as in Keras: MaxPooling1D, AveragePooling1D/2D and the global poolings (MaxPooling2D is in conv.py).

A 1-D pooling is its 2-D pooling over the (batch, 1, steps, channels) view of its input, with a window one
row high: one kernel per job, no copy. Forward passes keep freed memory (runtime.heap), so the large arrays
allocated every step reuse pages instead of faulting in fresh ones.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt

from .. import kernels
from ..runtime import workers
from ..runtime.heap import keep_freed_memory
from .base import LAYERS, Layer, Shape, ShapeError, show_shape
from .conv import MaxPooling2D, Padding, Pair, Pooling2D, check_image, window_geometry


def check_sequence(layer: str, shape: Shape) -> None:
    if len(shape) != 2:
        hint = f"; give the input a channels axis, e.g. shape [{shape[0]}, 1]" if len(shape) == 1 else ""
        raise ShapeError(f"{layer} needs sequences shaped (steps, channels), got {show_shape(shape)}{hint}")


def run_by_images(task, images: int) -> None:
    """task(first, stop) over the batch's images, split over the worker threads (a task writes only its own)."""
    workers.run(task, workers.image_groups(images))


class _Pooling1D(Layer):
    """A window sliding along the steps: its 2-D pooling with a window one row high, on a (batch, 1, steps,
    channels) view."""
    pool_size: PositiveInt = Field(2, description="Window length.")
    strides: Optional[PositiveInt] = Field(None, description="Step between windows; default: the pool_size.")
    padding: Padding = Field("valid", description="valid: windows stay inside the sequence; same: output length "
                                                  "ceil(steps / strides), edge windows see only inside cells.")
    if TYPE_CHECKING:  # declared by each type
        type: str

    def _pooling_2d(self) -> Layer:
        raise NotImplementedError

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_sequence(self.type, shape)
        if self.padding == "valid" and self.pool_size > shape[0]:
            raise ShapeError(f"{self.type} pool_size {self.pool_size} is longer than its input {show_shape(shape)} "
                             "with padding 'valid'; use a smaller pool_size or padding: same")
        steps, _ = window_geometry(shape[0], self.pool_size, self.strides or self.pool_size, self.padding)
        return (steps, shape[1])

    def forward(self, weights, xs, training):
        y, cache = self._pooling_2d().forward(weights, [xs[0][:, None]], training)
        return y[:, 0], cache

    def backward(self, weights, grads, cache, dy, need_dx=True):
        (dx,) = self._pooling_2d().backward(weights, grads, cache, dy[:, None], need_dx)
        return [dx[:, 0]]


@LAYERS.register()
class MaxPooling1D(_Pooling1D):
    """Maximum over each window of a channels-last sequence, channel by channel."""
    type: Literal["MaxPooling1D"]

    def _pooling_2d(self) -> Layer:
        return MaxPooling2D.model_validate({"type": "MaxPooling2D", "pool_size": [1, self.pool_size],
                                           "strides": [1, self.strides or self.pool_size], "padding": self.padding})


@LAYERS.register()
class AveragePooling2D(Pooling2D):
    """Mean over each window of channels-last images, channel by channel; with padding 'same', an edge
    window averages only the cells inside the image (padding is not counted), as Keras does."""
    type: Literal["AveragePooling2D"]
    pool_size: Pair = Field(description="Window height and width: one number for a square, or [h, w].")
    strides: Optional[Pair] = Field(None, description="Step between windows: one number, or [h, w]; "
                                                      "default: the pool_size.")
    padding: Padding = Field("valid", description="valid: windows stay inside the image; same: output size "
                                                  "ceil(input / stride), edge windows average their inside cells.")

    def _inverse_counts(self, shape: Shape, dtype) -> np.ndarray:
        """(out_h, out_w): 1 / the number of inside cells of each window."""
        ph, pw, sh, sw, pt, pl, oh, ow = self._geometry(shape)

        def inside(out: int, size: int, window: int, stride: int, before: int) -> np.ndarray:
            start = np.arange(out) * stride - before
            return np.minimum(start + window, size) - np.maximum(start, 0)
        return (1.0 / np.outer(inside(oh, shape[0], ph, sh, pt), inside(ow, shape[1], pw, sw, pl))).astype(dtype)

    def forward(self, weights, xs, training):
        keep_freed_memory()
        x = np.ascontiguousarray(xs[0])
        geometry = self._geometry(x.shape[1:])
        inv_counts = self._inverse_counts(x.shape[1:], x.dtype)
        y = np.empty((x.shape[0], *inv_counts.shape, x.shape[3]), dtype=x.dtype)
        run_by_images(lambda first, stop: kernels.pooling.avgpool_forward(x, inv_counts, *geometry[:6], first, stop,
                                                                          y), x.shape[0])
        return y, (x.shape, inv_counts)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x_shape, inv_counts = cache
        geometry = self._geometry(x_shape[1:])
        dy = np.ascontiguousarray(dy, dtype=inv_counts.dtype)
        dx = np.empty(x_shape, dtype=dy.dtype)
        run_by_images(lambda first, stop: kernels.pooling.avgpool_backward(dy, inv_counts, *geometry[:6], first, stop,
                                                                           dx), dy.shape[0])
        return [dx]


@LAYERS.register()
class AveragePooling1D(_Pooling1D):
    """Mean over each window of a channels-last sequence, channel by channel; with padding 'same', an edge
    window averages only the steps inside the sequence, as Keras does."""
    type: Literal["AveragePooling1D"]
    pool_size: PositiveInt = Field(description="Window length.")

    def _pooling_2d(self) -> Layer:
        return AveragePooling2D.model_validate({"type": "AveragePooling2D", "pool_size": [1, self.pool_size],
                                               "strides": [1, self.strides or self.pool_size],
                                               "padding": self.padding})


class _GlobalPooling(Layer):
    """One value per channel over every position of a sequence (`spatial_axes` 1) or an image (2)."""
    keepdims: bool = Field(False, description="Keep the pooled axes, with size 1.")
    spatial_axes: ClassVar[int]
    if TYPE_CHECKING:  # declared by each type
        type: str

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        (check_sequence if self.spatial_axes == 1 else check_image)(self.type, shape)
        return (*[1] * self.spatial_axes, shape[-1]) if self.keepdims else (shape[-1],)

    def _pooled(self, y: np.ndarray) -> np.ndarray:
        """(batch, channels) as the layer's output: with the pooled axes when keepdims."""
        return y.reshape(y.shape[0], *[1] * self.spatial_axes, y.shape[1]) if self.keepdims else y


def positions(x: np.ndarray) -> np.ndarray:
    """x as (batch, positions, channels): a view of a contiguous x."""
    return np.ascontiguousarray(x).reshape(len(x), math.prod(x.shape[1:-1]), x.shape[-1])


class _GlobalAveragePooling(_GlobalPooling):
    def forward(self, weights, xs, training):
        keep_freed_memory()  # for the backward's dx, as large as the input
        return self._pooled(positions(xs[0]).mean(axis=1)), xs[0].shape

    def backward(self, weights, grads, x_shape, dy, need_dx=True):
        dx = np.empty(x_shape, dtype=dy.dtype)
        positions(dx)[...] = dy.reshape(len(dy), 1, x_shape[-1]) / math.prod(x_shape[1:-1])
        return [dx]


class _GlobalMaxPooling(_GlobalPooling):
    """Ties share the gradient equally (JAX's gradient of a maximum over whole axes, which Keras' is)."""

    def forward(self, weights, xs, training):
        keep_freed_memory()  # for the backward's dx, as large as the input
        x = positions(xs[0])
        y = x.max(axis=1)
        return self._pooled(y), (x, y, xs[0].shape)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, y, x_shape = cache
        dy = np.ascontiguousarray(dy, dtype=x.dtype).reshape(y.shape)
        dx = np.empty(x.shape, dtype=x.dtype)
        run_by_images(lambda first, stop: kernels.pooling.global_max_backward(x, y, dy, first, stop, dx), len(x))
        return [dx.reshape(x_shape)]


@LAYERS.register()
class GlobalAveragePooling1D(_GlobalAveragePooling):
    """Mean over the steps of a channels-last sequence, channel by channel; over the unmasked steps only when
    the sequence carries a mask (Keras' masking), which it consumes."""
    type: Literal["GlobalAveragePooling1D"]
    spatial_axes = 1
    supports_masking: ClassVar[bool] = True
    reads_masks: ClassVar[bool] = True

    def compute_mask(self, xs, masks):
        return None

    def forward(self, weights, xs, training, masks=None):
        if masks is None or masks[0] is None:
            return super().forward(weights, xs, training)
        x = xs[0]
        share = masks[0].astype(x.dtype)
        share /= share.sum(axis=1, keepdims=True)  # each unmasked step's weight in its row's mean
        return self._pooled(np.einsum("bt,btc->bc", share, x)), share

    def backward(self, weights, grads, cache, dy, need_dx=True):
        if not isinstance(cache, np.ndarray):  # no mask: the input's shape
            return super().backward(weights, grads, cache, dy, need_dx)
        return [cache[:, :, None] * dy.reshape(len(dy), 1, -1)]


@LAYERS.register()
class GlobalAveragePooling2D(_GlobalAveragePooling):
    """Mean over the height and width of channels-last images, channel by channel."""
    type: Literal["GlobalAveragePooling2D"]
    spatial_axes = 2


@LAYERS.register()
class GlobalMaxPooling1D(_GlobalMaxPooling):
    """Maximum over the steps of a channels-last sequence, channel by channel."""
    type: Literal["GlobalMaxPooling1D"]
    spatial_axes = 1


@LAYERS.register()
class GlobalMaxPooling2D(_GlobalMaxPooling):
    """Maximum over the height and width of channels-last images, channel by channel."""
    type: Literal["GlobalMaxPooling2D"]
    spatial_axes = 2
