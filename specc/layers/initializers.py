"""Initializers by Keras' names and arguments: each draws an array of a given shape from a seeded generator.

A layer's `kernel_initializer:` (and every other `<weight>_initializer:`) takes a bare name (`he_normal`) or
`{type: NAME, ...arguments}`; Keras' class names (`HeNormal`) are accepted too. Without its own `seed`, an
initializer draws from the run's generator, seeded by the spec's `seed`, so one spec gives one set of weights."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import Field, PositiveFloat

from ..registry import Config, Registry

Shape = tuple
TRUNCATION = 0.87962566103423978  # stddev of a unit normal truncated at ±2: Keras divides by it


class Initializer(Config):
    def __call__(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        return self.draw(shape, rng)

    def draw(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def shape_problem(self, shape: Shape) -> Optional[str]:
        """Why it cannot initialize a weight of this shape; None when it can."""
        return None


INITIALIZERS: Registry[type[Initializer]] = Registry("initializer")


class Random(Initializer):
    seed: Optional[int] = Field(None, description="Its own seed; default: drawn from the spec's seed.")

    def __call__(self, shape, rng):
        return self.draw(shape, rng if self.seed is None else np.random.default_rng(self.seed))


def fans(shape: Shape) -> tuple[int, int]:
    """Keras' fan-in and fan-out: a kernel's last two axes, times its receptive field (all other axes)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_normal(rng: np.random.Generator, mean: float, stddev: float, shape: Shape) -> np.ndarray:
    """N(mean, stddev²) with every draw beyond two standard deviations drawn again, as Keras truncates."""
    values = rng.normal(size=shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.normal(size=int(outside.sum()))
        outside = np.abs(values) > 2
    return mean + stddev * values


@INITIALIZERS.register(aliases=("VarianceScaling",))
class VarianceScaling(Random):
    """scale / fan (fan_in, fan_out or their mean), as the variance of a truncated normal, a normal or a
    uniform distribution."""
    type: Literal["variance_scaling"]
    scale: PositiveFloat = 1.0
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"

    def draw(self, shape, rng):
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return truncated_normal(rng, 0.0, np.sqrt(variance) / TRUNCATION, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, np.sqrt(variance), size=shape)
        limit = np.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)


class _Scaled(Random):
    """A VarianceScaling with Keras' fixed settings (only a seed is given)."""
    settings: ClassVar[tuple[float, str, str]]

    def draw(self, shape, rng):
        scale, mode, distribution = self.settings
        return INITIALIZERS.make("variance_scaling", scale=scale, mode=mode, distribution=distribution).draw(shape, rng)


@INITIALIZERS.register(aliases=("GlorotUniform",))
class GlorotUniform(_Scaled):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    type: Literal["glorot_uniform"]
    settings = (1.0, "fan_avg", "uniform")


@INITIALIZERS.register(aliases=("GlorotNormal",))
class GlorotNormal(_Scaled):
    """Truncated normal of stddev sqrt(2 / (fan_in + fan_out))."""
    type: Literal["glorot_normal"]
    settings = (1.0, "fan_avg", "truncated_normal")


@INITIALIZERS.register(aliases=("HeUniform",))
class HeUniform(_Scaled):
    """U(-l, l), l = sqrt(6 / fan_in)."""
    type: Literal["he_uniform"]
    settings = (2.0, "fan_in", "uniform")


@INITIALIZERS.register(aliases=("HeNormal",))
class HeNormal(_Scaled):
    """Truncated normal of stddev sqrt(2 / fan_in)."""
    type: Literal["he_normal"]
    settings = (2.0, "fan_in", "truncated_normal")


@INITIALIZERS.register(aliases=("LecunUniform",))
class LecunUniform(_Scaled):
    """U(-l, l), l = sqrt(3 / fan_in)."""
    type: Literal["lecun_uniform"]
    settings = (1.0, "fan_in", "uniform")


@INITIALIZERS.register(aliases=("LecunNormal",))
class LecunNormal(_Scaled):
    """Truncated normal of stddev sqrt(1 / fan_in)."""
    type: Literal["lecun_normal"]
    settings = (1.0, "fan_in", "truncated_normal")


@INITIALIZERS.register(aliases=("Orthogonal", "OrthogonalInitializer"))
class Orthogonal(Random):
    """QR of a normal matrix of the flattened 2-D shape, sign-corrected, times `gain`: for (u, 4u),
    W @ W.T == gain² I."""
    type: Literal["orthogonal"]
    gain: float = 1.0

    def draw(self, shape, rng):
        rows = int(np.prod(shape[:-1]))
        cols = shape[-1]
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return np.ascontiguousarray(self.gain * q.reshape(shape))


@INITIALIZERS.register(aliases=("RandomNormal", "normal"))
class RandomNormal(Random):
    type: Literal["random_normal"]
    mean: float = 0.0
    stddev: PositiveFloat = 0.05

    def draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)


@INITIALIZERS.register(aliases=("RandomUniform", "uniform"))
class RandomUniform(Random):
    type: Literal["random_uniform"]
    minval: float = -0.05
    maxval: float = 0.05

    def draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)


@INITIALIZERS.register(aliases=("TruncatedNormal",))
class TruncatedNormal(Random):
    """N(mean, stddev²), redrawn beyond two standard deviations."""
    type: Literal["truncated_normal"]
    mean: float = 0.0
    stddev: PositiveFloat = 0.05

    def draw(self, shape, rng):
        return truncated_normal(rng, self.mean, self.stddev, shape)


@INITIALIZERS.register(aliases=("Zeros", "zero"))
class Zeros(Initializer):
    type: Literal["zeros"]

    def draw(self, shape, rng):
        return np.zeros(shape)


@INITIALIZERS.register(aliases=("Ones", "one"))
class Ones(Initializer):
    type: Literal["ones"]

    def draw(self, shape, rng):
        return np.ones(shape)


@INITIALIZERS.register(aliases=("Constant",))
class Constant(Initializer):
    """`value` everywhere, or an array of the weight's own shape (nested lists)."""
    type: Literal["constant"]
    value: Union[float, list] = 0.0

    def shape_problem(self, shape):
        value = np.asarray(self.value)
        if value.ndim and value.shape != shape:
            return f"constant value of shape {value.shape} for a weight of shape {shape}"
        if value.dtype == object or not np.issubdtype(value.dtype, np.number):
            return "constant value must be a number or nested lists of numbers"
        return None

    def draw(self, shape, rng):
        return np.broadcast_to(np.asarray(self.value, dtype=np.float64), shape).copy()


@INITIALIZERS.register(aliases=("Identity", "IdentityInitializer"))
class Identity(Initializer):
    """`gain` times the identity matrix (2-D weights only)."""
    type: Literal["identity"]
    gain: float = 1.0

    def shape_problem(self, shape):
        return None if len(shape) == 2 else f"identity needs a 2-D weight, got shape {shape}"

    def draw(self, shape, rng):
        return self.gain * np.eye(*shape)


def initializer(value: Union[str, Initializer]) -> Initializer:
    """The initializer a layer argument names: a registered name, or a config already validated."""
    if isinstance(value, Initializer):
        return value
    return INITIALIZERS.make(value)
