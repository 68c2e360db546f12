"""Losses by Keras' names and arguments, each with its gradient, reduced as in Keras.

A loss is one settings class (the spec's `compile.loss`: a bare name or `{type: NAME, ...arguments}`) that
computes, for a batch, the reduced loss and its gradient with respect to the predictions in one fused
kernel pass. Keras' reduction ("sum_over_batch_size"): the loss of each position (its values along `axis`
reduced, by a mean or a sum as Keras' function does), times its sample's weight (`sample_weight`, one per
row), summed and divided by the number of positions.

Gradients: where Keras clips probabilities to [1e-7, 1 - 1e-7], the gradient treats the clipping as the
identity, so a saturated prediction still learns; from logits (`from_logits: true`) the losses are computed
in forms that do not overflow (log-sum-exp) and their gradients are exactly those of Keras' formulas.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat

from .. import kernels
from ..registry import Config, Registry

# What a loss compares predictions with, which decides how its targets are read and checked (io.data),
# what random targets look like (synth), which accuracy applies, and whether class weights make sense:
#   labels   integer class ids, one fewer axis than the output      binary   0/1 per position
#   one_hot  a probability distribution over the last axis           values   any real numbers
TargetKind = Literal["labels", "one_hot", "binary", "values"]
Fraction = Annotated[float, Field(ge=0, le=1)]


class LossSettings(Config):
    """A loss as the spec gives it; calling it on (predictions, targets, sample_weight) gives
    (mean loss, gradient shaped like the predictions)."""
    type: str  # each loss's own Literal: the `type:` that selects it
    targets: ClassVar[TargetKind]
    kernel: ClassVar[str]  # the function of kernels.losses that computes it
    logits_kernel: ClassVar[Optional[str]] = None  # the one that computes it from logits (`from_logits: true`)

    @property
    def classifies(self) -> bool:
        return self.targets != "values"

    def __call__(self, pred: np.ndarray, true: np.ndarray, sample_weight: Optional[np.ndarray] = None):
        return _call(self._kernel(), pred, _like(pred, pred, -1), _like(true, pred, -1), sample_weight,
                     *self._options())

    def _kernel(self):
        logits = getattr(self, "from_logits", False) and self.logits_kernel
        return getattr(kernels.losses, logits or self.kernel)

    def _options(self) -> tuple:
        """The kernel's arguments after the common ones."""
        return ()


LOSSES: Registry[type[LossSettings]] = Registry("loss")


def _like(a: np.ndarray, pred: np.ndarray, shape) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=pred.dtype).reshape(shape)


def _call(kernel, pred, flat_pred, true, sample_weight, *options):
    """Run a loss kernel over positions (rows of `flat_pred`); returns (mean loss, gradient shaped like pred).
    `sample_weight` holds one weight per sample, or one per position."""
    grad = np.empty_like(flat_pred)
    weights = pred[:0, ...].reshape(-1) if sample_weight is None else _like(sample_weight, pred, -1)
    positions = flat_pred.shape[0]
    per_weight = positions // len(weights) if len(weights) else 1
    total = kernel(flat_pred, true, 1.0 / positions, weights, per_weight, grad, *options)
    return total / positions, grad.reshape(pred.shape)


def masked_sample_weight(sample_weight: Optional[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """The weight of each position of an output that carries a mask (bool, the output's shape without its last
    axis), as Keras' losses apply one: 0 where masked, total / unmasked positions elsewhere (so the mean
    is over the unmasked positions), times the sample's weight."""
    valid = np.count_nonzero(mask)
    weight = np.where(mask, mask.size / valid if valid else 0.0, 0.0)
    if sample_weight is not None:
        weight *= np.asarray(sample_weight).reshape(len(mask), *[1] * (mask.ndim - 1))
    return weight


def _last(a: np.ndarray, axis: int) -> np.ndarray:
    """`a` with `axis` moved last (a view)."""
    return a if axis in (-1, a.ndim - 1) else np.moveaxis(a, axis, -1)


class _AlongAxis(LossSettings):
    """A loss whose values along one axis form one position (a class distribution, a vector): the last, or
    the loss's `axis` where Keras gives it one."""

    @property
    def reduced_axis(self) -> int:
        return getattr(self, "axis", -1)

    def __call__(self, pred, true, sample_weight=None):
        moved = _last(pred, self.reduced_axis)
        rows = _like(moved, pred, (-1, moved.shape[-1]))
        loss, grad = _call(self._kernel(), moved, rows, self._rows_of_targets(true, moved), sample_weight,
                           *self._options())
        return loss, np.ascontiguousarray(np.moveaxis(grad, -1, self.reduced_axis) if moved is not pred else grad)

    def _rows_of_targets(self, true, moved):
        return _like(_last(np.asarray(true), self.reduced_axis), moved, (-1, moved.shape[-1]))


def smooth(true: np.ndarray, label_smoothing: float, classes: int) -> np.ndarray:
    """Label smoothing as Keras does it: targets squeezed towards the uniform distribution over `classes`
    (two for binary targets: towards 0.5)."""
    if not label_smoothing:
        return true
    return np.asarray(true) * (1.0 - label_smoothing) + label_smoothing / classes


@LOSSES.register(aliases=("bce",))
class BinaryCrossentropy(LossSettings):
    type: Literal["binary_crossentropy"]
    from_logits: bool = False
    label_smoothing: Fraction = 0.0
    axis: int = -1  # the axis averaged over: every value counts alike, so any axis gives the same mean
    targets = "binary"
    kernel = "binary_crossentropy"
    logits_kernel = "binary_crossentropy_logits"

    def __call__(self, pred, true, sample_weight=None):
        targets = _like(smooth(true, self.label_smoothing, 2), pred, -1)
        return _call(self._kernel(), pred, _like(pred, pred, -1), targets, sample_weight)


@LOSSES.register()
class BinaryFocalCrossentropy(LossSettings):
    type: Literal["binary_focal_crossentropy"]
    apply_class_balancing: bool = False
    alpha: Fraction = 0.25
    gamma: NonNegativeFloat = 2.0
    from_logits: bool = False
    label_smoothing: Fraction = 0.0
    axis: int = -1
    targets = "binary"
    kernel = "binary_focal_crossentropy"

    def __call__(self, pred, true, sample_weight=None):
        targets = _like(smooth(true, self.label_smoothing, 2), pred, -1)
        return _call(self._kernel(), pred, _like(pred, pred, -1), targets, sample_weight, self.gamma, self.alpha,
                     self.apply_class_balancing, self.from_logits)


@LOSSES.register()
class CategoricalCrossentropy(_AlongAxis):
    type: Literal["categorical_crossentropy"]
    from_logits: bool = False
    label_smoothing: Fraction = 0.0
    axis: int = -1
    targets = "one_hot"
    kernel = "categorical_crossentropy"
    logits_kernel = "categorical_crossentropy_logits"

    def _rows_of_targets(self, true, moved):
        return smooth(super()._rows_of_targets(true, moved), self.label_smoothing, moved.shape[-1])


@LOSSES.register()
class CategoricalFocalCrossentropy(_AlongAxis):
    type: Literal["categorical_focal_crossentropy"]
    alpha: PositiveFloat = 0.25
    gamma: NonNegativeFloat = 2.0
    from_logits: bool = False
    label_smoothing: Fraction = 0.0
    axis: int = -1
    targets = "one_hot"
    kernel = "categorical_focal_crossentropy"

    def _rows_of_targets(self, true, moved):
        return smooth(super()._rows_of_targets(true, moved), self.label_smoothing, moved.shape[-1])

    def _options(self):
        return self.gamma, self.alpha, self.from_logits


@LOSSES.register()
class SparseCategoricalCrossentropy(_AlongAxis):
    type: Literal["sparse_categorical_crossentropy"]
    from_logits: bool = False
    ignore_class: Optional[int] = None
    axis: int = -1
    targets = "labels"
    kernel = "sparse_categorical_crossentropy"
    logits_kernel = "sparse_categorical_crossentropy_logits"

    def _rows_of_targets(self, true, moved):
        return np.ascontiguousarray(true, dtype=np.int64).reshape(-1)

    def __call__(self, pred, true, sample_weight=None):
        if self.ignore_class is None:
            return super().__call__(pred, true, sample_weight)
        # Keras masks the positions of `ignore_class`: each other position weighs (positions / valid ones)
        labels = np.asarray(true).reshape(len(pred), -1)
        valid = labels != self.ignore_class
        weights = valid * (valid.size / valid.sum() if valid.any() else 0.0)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight).reshape(-1, 1)
        return super().__call__(pred, np.where(valid, labels, 0), weights)


@LOSSES.register(aliases=("mean_squared_error",))
class MeanSquaredError(LossSettings):
    type: Literal["mse"]
    targets = "values"
    kernel = "squared_error"


@LOSSES.register(aliases=("mean_absolute_error",))
class MeanAbsoluteError(LossSettings):
    type: Literal["mae"]
    targets = "values"
    kernel = "absolute_error"


@LOSSES.register(aliases=("mape",))
class MeanAbsolutePercentageError(LossSettings):
    type: Literal["mean_absolute_percentage_error"]
    targets = "values"
    kernel = "absolute_percentage_error"


@LOSSES.register(aliases=("msle",))
class MeanSquaredLogarithmicError(LossSettings):
    type: Literal["mean_squared_logarithmic_error"]
    targets = "values"
    kernel = "squared_logarithmic_error"


@LOSSES.register()
class Huber(LossSettings):
    type: Literal["huber"]
    delta: PositiveFloat = 1.0
    targets = "values"
    kernel = "huber"

    def _options(self):
        return (self.delta,)


@LOSSES.register()
class LogCosh(LossSettings):
    type: Literal["log_cosh"]
    targets = "values"
    kernel = "log_cosh"


@LOSSES.register()
class CosineSimilarity(_AlongAxis):
    type: Literal["cosine_similarity"]
    axis: int = -1
    targets = "values"
    kernel = "cosine_similarity"


@LOSSES.register(aliases=("kld",))
class KLDivergence(_AlongAxis):
    type: Literal["kl_divergence"]
    targets = "one_hot"
    kernel = "kl_divergence"


@LOSSES.register()
class Poisson(LossSettings):
    type: Literal["poisson"]
    targets = "values"
    kernel = "poisson"


def hinge_targets(true: np.ndarray) -> np.ndarray:
    """Keras' hinge targets: 0/1 labels become -1/1 (when every target of the batch is 0 or 1), others stay."""
    return 2.0 * true - 1.0 if np.all((true == 0) | (true == 1)) else true


class _Hinge(LossSettings):
    """max(1 - t pred, 0) ** power, with Keras' hinge targets."""
    targets = "binary"
    kernel = "hinge"
    power: ClassVar[int]

    def __call__(self, pred, true, sample_weight=None):
        return _call(self._kernel(), pred, _like(pred, pred, -1), _like(hinge_targets(np.asarray(true)), pred, -1),
                     sample_weight, self.power)


@LOSSES.register()
class Hinge(_Hinge):
    type: Literal["hinge"]
    power = 1


@LOSSES.register()
class SquaredHinge(_Hinge):
    type: Literal["squared_hinge"]
    power = 2


@LOSSES.register()
class CategoricalHinge(_AlongAxis):
    type: Literal["categorical_hinge"]
    targets = "one_hot"
    kernel = "categorical_hinge"


canonical_loss = LOSSES.settings  # a spec's spelling of one, as {type: its registered name, ...}


def default_loss(name: str) -> LossSettings:
    """The loss of this name (or alias, or Keras class name) with Keras' default arguments."""
    value = canonical_loss(name)
    return LOSSES[value["type"]].model_validate(value)
