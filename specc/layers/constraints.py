"""Weight constraints by Keras' names and arguments: applied to a weight after every optimizer step.

A layer's `kernel_constraint:` (and every other `<weight>_constraint:`) takes a bare name (`non_neg`) or
`{type: NAME, ...arguments}`."""
from __future__ import annotations

from typing import Literal, Union

import numpy as np
from pydantic import NonNegativeFloat

from ..registry import Config, Registry

EPSILON = 1e-7  # Keras' epsilon, added to a norm before dividing by it


class Constraint(Config):
    def apply(self, w: np.ndarray):
        """Constrain w in place."""
        raise NotImplementedError


CONSTRAINTS: Registry[type[Constraint]] = Registry("constraint")
Axis = Union[int, list[int]]


def _norms(w: np.ndarray, axis: Axis) -> np.ndarray:
    return np.sqrt(np.square(w).sum(axis=tuple(np.atleast_1d(axis)), keepdims=True))


@CONSTRAINTS.register(aliases=("MaxNorm",))
class MaxNorm(Constraint):
    """Slices along `axis` with a norm above max_value scaled down to it: w · clip(n, 0, max) / (ε + n)."""
    type: Literal["max_norm"]
    max_value: NonNegativeFloat = 2.0
    axis: Axis = 0

    def apply(self, w):
        norms = _norms(w, self.axis)
        w *= (np.clip(norms, 0, self.max_value) / (EPSILON + norms)).astype(w.dtype)


@CONSTRAINTS.register(aliases=("MinMaxNorm",))
class MinMaxNorm(Constraint):
    """Norms moved into [min_value, max_value] at `rate`: w · (rate · clip(n, min, max) + (1 - rate) · n) / (ε + n)."""
    type: Literal["min_max_norm"]
    min_value: NonNegativeFloat = 0.0
    max_value: NonNegativeFloat = 1.0
    rate: NonNegativeFloat = 1.0
    axis: Axis = 0

    def apply(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        w *= (desired / (EPSILON + norms)).astype(w.dtype)


@CONSTRAINTS.register(aliases=("NonNeg",))
class NonNeg(Constraint):
    """Negative values set to zero."""
    type: Literal["non_neg"]

    def apply(self, w):
        np.maximum(w, 0, out=w)


@CONSTRAINTS.register(aliases=("UnitNorm",))
class UnitNorm(Constraint):
    """Slices along `axis` scaled to unit norm: w / (ε + n)."""
    type: Literal["unit_norm"]
    axis: Axis = 0

    def apply(self, w):
        w /= (EPSILON + _norms(w, self.axis)).astype(w.dtype)


def constraint(value: Union[str, Constraint]) -> Constraint:
    """The constraint a layer argument names: a registered name, or a config already validated."""
    if isinstance(value, Constraint):
        return value
    return CONSTRAINTS.make(value)
