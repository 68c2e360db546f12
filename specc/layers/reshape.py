"""Layers that move values without learning anything: Flatten, Reshape, Permute, RepeatVector, UpSampling1D/2D,
ZeroPadding1D/2D and Cropping1D/2D, as in Keras (channels last).

Flatten and Reshape return views of their input and of their output's gradient (a reshape of a contiguous
array): no layer writes into its inputs or its output's gradient, and the graph sums gradients out of place,
so a view is never written through. Every other layer returns fresh C-contiguous arrays, which the numba
kernels downstream require, and keeps freed memory (runtime.heap) so that those arrays, allocated every step,
reuse pages instead of faulting in fresh ones.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from .. import kernels
from ..runtime.heap import keep_freed_memory
from .base import LAYERS, Layer, Shape, ShapeError, show_shape
from .conv import Pair, check_image, pair
from .pooling import check_sequence, run_by_images

# Amounts to pad or crop: one number for both sides, or [before, after]
Sides = Union[NonNegativeInt, Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]]
# ... on both image axes: one number for all four sides, [rows, columns] (each on both sides), or
# [[top, bottom], [left, right]]
Sides2D = Union[NonNegativeInt, Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)],
                Annotated[list[Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]],
                          Field(min_length=2, max_length=2)]]


def sides(value) -> tuple[int, int]:
    """(before, after) of a Sides value."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def sides_2d(value) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of a Sides2D value."""
    if isinstance(value, int):
        return (value, value), (value, value)
    return sides(value[0]), sides(value[1])


@LAYERS.register()
class Flatten(Layer):
    """Flattens every axis but the batch into one."""
    type: Literal["Flatten"]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return (math.prod(input_shapes[0]),)

    def forward(self, weights, xs, training):
        x = xs[0]
        return x.reshape(len(x), math.prod(x.shape[1:])), x.shape

    def backward(self, weights, grads, shape, dy, need_dx=True):
        return [dy.reshape(shape)]


@LAYERS.register()
class Reshape(Layer):
    """The same values in another shape (row-major order, the batch axis untouched)."""
    type: Literal["Reshape"]
    target_shape: list[int] = Field(description="The output's shape without the batch axis; one entry may be "
                                                "-1, which takes whatever size the others leave.")

    @field_validator("target_shape")
    @classmethod
    def _sizes(cls, target_shape: list[int]) -> list[int]:
        if any(size < 1 and size != -1 for size in target_shape):
            raise ValueError("every size must be positive, or -1 for the one the input's size decides")
        if target_shape.count(-1) > 1:
            raise ValueError("at most one size can be -1")
        return target_shape

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        size, known = math.prod(shape), math.prod(s for s in self.target_shape if s != -1)
        given = f"cannot reshape {show_shape(shape)} ({size} values) into target_shape {self.target_shape}"
        if -1 not in self.target_shape and size != known:
            raise ShapeError(f"{given} ({known} values); the two must hold as many values")
        if -1 in self.target_shape and size % known:
            raise ShapeError(f"{given}: {size} is not a multiple of {known}, the product of its other sizes")
        return tuple(size // known if s == -1 else s for s in self.target_shape)

    def forward(self, weights, xs, training):
        x = xs[0]
        return x.reshape(len(x), *self.output_shape([x.shape[1:]])), x.shape

    def backward(self, weights, grads, shape, dy, need_dx=True):
        return [dy.reshape(shape)]


@LAYERS.register()
class Permute(Layer):
    """Reorders the axes (not the batch): output axis i is input axis dims[i - 1], counted from 1 as in Keras."""
    type: Literal["Permute"]
    dims: list[PositiveInt] = Field(description="A permutation of 1..rank: [2, 1] swaps the two axes of a "
                                                "(steps, features) input.")

    @field_validator("dims")
    @classmethod
    def _permutation(cls, dims: list[int]) -> list[int]:
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"must be a permutation of 1..{len(dims)} (axes are counted from 1, after the batch)")
        return dims

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != len(self.dims):
            raise ShapeError(f"Permute dims {self.dims} reorder {len(self.dims)} axes, but the input "
                             f"{show_shape(shape)} has {len(shape)} besides the batch")
        return tuple(shape[d - 1] for d in self.dims)

    def forward(self, weights, xs, training):
        keep_freed_memory()
        return np.ascontiguousarray(xs[0].transpose(0, *self.dims)), None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        return [np.ascontiguousarray(dy.transpose(0, *(np.argsort(self.dims) + 1)))]


@LAYERS.register()
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the vector repeated n times."""
    type: Literal["RepeatVector"]
    n: PositiveInt = Field(description="How many times to repeat the input.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 1:
            raise ShapeError(f"RepeatVector needs vectors shaped (features,), got {show_shape(shape)}; "
                             "put a Flatten before it")
        return (self.n, shape[0])

    def forward(self, weights, xs, training):
        keep_freed_memory()
        x = xs[0]
        y = np.empty((x.shape[0], self.n, x.shape[1]), dtype=x.dtype)
        y[...] = x[:, None]
        return y, None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        return [dy.sum(axis=1)]


def upsampling_taps(size: int, factor: int, interpolation: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each (size * factor, 2): the two input cells each output cell of an upsampling by
    `factor` along one axis mixes, and their weights (a second weight of 0: the first cell alone).

    nearest: output cell i is input cell i // factor. bilinear: output cell i samples the input at
    (i + 0.5) / factor - 0.5 (half-pixel centres, as jax.image.resize and so Keras 3), linearly between the
    two nearest centres; beyond the first or last centre, the edge cell alone."""
    if interpolation == "nearest":
        below = np.arange(size * factor) // factor
        fraction = np.zeros(size * factor)
    else:
        at = (np.arange(size * factor) + 0.5) / factor - 0.5
        below = np.floor(at).astype(np.int64)
        fraction = at - below
        outside = (below < 0) | (below >= size - 1)
        below, fraction[outside] = np.clip(below, 0, size - 1), 0
    indices = np.stack([below, np.minimum(below + 1, size - 1)], axis=1).astype(np.int64)
    return indices, np.stack([1 - fraction, fraction], axis=1).astype(dtype)


class Upsampling:
    """Enlarging (batch, height, width, channels) images by whole factors (kernels.pooling.upsample_*)."""

    def __init__(self, image_shape: Shape, factors: tuple[int, int], interpolation: str, dtype):
        (h, w, c), (fh, fw) = image_shape, factors
        self.output_shape = (h * fh, w * fw, c)
        self.taps = (*upsampling_taps(h, fh, interpolation, dtype), *upsampling_taps(w, fw, interpolation, dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        keep_freed_memory()
        x = np.ascontiguousarray(x, dtype=self.taps[1].dtype)
        y = np.empty((len(x), *self.output_shape), dtype=x.dtype)
        run_by_images(lambda first, stop: kernels.pooling.upsample_forward(x, *self.taps, first, stop, y), len(x))
        return y

    def backward(self, dy: np.ndarray, x_shape: Shape) -> np.ndarray:
        dy = np.ascontiguousarray(dy, dtype=self.taps[1].dtype)
        dx = np.empty(x_shape, dtype=dy.dtype)
        run_by_images(lambda first, stop: kernels.pooling.upsample_backward(dy, *self.taps, first, stop, dx), len(dy))
        return dx


@LAYERS.register()
class UpSampling1D(Layer):
    """Repeats every step of a (steps, features) sequence `size` times (as UpSampling2D would an image one
    row high: its (batch, 1, steps, features) view)."""
    type: Literal["UpSampling1D"]
    size: PositiveInt = Field(2, description="How many times each step is repeated.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_sequence("UpSampling1D", shape)
        return (shape[0] * self.size, shape[1])

    def forward(self, weights, xs, training):
        x = xs[0][:, None]
        upsampling = Upsampling(x.shape[1:], (1, self.size), "nearest", x.dtype)
        return upsampling.forward(x)[:, 0], (upsampling, x.shape)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        upsampling, x_shape = cache
        return [upsampling.backward(dy[:, None], x_shape)[:, 0]]


@LAYERS.register()
class UpSampling2D(Layer):
    """Enlarges channels-last images `size` times: each cell repeated (nearest), or bilinear interpolation
    between cell centres as Keras 3 resizes images (jax.image.resize's half-pixel sampling)."""
    type: Literal["UpSampling2D"]
    size: Pair = Field(2, description="Factors for the height and width: one number for both, or [h, w].")
    interpolation: Literal["nearest", "bilinear"] = Field(
        "nearest", description="nearest: each cell repeated; bilinear: linear between cell centres, both axes.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_image("UpSampling2D", shape)
        fh, fw = pair(self.size)
        return (shape[0] * fh, shape[1] * fw, shape[2])

    def forward(self, weights, xs, training):
        x = xs[0]
        upsampling = Upsampling(x.shape[1:], pair(self.size), self.interpolation, x.dtype)
        return upsampling.forward(x), (upsampling, x.shape)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        upsampling, x_shape = cache
        return [upsampling.backward(dy, x_shape)]


def inside(shape: tuple, before: tuple[int, ...], after: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of an array of `shape` without `before` and `after` cells on its axes 1, 2, ..."""
    return (slice(None),) + tuple(slice(b, size - a) for size, b, a in zip(shape[1:], before, after))


def padded(x: np.ndarray, before: tuple[int, ...], after: tuple[int, ...]) -> np.ndarray:
    """x with zeros added before and after its axes 1, 2, ... (the batch and the rest untouched)."""
    keep_freed_memory()
    grown = [size + b + a for size, b, a in zip(x.shape[1:], before, after)]
    shape = (x.shape[0], *grown, *x.shape[1 + len(grown):])
    y = np.zeros(shape, dtype=x.dtype)
    y[inside(shape, before, after)] = x
    return y


def cropped(x: np.ndarray, before: tuple[int, ...], after: tuple[int, ...]) -> np.ndarray:
    """A contiguous copy of x without `before` and `after` cells on its axes 1, 2, ..."""
    keep_freed_memory()
    return np.ascontiguousarray(x[inside(x.shape, before, after)])


@LAYERS.register()
class ZeroPadding1D(Layer):
    """Adds zero steps at the start and end of a (steps, features) sequence."""
    type: Literal["ZeroPadding1D"]
    padding: Sides = Field(1, description="Steps added at both ends, or [start, end].")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_sequence("ZeroPadding1D", shape)
        return (shape[0] + sum(sides(self.padding)), shape[1])

    def forward(self, weights, xs, training):
        start, end = sides(self.padding)
        return padded(xs[0], (start,), (end,)), None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        start, end = sides(self.padding)
        return [cropped(dy, (start,), (end,))]


@LAYERS.register()
class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around channels-last images."""
    type: Literal["ZeroPadding2D"]
    padding: Sides2D = Field(1, description="Cells added on every side; [rows, columns], each on both sides; "
                                            "or [[top, bottom], [left, right]].")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_image("ZeroPadding2D", shape)
        rows, cols = sides_2d(self.padding)
        return (shape[0] + sum(rows), shape[1] + sum(cols), shape[2])

    def forward(self, weights, xs, training):
        (top, bottom), (left, right) = sides_2d(self.padding)
        return padded(xs[0], (top, left), (bottom, right)), None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        (top, bottom), (left, right) = sides_2d(self.padding)
        return [cropped(dy, (top, left), (bottom, right))]


def check_cropping(layer: str, shape: Shape, axis: str, size: int, before: int, after: int) -> None:
    if before + after >= size:
        raise ShapeError(f"{layer} crops {before} + {after} {axis} from an input {show_shape(shape)} "
                         f"with {size}: nothing would be left")


@LAYERS.register()
class Cropping1D(Layer):
    """Removes steps at the start and end of a (steps, features) sequence."""
    type: Literal["Cropping1D"]
    cropping: Sides = Field(1, description="Steps removed at both ends, or [start, end].")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_sequence("Cropping1D", shape)
        start, end = sides(self.cropping)
        check_cropping("Cropping1D", shape, "steps", shape[0], start, end)
        return (shape[0] - start - end, shape[1])

    def forward(self, weights, xs, training):
        start, end = sides(self.cropping)
        return cropped(xs[0], (start,), (end,)), None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        start, end = sides(self.cropping)
        return [padded(dy, (start,), (end,))]


@LAYERS.register()
class Cropping2D(Layer):
    """Removes rows and columns at the edges of channels-last images."""
    type: Literal["Cropping2D"]
    cropping: Sides2D = Field([[0, 0], [0, 0]], description="Cells removed on every side; [rows, columns], "
                                                         "each on both sides; or [[top, bottom], [left, right]].")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_image("Cropping2D", shape)
        (top, bottom), (left, right) = sides_2d(self.cropping)
        check_cropping("Cropping2D", shape, "rows", shape[0], top, bottom)
        check_cropping("Cropping2D", shape, "columns", shape[1], left, right)
        return (shape[0] - top - bottom, shape[1] - left - right, shape[2])

    def forward(self, weights, xs, training):
        (top, bottom), (left, right) = sides_2d(self.cropping)
        return cropped(xs[0], (top, left), (bottom, right)), None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        (top, bottom), (left, right) = sides_2d(self.cropping)
        return [padded(dy, (top, left), (bottom, right))]
