"""Normalization and preprocessing layers: BatchNormalization, LayerNormalization, UnitNormalization,
Normalization and Rescaling, as Keras 3 computes them.

An `axis` counts the batch axis as Keras does (0 is the batch, -1 the last); the statistics of a layer are
taken over every axis it does not keep. The work is done on a (rows, features) view of the input, the kept
axes last: for the usual `axis: -1` that view is the input itself, reshaped; another axis costs a copy.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

import numpy as np
from pydantic import Field, NonNegativeFloat, model_validator

from .. import kernels
from ..registry import Config
from .base import (
    LAYERS,
    ConstraintArgument,
    InitializerArgument,
    Layer,
    RegularizerArgument,
    Shape,
    ShapeError,
    Training,
    TrainingFlag,
    show_shape,
)

Axes = Union[int, Annotated[list[int], Field(min_length=1)]]
# Normalization's given statistics: a number, or an array of up to three axes
Values = Union[float, list[float], list[list[float]], list[list[list[float]]]]

# Normalization divides by max(sqrt(variance), this): Keras' backend epsilon
NORMALIZATION_EPSILON = 1e-7
# UnitNormalization scales by min(1 / |x|, 1 / this), as Keras' ops.normalize
UNIT_EPSILON = 1e-12


def kept_axes(axis: Axes, rank: int) -> tuple[int, ...]:
    """The axes `axis` names, as sorted indices into a shape without the batch; ShapeError when one is the
    batch, out of range or repeated. `rank` does not count the batch."""
    given = [axis] if isinstance(axis, int) else list(axis)
    kept = []
    for a in given:
        index = a + rank + 1 if a < 0 else a
        if index == 0:
            raise ShapeError(f"axis {a} is the batch axis; name axes 1 to {rank} (or -1 to -{rank})")
        if not 1 <= index <= rank:
            raise ShapeError(f"axis {a} is out of range for inputs of rank {rank + 1} (axis 0 is the batch)")
        kept.append(index - 1)
    if len(set(kept)) != len(kept):
        raise ShapeError(f"axis {given} names an axis twice")
    return tuple(sorted(kept))


def ones_or_zeros(shapes: dict[str, Shape], ones: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Ones for the named weights, zeros for the rest."""
    return {name: np.ones(shape) if name in ones else np.zeros(shape) for name, shape in shapes.items()}


def as_rows(x: np.ndarray, kept: tuple[int, ...]) -> np.ndarray:
    """x as (rows, features) with the kept axes (of a shape without the batch) last, in order, contiguous: a
    view when they are last already."""
    axes = [a + 1 for a in kept]
    moved = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim))
    return np.ascontiguousarray(moved).reshape(-1, math.prod(x.shape[a] for a in axes))


def from_rows(rows: np.ndarray, like: np.ndarray, kept: tuple[int, ...]) -> np.ndarray:
    """The inverse of as_rows: rows back to the layout of `like`, contiguous."""
    axes = [a + 1 for a in kept]
    last = range(like.ndim - len(axes), like.ndim)
    moved_shape = [like.shape[a] for a in range(like.ndim) if a not in axes] + [like.shape[a] for a in axes]
    return np.ascontiguousarray(np.moveaxis(rows.reshape(moved_shape), last, axes))


class ScaleOffsetArguments(Config):
    """Keras' arguments for the learned `gamma` (scale) and `beta` (offset)."""
    beta_initializer: InitializerArgument = "zeros"
    gamma_initializer: InitializerArgument = "ones"
    beta_regularizer: Optional[RegularizerArgument] = None
    gamma_regularizer: Optional[RegularizerArgument] = None
    beta_constraint: Optional[ConstraintArgument] = None
    gamma_constraint: Optional[ConstraintArgument] = None


@LAYERS.register()
class BatchNormalization(ScaleOffsetArguments, Layer):
    """Normalizes each channel (the `axis`) by statistics over every other axis:

        y = (x - mean) / sqrt(variance + epsilon) * gamma + beta

    In a training step (unless the layer is frozen, or inside a frozen model) the statistics are the batch's
    (variance biased), and the moving ones follow them: moving = moving * momentum + batch * (1 - momentum).
    Otherwise the moving statistics are used (inference mode)."""
    type: Literal["BatchNormalization"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    axis: int = Field(-1, description="The channel axis (0 is the batch; default the last).")
    momentum: float = 0.99
    epsilon: NonNegativeFloat = 0.001
    center: bool = Field(True, description="Add the learned offset beta.")
    scale: bool = Field(True, description="Multiply by the learned gamma.")
    moving_mean_initializer: InitializerArgument = "zeros"
    moving_variance_initializer: InitializerArgument = "ones"

    state_weights = frozenset({"moving_mean", "moving_variance"})

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        kept_axes(self.axis, len(shape))
        return shape

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        (shape,) = input_shapes
        channels = (shape[kept_axes(self.axis, len(shape))[0]],)
        learned = [name for name, on in (("gamma", self.scale), ("beta", self.center)) if on]
        return {name: channels for name in [*learned, "moving_mean", "moving_variance"]}

    def batch_statistics(self, training: TrainingFlag) -> bool:
        """Keras 3: batch statistics only in training, of a trainable layer (here: not inside a frozen model)."""
        frozen = isinstance(training, Training) and training.frozen
        return bool(training) and self.trainable and not frozen

    def forward(self, weights, xs, training):
        x = xs[0]
        kept = kept_axes(self.axis, x.ndim - 1)
        rows = as_rows(x, kept)
        dtype = rows.dtype
        batch = self.batch_statistics(training)
        if batch:
            mean64, variance64 = np.empty(rows.shape[1]), np.empty(rows.shape[1])
            kernels.normalization.column_moments(rows, mean64, variance64)
            mean, variance = mean64.astype(dtype), variance64.astype(dtype)
            for name, statistic in (("moving_mean", mean), ("moving_variance", variance)):
                moving = weights[name]
                moving[...] = moving * self.momentum + statistic.astype(moving.dtype) * (1.0 - self.momentum)
        else:
            mean, variance = weights["moving_mean"].astype(dtype), weights["moving_variance"].astype(dtype)
        inv = (1 / np.sqrt(variance + dtype.type(self.epsilon))).astype(dtype)
        scale = inv * weights["gamma"].astype(dtype) if self.scale else inv
        shift = -mean * scale
        if self.center:
            shift += weights["beta"].astype(dtype)
        y = np.empty_like(rows)
        kernels.normalization.scale_shift_columns(rows, scale, shift, y)
        return from_rows(y, x, kept), (batch, kept, rows, mean, inv, scale)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        batch, kept, rows, mean, inv, scale = cache
        dy_rows = as_rows(dy, kept)
        count = rows.shape[0]
        sum_dy, sum_dy_xhat = np.empty(rows.shape[1]), np.empty(rows.shape[1])
        kernels.normalization.column_gradient_sums(rows, dy_rows, mean, inv, sum_dy, sum_dy_xhat)
        if self.scale:
            grads["gamma"] += sum_dy_xhat
        if self.center:
            grads["beta"] += sum_dy
        if not need_dx:
            return [None]
        if not batch:  # fixed statistics: y is affine in x
            return [from_rows(dy_rows * scale, dy, kept)]
        dtype = rows.dtype
        a = scale
        b = (-a * inv * sum_dy_xhat / count).astype(dtype)
        e = (-a * sum_dy / count).astype(dtype)
        dx = np.empty_like(rows)
        kernels.normalization.batch_statistics_input_grad(rows, dy_rows, mean, a, b, e, dx)
        return [from_rows(dx, dy, kept)]


@LAYERS.register()
class LayerNormalization(ScaleOffsetArguments, Layer):
    """Normalizes each sample over the `axis` (one or several) by its own statistics:

        y = (x - mean) / sqrt(variance + epsilon) * gamma + beta

    the variance biased, gamma and beta of the shape of those axes."""
    type: Literal["LayerNormalization"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    axis: Axes = Field(-1, description="The axis, or axes, each sample is normalized over (0 is the batch).")
    epsilon: NonNegativeFloat = 0.001
    center: bool = Field(True, description="Add the learned offset beta.")
    scale: bool = Field(True, description="Multiply by the learned gamma.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        kept_axes(self.axis, len(shape))
        return shape

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        (shape,) = input_shapes
        normalized = tuple(shape[a] for a in kept_axes(self.axis, len(shape)))
        return {name: normalized for name, on in (("gamma", self.scale), ("beta", self.center)) if on}

    def _flat(self, weights, name: str, dtype) -> np.ndarray:
        """A weight as one row of features, or an empty array when the layer has none."""
        return weights[name].reshape(-1).astype(dtype) if name in weights else np.empty(0, dtype)

    def forward(self, weights, xs, training):
        x = xs[0]
        kept = kept_axes(self.axis, x.ndim - 1)
        rows = as_rows(x, kept)
        y = np.empty_like(rows)
        mean, inv = np.empty(rows.shape[0]), np.empty(rows.shape[0])
        kernels.normalization.layer_norm_forward(rows, self._flat(weights, "gamma", rows.dtype),
                                                 self._flat(weights, "beta", rows.dtype), self.epsilon, y, mean, inv)
        return from_rows(y, x, kept), (kept, rows, mean, inv)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        kept, rows, mean, inv = cache
        dy_rows = as_rows(dy, kept)
        dx = np.empty_like(rows) if need_dx else np.empty((0, rows.shape[1]), rows.dtype)
        dgamma, dbeta = np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
        kernels.normalization.layer_norm_backward(rows, dy_rows, self._flat(weights, "gamma", rows.dtype),
                                                  mean, inv, dx, dgamma, dbeta)
        if self.scale:
            grads["gamma"] += dgamma.reshape(grads["gamma"].shape)
        if self.center:
            grads["beta"] += dbeta.reshape(grads["beta"].shape)
        return [from_rows(dx, dy, kept) if need_dx else None]


@LAYERS.register()
class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over the `axis` (one or several): y = x / max(|x|, 1e-12)."""
    type: Literal["UnitNormalization"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    axis: Axes = Field(-1, description="The axis, or axes, whose norm becomes 1 (0 is the batch).")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        kept_axes(self.axis, len(shape))
        return shape

    def forward(self, weights, xs, training):
        x = xs[0]
        axes = tuple(a + 1 for a in kept_axes(self.axis, x.ndim - 1))
        inv = 1 / np.sqrt(np.maximum(np.sum(x * x, axis=axes, keepdims=True), x.dtype.type(UNIT_EPSILON ** 2)))
        y = x * inv
        return y, (axes, y, inv)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        """Where |x| > epsilon, dx = (dy - y * Σ dy y) / |x|; below it x is only scaled: dx = dy / epsilon."""
        axes, y, inv = cache
        unit = inv < 1 / UNIT_EPSILON
        return [(dy - np.where(unit, y * np.sum(dy * y, axis=axes, keepdims=True), 0)) * inv]


@LAYERS.register()
class Rescaling(Layer):
    """y = x * scale + offset (a list of numbers applies one per value of the last axis)."""
    type: Literal["Rescaling"]
    supports_masking = True  # passes its input's mask on, as Keras' does
    scale: Union[float, list[float]] = Field(description="Multiplies the input, e.g. 0.00392156862745098 "
                                                          "(1 / 255).")
    offset: Union[float, list[float]] = 0.0

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if isinstance(value, list) and (not shape or len(value) not in (1, shape[-1])):
                raise ShapeError(f"{name} has {len(value)} values; the input's last axis has "
                                 f"{shape[-1] if shape else 'no'} values: give one number, or one per value")
        return shape

    def forward(self, weights, xs, training):
        x = xs[0]
        scale = np.asarray(self.scale, x.dtype)
        y = x * scale
        y += np.asarray(self.offset, x.dtype)
        return y, scale

    def backward(self, weights, grads, scale, dy, need_dx=True):
        return [dy * scale]


@LAYERS.register()
class Normalization(Layer):
    """Standardizes features: y = (x - mean) / max(sqrt(variance), 1e-7), or with `invert` the reverse,
    y = mean + x * max(sqrt(variance), 1e-7); one mean and variance per position of the `axis` (none: one
    for all values).

    With `mean` and `variance` given the layer has no weights. Without them it has the non-trainable weights
    mean, variance (of the kept axes' shape) and count (the values they were computed from), adapted from
    the training data before a fresh run trains (specc.train.adapt). Until then the layer has mean 0 and
    variance 1: it passes its input through unchanged, as an unadapted Keras layer does."""
    type: Literal["Normalization"]
    axis: Optional[Axes] = Field(-1, description="The axis, or axes, that keep their own statistics; null: one "
                                                 "mean and variance for everything.")
    mean: Optional[Values] = Field(None, description="Given statistics (with `variance`); default: adapted "
                                                     "from the training data.")
    variance: Optional[Values] = None
    invert: bool = Field(False, description="Undo the normalization instead: x * std + mean.")

    state_weights = frozenset({"mean", "variance", "count"})

    @model_validator(mode="after")
    def _given_together(self):
        if (self.mean is None) != (self.variance is None):
            raise ValueError("give both `mean` and `variance`, or neither (to adapt them from the training data)")
        if self.mean is not None:
            try:
                mean, variance = np.asarray(self.mean, float), np.asarray(self.variance, float)
            except ValueError:
                raise ValueError("`mean` and `variance` must be numbers or rectangular lists of numbers") from None
            if mean.shape != variance.shape:
                raise ValueError(f"`mean` has shape {mean.shape} and `variance` {variance.shape}: they must match")
            if (variance < 0).any():
                raise ValueError("`variance` must not be negative")
        return self

    def kept(self, rank: int) -> tuple[int, ...]:
        """The axes with their own statistics, as indices into a shape of `rank` axes without the batch."""
        return () if self.axis is None else kept_axes(self.axis, rank)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        kept = self.kept(len(shape))
        if self.mean is not None:
            self._given_statistics(shape, kept)
        return shape

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        if self.mean is not None:
            return {}
        (shape,) = input_shapes
        statistics = tuple(shape[a] for a in self.kept(len(shape)))
        return {"mean": statistics, "variance": statistics, "count": ()}

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return ones_or_zeros(shapes, ones=("variance",))

    def _given_statistics(self, shape: Shape, kept: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The given mean and variance broadcast to the kept axes' shape: their axes match the last kept axes,
        as in Keras."""
        mean, variance = np.asarray(self.mean, float), np.asarray(self.variance, float)
        statistics = tuple(shape[a] for a in kept)
        if mean.ndim > len(kept) or any(
                given not in (1, size) for given, size in zip(mean.shape[::-1], statistics[::-1])):
            what = f"axes {[a + 1 for a in kept]} of size {statistics}" if kept else "no axes (axis: null)"
            raise ShapeError(f"`mean` and `variance` of shape {mean.shape} do not fit the kept {what} of "
                             f"{show_shape(shape)}")
        return np.broadcast_to(mean, statistics), np.broadcast_to(variance, statistics)

    def _broadcastable(self, weights, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mean and max(sqrt(variance), epsilon) shaped to broadcast against x, in x's dtype."""
        shape = x.shape[1:]
        kept = self.kept(len(shape))
        if self.mean is not None:
            mean, variance = self._given_statistics(shape, kept)
        else:
            mean, variance = weights["mean"], weights["variance"]
        broadcast = [x.shape[a + 1] if a in kept else 1 for a in range(len(shape))]
        std = np.maximum(np.sqrt(variance), NORMALIZATION_EPSILON)
        return mean.reshape(broadcast).astype(x.dtype), std.reshape(broadcast).astype(x.dtype)

    def forward(self, weights, xs, training):
        x = xs[0]
        mean, std = self._broadcastable(weights, x)
        if self.invert:
            return mean + x * std, std
        return (x - mean) / std, std

    def backward(self, weights, grads, std, dy, need_dx=True):
        return [dy * std if self.invert else dy / std]
