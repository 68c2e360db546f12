"""Optimizers by Keras' names, arguments and defaults, each one class: its settings (the spec's
`compile.optimizer`), its state slots and its update rule over the flat array of trainable weights (one fused
kernel).

What every Keras optimizer does around its rule is `Optimizer.step`'s, in Keras' order: gradients summed
over `gradient_accumulation_steps` batches, clipped (`clipnorm` per weight array, `global_clipnorm` over all,
`clipvalue` per value), the weights decayed (`weight_decay`, decoupled: w -= lr * weight_decay * w), then the
rule. `Optimizer` is a run's optimizer: steps taken, the learning rate (a number callbacks may change, or a
schedule of the steps) and the slot arrays, all saved with checkpoints."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import Discriminator, Field, NonNegativeFloat, PositiveFloat, Tag, ValidationInfo, field_validator

from .. import kernels
from ..registry import Config, Registry
from .schedules import SCHEDULES, ScheduleSettings

Fraction = Annotated[float, Field(ge=0, lt=1)]
Beta = Annotated[float, Field(ge=0, le=1)]


def _rate_kind(value) -> str:
    return "schedule" if isinstance(value, (dict, ScheduleSettings)) else "number"


if TYPE_CHECKING:  # built from the registry at import time; a type checker sees what every member shares
    LearningRate = Union[float, ScheduleSettings]
else:
    LearningRate = Annotated[Union[Annotated[NonNegativeFloat, Tag("number")],
                                   Annotated[Union[tuple(SCHEDULES.entries())], Field(discriminator="type"),
                                             Tag("schedule")]],
                             Discriminator(_rate_kind)]
LEARNING_RATE = "A number, or a schedule {type: CosineDecay, initial_learning_rate: ..., ...}."
CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


class NonFiniteGradients(FloatingPointError):
    """A step refused because a gradient is NaN or infinite: the weights and the optimizer state are untouched."""
    loss: float  # the batch's loss, set by train_step as the exception passes through it


class OptimizerSettings(Config):
    """The arguments every Keras optimizer takes; each optimizer adds its own and its rule."""
    learning_rate: LearningRate
    weight_decay: Optional[NonNegativeFloat] = None
    clipnorm: Optional[NonNegativeFloat] = None
    clipvalue: Optional[NonNegativeFloat] = None
    global_clipnorm: Optional[NonNegativeFloat] = None
    gradient_accumulation_steps: Optional[Annotated[int, Field(ge=2)]] = None

    @field_validator(*CLIPPING[1:])
    @classmethod
    def _one_clipping(cls, value, info: ValidationInfo):
        earlier = [name for name in CLIPPING[:CLIPPING.index(str(info.field_name))] if info.data.get(name) is not None]
        if value is not None and earlier:
            raise ValueError(f"give only one of {', '.join(CLIPPING)}: {earlier[0]} is given too")
        return value

    @property
    def logs(self) -> tuple[str, ...]:
        """Names it adds to every epoch's logs: a schedule's rate."""
        return ("learning_rate",) if isinstance(self.learning_rate, ScheduleSettings) else ()

    def slots(self) -> dict[str, float]:
        """The state arrays it keeps, one value per weight: {name: initial value}."""
        return {}

    def update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], learning_rate: float, step: int):
        """One step of the rule, in place: w and the state arrays. `step` counts updates from 1."""
        raise NotImplementedError


OPTIMIZERS: Registry[type[OptimizerSettings]] = Registry("optimizer")


@OPTIMIZERS.register(aliases=("SGD",))
class SGD(OptimizerSettings):
    type: Literal["sgd"]
    learning_rate: LearningRate = Field(default=0.01, description=LEARNING_RATE)
    momentum: Fraction = 0.0
    nesterov: bool = False

    def slots(self):
        return {"velocity": 0.0} if self.momentum else {}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.sgd_update(w, g, state.get("velocity", w[:0]), learning_rate, self.momentum,
                                      self.nesterov)


@OPTIMIZERS.register(aliases=("RMSprop",))
class RMSprop(OptimizerSettings):
    type: Literal["rmsprop"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    rho: Annotated[float, Field(gt=0, lt=1)] = 0.9
    momentum: Fraction = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = False

    def slots(self):
        return {"mean_square": 0.0, **({"mean_grad": 0.0} if self.centered else {}),
                **({"velocity": 0.0} if self.momentum else {})}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.rmsprop_update(w, g, state["mean_square"], state.get("mean_grad", w[:0]),
                                          state.get("velocity", w[:0]), learning_rate, self.rho, self.momentum,
                                          self.epsilon, self.centered)


@OPTIMIZERS.register(aliases=("Adam",))
class Adam(OptimizerSettings):
    type: Literal["adam"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-7
    amsgrad: bool = False

    def slots(self):
        return {"m": 0.0, "v": 0.0, **({"velocity_hat": 0.0} if self.amsgrad else {})}

    def update(self, w, g, state, learning_rate, step):
        step_size = learning_rate * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        kernels.optimizers.adam_update(w, g, state["m"], state["v"], state.get("velocity_hat", w[:0]), step_size,
                                       self.beta_1, self.beta_2, self.epsilon, self.amsgrad)


@OPTIMIZERS.register(aliases=("AdamW",))
class AdamW(Adam):
    """Adam with weight decay on by default."""
    type: Literal["adamw"]  # type: ignore[assignment]  # its own tag, Adam's rule
    weight_decay: NonNegativeFloat = 0.004  # Keras refuses None here


@OPTIMIZERS.register(aliases=("Adagrad",))
class Adagrad(OptimizerSettings):
    type: Literal["adagrad"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    initial_accumulator_value: NonNegativeFloat = 0.1
    epsilon: PositiveFloat = 1e-7

    def slots(self):
        return {"accumulator": self.initial_accumulator_value}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.adagrad_update(w, g, state["accumulator"], learning_rate, self.epsilon)


@OPTIMIZERS.register(aliases=("Adadelta",))
class Adadelta(OptimizerSettings):
    type: Literal["adadelta"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    rho: Annotated[float, Field(ge=0, le=1)] = 0.95
    epsilon: PositiveFloat = 1e-7

    def slots(self):
        return {"accumulated_grad": 0.0, "accumulated_delta_var": 0.0}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.adadelta_update(w, g, state["accumulated_grad"], state["accumulated_delta_var"],
                                           learning_rate, self.rho, self.epsilon)


@OPTIMIZERS.register(aliases=("Adamax",))
class Adamax(OptimizerSettings):
    type: Literal["adamax"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-7

    def slots(self):
        return {"momentum": 0.0, "norm": 0.0}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.adamax_update(w, g, state["momentum"], state["norm"], learning_rate, self.beta_1,
                                         self.beta_2, self.epsilon, 1 - self.beta_1 ** step)


# prod_{s<=t} (1 - 0.96^s / 2) for t = 0, 1, ...: from s = 1000 on each factor is 1 in float64
_NADAM_PRODUCTS = np.cumprod(np.concatenate([[1.0], 1 - 0.5 * 0.96 ** np.arange(1, 1001)]))


@OPTIMIZERS.register(aliases=("Nadam",))
class Nadam(OptimizerSettings):
    type: Literal["nadam"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-7

    def slots(self):
        return {"momentum": 0.0, "velocity": 0.0}

    def momentum_product(self, step: int) -> float:
        """prod_{s<=step} u_s, u_s = beta_1 (1 - 0.96^s / 2): Keras keeps it as a variable, a function of the
        step here."""
        return self.beta_1 ** step * _NADAM_PRODUCTS[min(step, len(_NADAM_PRODUCTS) - 1)]

    def update(self, w, g, state, learning_rate, step):
        u_now, u_next = (self.beta_1 * (1 - 0.5 * 0.96 ** s) for s in (step, step + 1))
        product = self.momentum_product(step)
        momentum_weight = u_next / (1 - product * u_next)
        gradient_weight = (1 - u_now) / (1 - product)
        kernels.optimizers.nadam_update(w, g, state["momentum"], state["velocity"], learning_rate, self.beta_1,
                                        self.beta_2, self.epsilon, momentum_weight, gradient_weight,
                                        1 / (1 - self.beta_2 ** step))


@OPTIMIZERS.register(aliases=("Lion",))
class Lion(OptimizerSettings):
    type: Literal["lion"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    beta_1: Annotated[float, Field(gt=0, le=1)] = 0.9
    beta_2: Beta = 0.99

    def slots(self):
        return {"momentum": 0.0}

    def update(self, w, g, state, learning_rate, step):
        kernels.optimizers.lion_update(w, g, state["momentum"], learning_rate, self.beta_1, self.beta_2)


@OPTIMIZERS.register(aliases=("Ftrl",))
class Ftrl(OptimizerSettings):
    type: Literal["ftrl"]
    learning_rate: LearningRate = Field(default=0.001, description=LEARNING_RATE)
    learning_rate_power: Annotated[float, Field(le=0)] = -0.5
    initial_accumulator_value: NonNegativeFloat = 0.1
    l1_regularization_strength: NonNegativeFloat = 0.0
    l2_regularization_strength: NonNegativeFloat = 0.0
    l2_shrinkage_regularization_strength: NonNegativeFloat = 0.0
    beta: NonNegativeFloat = 0.0

    def slots(self):
        return {"accumulator": self.initial_accumulator_value, "linear": 0.0}

    def update(self, w, g, state, learning_rate, step):
        l2 = self.l2_regularization_strength + self.beta / (2.0 * learning_rate)
        kernels.optimizers.ftrl_update(w, g, state["accumulator"], state["linear"], learning_rate,
                                       self.learning_rate_power, self.l1_regularization_strength, l2,
                                       self.l2_shrinkage_regularization_strength)


ACCUMULATOR = "gradient_accumulator"  # the state array that sums gradients between accumulated steps


class Optimizer:
    """A run's optimizer over one flat array of `size` trainable weights, made of weight arrays of
    `array_sizes` (default: one array; `clipnorm` clips each array's gradient by its own norm)."""

    def __init__(self, config: OptimizerSettings, size: int, dtype=np.float32, array_sizes: Sequence[int] = ()):
        self.config = config
        self.iterations = 0  # batches stepped on, as Keras counts them (accumulating batches included)
        self.state = {name: np.full(size, value, dtype) for name, value in config.slots().items()}
        if config.gradient_accumulation_steps:
            self.state[ACCUMULATOR] = np.zeros(size, dtype)
        self.bounds = np.cumsum([0, *(array_sizes or [size])]).astype(np.int64)
        if self.bounds[-1] != size:
            raise AssertionError(f"weight arrays of {self.bounds[-1]} values in a buffer of {size}")
        rate = config.learning_rate
        self.schedule = rate if isinstance(rate, ScheduleSettings) else None
        self._rate = 0.0 if self.schedule else float(rate)  # type: ignore[arg-type]

    @property
    def learning_rate(self) -> float:
        """The rate of the next step: the schedule's at the steps taken so far, or the number in force."""
        return self.schedule(self.iterations) if self.schedule else self._rate

    @learning_rate.setter
    def learning_rate(self, value: float):
        if self.schedule:
            raise TypeError("the learning rate follows a schedule: it cannot be set")
        self._rate = float(value)

    def step(self, weights: np.ndarray, grads: np.ndarray):
        """One batch's gradients: an update of `weights` (in place), or with gradient accumulation their sum
        kept until the n-th batch, which updates with the mean. `grads` is clipped in place."""
        # one BLAS pass, no temporary: a NaN or inf anywhere (or a square sum beyond float32) is not finite
        if not math.isfinite(float(grads @ grads)):
            raise NonFiniteGradients()
        config, every = self.config, self.config.gradient_accumulation_steps or 1
        if every > 1:
            summed = self.state[ACCUMULATOR]
            summed += grads
            if (self.iterations + 1) % every:
                self.iterations += 1
                return
            grads = np.divide(summed, summed.dtype.type(every), out=summed)
        learning_rate = self.learning_rate
        self._clip(grads)
        if config.weight_decay:
            kernels.optimizers.decay_weights(weights, learning_rate, config.weight_decay)
        config.update(weights, grads, self.state, learning_rate, self.iterations // every + 1)
        if every > 1:
            grads[...] = 0  # the accumulator: empty for the next batches
        self.iterations += 1

    def _clip(self, grads: np.ndarray):
        config = self.config
        if config.clipnorm:
            kernels.optimizers.clip_by_norm(grads, self.bounds, config.clipnorm)
        elif config.global_clipnorm:
            norm = math.sqrt(float(grads @ grads))
            if norm > config.global_clipnorm:
                grads *= grads.dtype.type(config.global_clipnorm / norm)
        elif config.clipvalue:
            np.clip(grads, -config.clipvalue, config.clipvalue, out=grads)
