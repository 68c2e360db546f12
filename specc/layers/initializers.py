"""Initializers by Keras' names: each draws an array of a given shape from a seeded generator.

Only the initializers the layers use by default are here until the format lets a spec choose one."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..registry import Registry

Shape = tuple
Initializer = Callable[[Shape, np.random.Generator], np.ndarray]
INITIALIZERS: Registry[Initializer] = Registry("initializer")


def fans(shape: Shape) -> tuple[int, int]:
    """Keras' fan-in and fan-out: a kernel's last two axes, times its receptive field (all other axes)."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(shape: Shape, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """QR of a normal matrix of the flattened 2-D shape, sign-corrected: for (u, 4u), W @ W.T == I."""
    rows = int(np.prod(shape[:-1]))
    cols = shape[-1]
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(gain * q.reshape(shape))


def random_uniform(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """U(-0.05, 0.05): Keras' RandomUniform defaults (Embedding's "uniform")."""
    return rng.uniform(-0.05, 0.05, size=shape)


def zeros(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(shape)


def ones(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    return np.ones(shape)


INITIALIZERS.add("glorot_uniform", glorot_uniform)
INITIALIZERS.add("orthogonal", orthogonal)
INITIALIZERS.add("random_uniform", random_uniform, aliases=("uniform",))
INITIALIZERS.add("zeros", zeros)
INITIALIZERS.add("ones", ones)
