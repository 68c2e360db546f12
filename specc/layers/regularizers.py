"""Weight regularizers by Keras' names and arguments: a penalty added to the loss, and its gradient.

A layer's `kernel_regularizer:` (and every other `<weight>_regularizer:`, and `activity_regularizer:` on its
output) takes a bare name (`l2`: Keras' default factor) or `{type: NAME, ...arguments}`."""
from __future__ import annotations

from typing import Literal, Optional, Union

import numpy as np
from pydantic import NonNegativeFloat

from ..registry import Config, Registry

EPSILON = 1e-7  # Keras' epsilon: the smallest norm a row is divided by


class Regularizer(Config):
    def penalty(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """d penalty / d w."""
        raise NotImplementedError

    def shape_problem(self, shape: tuple) -> Optional[str]:
        """Why it cannot apply to a weight of this shape; None when it can."""
        return None


REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


@REGULARIZERS.register(aliases=("L1",))
class L1(Regularizer):
    """l1 · Σ|w|."""
    type: Literal["l1"]
    l1: NonNegativeFloat = 0.01

    def penalty(self, w):
        return self.l1 * float(np.abs(w).sum())

    def gradient(self, w):
        return self.l1 * np.sign(w)


@REGULARIZERS.register(aliases=("L2",))
class L2(Regularizer):
    """l2 · Σw²."""
    type: Literal["l2"]
    l2: NonNegativeFloat = 0.01

    def penalty(self, w):
        return self.l2 * float(np.square(w).sum())

    def gradient(self, w):
        return 2 * self.l2 * w


@REGULARIZERS.register(aliases=("L1L2", "l1l2"))
class L1L2(Regularizer):
    """l1 · Σ|w| + l2 · Σw²."""
    type: Literal["l1_l2"]
    l1: NonNegativeFloat = 0.0
    l2: NonNegativeFloat = 0.0

    def penalty(self, w):
        return self.l1 * float(np.abs(w).sum()) + self.l2 * float(np.square(w).sum())

    def gradient(self, w):
        return self.l1 * np.sign(w) + 2 * self.l2 * w


@REGULARIZERS.register(aliases=("OrthogonalRegularizer",))
class OrthogonalRegularizer(Regularizer):
    """How far the rows (or columns) of a 2-D weight are from orthogonal: with u the rows scaled to unit norm,

        factor · ½ Σ_{i≠j} |u_i · u_j| / (n (n - 1) / 2)"""
    type: Literal["orthogonal_regularizer"]
    factor: NonNegativeFloat = 0.01
    mode: Literal["rows", "columns"] = "rows"

    def shape_problem(self, shape):
        return None if len(shape) == 2 else f"orthogonal_regularizer needs a 2-D weight, got shape {shape}"

    def _units(self, w):
        rows = w if self.mode == "rows" else w.T
        norms = np.maximum(np.sqrt(np.square(rows).sum(axis=1, keepdims=True)), EPSILON)
        return rows, norms, rows / norms

    def _scale(self, n: int) -> float:
        return self.factor * 0.5 / (n * (n - 1) / 2)

    def penalty(self, w):
        _, _, u = self._units(w)
        product = u @ u.T
        np.fill_diagonal(product, 0)
        return self._scale(len(u)) * float(np.abs(product).sum())

    def gradient(self, w):
        rows, norms, u = self._units(w)
        signs = np.sign(u @ u.T)
        np.fill_diagonal(signs, 0)
        du = self._scale(len(u)) * 2 * (signs @ u)  # the product is symmetric: each pair counts twice
        # through u = rows / |rows| (a norm clamped at EPSILON passes no gradient to it)
        unclamped = norms > EPSILON
        drows = du / norms - unclamped * u * np.sum(du * u, axis=1, keepdims=True) / norms
        return drows if self.mode == "rows" else drows.T


def regularizer(value: Union[str, Regularizer]) -> Regularizer:
    """The regularizer a layer argument names: a registered name, or a config already validated."""
    if isinstance(value, Regularizer):
        return value
    return REGULARIZERS.make(value)
