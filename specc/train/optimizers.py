"""Optimizers by Keras' names and defaults, each one class: its settings (the spec's `compile.optimizer`),
its state slots and its update rule over the flat array of trainable weights (one fused kernel).

`Optimizer` is a run's optimizer: steps taken, the learning rate in force (callbacks change it) and the
slot arrays, all saved with checkpoints."""
from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PositiveFloat

from .. import kernels
from ..registry import Config, Registry

Fraction = Annotated[float, Field(ge=0, lt=1)]


class NonFiniteGradients(FloatingPointError):
    """A step refused because a gradient is NaN or infinite: the weights and the optimizer state are untouched."""
    loss: float  # the batch's loss, set by train_step as the exception passes through it


class OptimizerSettings(Config):
    learning_rate: PositiveFloat

    def slots(self) -> tuple[str, ...]:
        """Names of the state arrays it keeps, one value per weight."""
        return ()

    def update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], learning_rate: float,
               iterations: int):
        """One step, in place: w and the state arrays. `iterations` counts this step (1 for the first)."""
        raise NotImplementedError


OPTIMIZERS: Registry[type[OptimizerSettings]] = Registry("optimizer")


@OPTIMIZERS.register()
class SGD(OptimizerSettings):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Fraction = 0.0
    nesterov: bool = False

    def slots(self):
        return ("velocity",) if self.momentum else ()

    def update(self, w, g, state, learning_rate, iterations):
        kernels.optimizers.sgd_update(w, g, state.get("velocity", w[:0]), learning_rate, self.momentum,
                                      self.nesterov)


@OPTIMIZERS.register()
class RMSprop(OptimizerSettings):
    type: Literal["rmsprop"]
    learning_rate: PositiveFloat = 0.001
    rho: Annotated[float, Field(gt=0, lt=1)] = 0.9
    momentum: Fraction = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = False

    def slots(self):
        return ("mean_square",) + (("mean_grad",) if self.centered else ()) + (("velocity",) if self.momentum else ())

    def update(self, w, g, state, learning_rate, iterations):
        kernels.optimizers.rmsprop_update(w, g, state["mean_square"], state.get("mean_grad", w[:0]),
                                          state.get("velocity", w[:0]), learning_rate, self.rho, self.momentum,
                                          self.epsilon, self.centered)


@OPTIMIZERS.register()
class Adam(OptimizerSettings):
    type: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: Fraction = 0.9
    beta_2: Fraction = 0.999
    epsilon: PositiveFloat = 1e-7

    def slots(self):
        return ("m", "v")

    def update(self, w, g, state, learning_rate, iterations):
        step_size = learning_rate * np.sqrt(1 - self.beta_2 ** iterations) / (1 - self.beta_1 ** iterations)
        kernels.optimizers.adam_update(w, g, state["m"], state["v"], step_size, self.beta_1, self.beta_2,
                                       self.epsilon)


class Optimizer:
    def __init__(self, config: OptimizerSettings, size: int, dtype=np.float32):
        self.config = config
        self.iterations = 0
        self.learning_rate = float(config.learning_rate)
        self.state = {name: np.zeros(size, dtype) for name in config.slots()}

    def step(self, weights: np.ndarray, grads: np.ndarray):
        # one BLAS pass, no temporary: a NaN or inf anywhere (or a square sum beyond float32) is not finite
        if not math.isfinite(float(grads @ grads)):
            raise NonFiniteGradients()
        self.iterations += 1
        self.config.update(weights, grads, self.state, self.learning_rate, self.iterations)
