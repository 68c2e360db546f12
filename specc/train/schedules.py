"""Learning-rate schedules by Keras 3's class names, arguments and formulas: an optimizer's `learning_rate`
may be `{type: CosineDecay, initial_learning_rate: 0.1, decay_steps: 1000, ...}` instead of a number.

A schedule is a function of the optimizer's step count before the step (0 for the first step), as Keras
calls it with `optimizer.iterations`; it is evaluated in float64 (Keras: in the rate's float32)."""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ..registry import Config, Registry


class ScheduleSettings(Config):
    """A learning-rate schedule as the spec gives it; calling it with a step count gives the rate."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError


SCHEDULES: Registry[type[ScheduleSettings]] = Registry("learning-rate schedule")


@SCHEDULES.register()
class ExponentialDecay(ScheduleSettings):
    """initial_learning_rate * decay_rate ^ (step / decay_steps), the exponent floored with `staircase`."""
    type: Literal["ExponentialDecay"]
    initial_learning_rate: NonNegativeFloat
    decay_steps: PositiveInt
    decay_rate: NonNegativeFloat
    staircase: bool = False

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)


@SCHEDULES.register()
class InverseTimeDecay(ScheduleSettings):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps), the quotient floored with `staircase`."""
    type: Literal["InverseTimeDecay"]
    initial_learning_rate: NonNegativeFloat
    decay_steps: PositiveInt
    decay_rate: NonNegativeFloat
    staircase: bool = False

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate / (1 + self.decay_rate * (math.floor(p) if self.staircase else p))


@SCHEDULES.register()
class PiecewiseConstantDecay(ScheduleSettings):
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i], then
    values[-1]."""
    type: Literal["PiecewiseConstantDecay"]
    boundaries: list[float] = Field(min_length=1, description="Steps, increasing.")
    values: list[NonNegativeFloat] = Field(description="One more than the boundaries.")

    @model_validator(mode="after")
    def _one_more_value(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"{len(self.boundaries)} boundaries need {len(self.boundaries) + 1} values, "
                             f"got {len(self.values)}")
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase, got {self.boundaries}")
        return self

    def __call__(self, step):
        return self.values[sum(step > boundary for boundary in self.boundaries)]


@SCHEDULES.register()
class PolynomialDecay(ScheduleSettings):
    """(initial - end) * (1 - step / decay_steps) ^ power + end, the step held at decay_steps; with `cycle`
    decay_steps grows to the first multiple of it at or beyond the step instead."""
    type: Literal["PolynomialDecay"]
    initial_learning_rate: NonNegativeFloat
    decay_steps: PositiveInt
    end_learning_rate: NonNegativeFloat = 0.0001
    power: NonNegativeFloat = 1.0
    cycle: bool = False

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= max(math.ceil(step / decay_steps), 1)
        else:
            step = min(step, decay_steps)
        fraction_left = 1 - step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * fraction_left ** self.power \
            + self.end_learning_rate


def _cosine(fraction: float, alpha: float) -> float:
    """From 1 at fraction 0 down half a cosine wave to alpha at fraction 1."""
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha


@SCHEDULES.register()
class CosineDecay(ScheduleSettings):
    """With `warmup_target`: a linear rise from initial_learning_rate to warmup_target over warmup_steps,
    then a cosine decay from warmup_target to alpha times it over decay_steps. Without: the decay only,
    from initial_learning_rate. The rate stays at its end value after that."""
    type: Literal["CosineDecay"]
    initial_learning_rate: NonNegativeFloat
    decay_steps: PositiveInt
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0
    warmup_target: Optional[NonNegativeFloat] = None
    warmup_steps: NonNegativeInt = 0

    def __call__(self, step):
        if self.warmup_target is None:
            return self.initial_learning_rate * _cosine(min(step, self.decay_steps) / self.decay_steps, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * step / self.warmup_steps + self.initial_learning_rate
        return self.warmup_target * _cosine((step - self.warmup_steps) / self.decay_steps, self.alpha)


@SCHEDULES.register()
class CosineDecayRestarts(ScheduleSettings):
    """Cosine decays (as CosineDecay's) that restart: the i-th (from 0) lasts first_decay_steps * t_mul^i
    steps and starts from initial_learning_rate * m_mul^i."""
    type: Literal["CosineDecayRestarts"]
    initial_learning_rate: NonNegativeFloat
    first_decay_steps: PositiveInt
    t_mul: PositiveFloat = 2.0
    m_mul: NonNegativeFloat = 1.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:  # the periods so far sum to (1 - t_mul^restart) / (1 - t_mul) first periods
            restart = math.floor(math.log(1 - fraction * (1 - self.t_mul)) / math.log(self.t_mul))
            done = (1 - self.t_mul ** restart) / (1 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        return self.initial_learning_rate * (
            (1 - self.alpha) * self.m_mul ** restart * 0.5 * (1 + math.cos(math.pi * fraction)) + self.alpha)
