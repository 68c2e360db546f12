"""Layers that add noise in training and pass their input through unchanged otherwise: Dropout,
SpatialDropout1D, SpatialDropout2D, GaussianNoise, GaussianDropout, AlphaDropout, as in Keras 3.

A step's noise comes from `training.rng(seed)`: the same for one step and node however often it is drawn
(a resumed run, a finite-difference check), different across steps and nodes. The draws do not depend
on the input's dtype: float64 runs (the gradient checks) see the masks of float32 ones. In inference each
layer returns its input itself: no copy."""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Literal, Optional

import numpy as np
from pydantic import Field

from .. import kernels
from .base import LAYERS, Layer, Shape, ShapeError, Training, show_shape

NoiseShape = Optional[list[Optional[int]]]


def rate_field():
    return Field(ge=0, le=1, description="Fraction of the input cells dropped, from 0 to 1.")


def seed_field():
    return Field(None, ge=0, description="Seeds this layer's noise (with the run's seed, the step and the node).")


def noise_shape_field():
    return Field(None, description="Shape of the mask, with the batch axis, broadcast over the input: null "
                                   "(or the input's size) for a mask entry per cell of an axis, 1 for one shared "
                                   "along it; e.g. [null, 1, null] drops the same features at every timestep.")


def check_noise_shape(noise_shape: NoiseShape, shape: Shape) -> None:
    if noise_shape is None:
        return
    fits = len(noise_shape) == len(shape) + 1 and all(
        n is None or n == 1 or n == size for n, size in zip(noise_shape[1:], shape))
    if not fits:
        raise ShapeError(f"noise_shape {json.dumps(noise_shape)} does not fit an input of shape "
                         f"{show_shape(shape)}: give one entry per axis, batch included, each null, 1 or the "
                         "axis' size")


def mask_shape(noise_shape: NoiseShape, shape: tuple) -> tuple:
    """The mask's shape for a batch of `shape`. The batch entry: 1 shares the mask over the batch; anything
    else gives a mask per row (Keras takes the batch size there)."""
    if noise_shape is None:
        return shape
    return tuple(size if n is None or (i == 0 and n != 1) else n
                 for i, (n, size) in enumerate(zip(noise_shape, shape)))


class Noise(Layer):
    """A layer that changes its input only in training, keeping its shape. Subclasses give `_noisy` (whether
    the layer draws anything), `_apply` (the noisy output and what backward needs) and `_grad`."""
    supports_masking = True  # each type passes its input's mask on, as Keras' does

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]

    def _noisy(self) -> bool:
        raise NotImplementedError

    def _apply(self, x: np.ndarray, training: Training):
        raise NotImplementedError

    def _grad(self, cache, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, weights, xs, training):
        if not training or not self._noisy():
            return xs[0], None
        return self._apply(xs[0], training)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        return [dy if cache is None else self._grad(cache, dy)]


def random_bits(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Uniform uint32 of `shape`: the generator's raw 64-bit draws, each split in two (half the work of
    rng.random, and 2^-32 resolution rather than float32's 2^-24)."""
    count = math.prod(shape)
    return rng.bit_generator.random_raw((count + 1) // 2).view(np.uint32)[:count].reshape(shape)


def drop_threshold(rate: float) -> np.uint64:
    """Random bits below it mean "dropped": a fraction `rate` of them."""
    return np.uint64(round(rate * 2 ** 32))


def dropout_mask(shape: tuple, rate: float, rng: np.random.Generator) -> np.ndarray:
    """float32 of `shape`: 1 / (1 - rate) where a cell is kept (probability 1 - rate), 0 where dropped."""
    mask = np.empty(shape, dtype=np.float32)
    scale = np.float32(1 / (1 - rate)) if rate < 1 else np.float32(0)
    kernels.noise.dropout_mask(random_bits(shape, rng).reshape(-1), drop_threshold(rate), scale, mask.reshape(-1))
    return mask


class BaseDropout(Noise):
    """Inverted dropout: each cell of a mask of `_mask_shape` (broadcast over the input) is dropped with
    probability `rate`; what is kept is scaled by 1 / (1 - rate), so the expected output is the input."""

    if TYPE_CHECKING:  # fields of every dropout, declared by each type in Keras' order
        rate: float
        seed: Optional[int]

    def _noisy(self) -> bool:
        return self.rate > 0

    def _mask_shape(self, shape: tuple) -> tuple:
        return shape

    def _apply(self, x, training):
        mask = dropout_mask(self._mask_shape(x.shape), self.rate, training.rng(self.seed))
        return x * mask, mask

    def _grad(self, mask, dy):
        return dy * mask


@LAYERS.register()
class Dropout(BaseDropout):
    """In training, sets a random fraction `rate` of its input cells to 0 and scales the others by
    1 / (1 - rate); in inference, passes its input through."""
    type: Literal["Dropout"]
    rate: float = rate_field()
    noise_shape: NoiseShape = noise_shape_field()
    seed: Optional[int] = seed_field()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        check_noise_shape(self.noise_shape, input_shapes[0])
        return input_shapes[0]

    def _mask_shape(self, shape):
        return mask_shape(self.noise_shape, shape)


@LAYERS.register()
class SpatialDropout1D(BaseDropout):
    """Dropout of whole channels of sequences (batch, steps, channels): a channel is dropped at every step."""
    type: Literal["SpatialDropout1D"]
    rate: float = rate_field()
    seed: Optional[int] = seed_field()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 2:
            raise ShapeError(f"SpatialDropout1D needs sequences shaped (steps, channels), got {show_shape(shape)}")
        return shape

    def _mask_shape(self, shape):
        return (shape[0], 1, shape[2])


@LAYERS.register()
class SpatialDropout2D(BaseDropout):
    """Dropout of whole channels of channels-last images (batch, height, width, channels)."""
    type: Literal["SpatialDropout2D"]
    rate: float = rate_field()
    seed: Optional[int] = seed_field()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 3:
            raise ShapeError(f"SpatialDropout2D needs images shaped (height, width, channels), "
                             f"got {show_shape(shape)}")
        return shape

    def _mask_shape(self, shape):
        return (shape[0], 1, 1, shape[3])


@LAYERS.register()
class GaussianNoise(Noise):
    """In training, adds normal noise of mean 0 and standard deviation `stddev` to its input."""
    type: Literal["GaussianNoise"]
    stddev: float = Field(ge=0, le=1, description="Standard deviation of the noise, from 0 to 1.")
    seed: Optional[int] = seed_field()

    def _noisy(self) -> bool:
        return self.stddev > 0

    def _apply(self, x, training):
        noise = training.rng(self.seed).standard_normal(x.shape, dtype=np.float32)
        noise *= np.float32(self.stddev)
        return x + noise, None  # its gradient is dy

@LAYERS.register()
class GaussianDropout(Noise):
    """In training, multiplies its input by normal noise of mean 1 and standard deviation
    sqrt(rate / (1 - rate))."""
    type: Literal["GaussianDropout"]
    rate: float = Field(ge=0, lt=1, description="The drop probability the noise stands for, from 0 to below 1.")
    seed: Optional[int] = seed_field()

    def _noisy(self) -> bool:
        return self.rate > 0

    def _apply(self, x, training):
        noise = training.rng(self.seed).standard_normal(x.shape, dtype=np.float32)
        noise *= np.float32(math.sqrt(self.rate / (1 - self.rate)))
        noise += np.float32(1)
        return x * noise, noise

    def _grad(self, noise, dy):
        return dy * noise


ALPHA_PRIME = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946  # -selu's alpha * scale


@LAYERS.register()
class AlphaDropout(Noise):
    """Dropout that keeps selu's self-normalization: dropped cells are set to selu's negative limit, and the
    result is scaled and shifted so mean and variance are kept."""
    type: Literal["AlphaDropout"]
    rate: float = Field(ge=0, lt=1, description="Fraction of the input cells dropped, from 0 to below 1.")
    noise_shape: NoiseShape = noise_shape_field()
    seed: Optional[int] = seed_field()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        check_noise_shape(self.noise_shape, input_shapes[0])
        return input_shapes[0]

    def _noisy(self) -> bool:
        return self.rate > 0

    def _apply(self, x, training):
        kept = random_bits(mask_shape(self.noise_shape, x.shape), training.rng(self.seed)) >= drop_threshold(self.rate)
        # y = a * (x where kept, else alpha') + b
        a = ((1 - self.rate) * (1 + self.rate * ALPHA_PRIME ** 2)) ** -0.5
        b = -a * ALPHA_PRIME * self.rate
        dtype = x.dtype.type
        y = np.where(kept, x * dtype(a) + dtype(b), dtype(a * ALPHA_PRIME + b))
        return y, np.where(kept, dtype(a), dtype(0))

    def _grad(self, slope, dy):
        return dy * slope
