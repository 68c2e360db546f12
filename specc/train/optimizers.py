"""Optimizers over the flat array of trainable weights; their state is plain arrays, saved with checkpoints."""
from __future__ import annotations

import math

import numpy as np

from .. import kernels


class NonFiniteGradients(FloatingPointError):
    """A step refused because a gradient is NaN or infinite: the weights and the optimizer state are untouched."""


class Optimizer:
    def __init__(self, config, size: int, dtype=np.float32):
        self.config = config
        self.iterations = 0
        self.learning_rate = float(config.learning_rate)  # callbacks (ReduceLROnPlateau) change it
        self.state = {name: np.zeros(size, dtype) for name in self.slots()}

    def slots(self) -> tuple[str, ...]:
        return ()

    def step(self, weights: np.ndarray, grads: np.ndarray):
        # one BLAS pass, no temporary: a NaN or inf anywhere (or a square sum beyond float32) is not finite
        if not math.isfinite(float(grads @ grads)):
            raise NonFiniteGradients()
        self.iterations += 1
        self.update(weights, grads)


class SGD(Optimizer):
    def slots(self):
        return ("velocity",) if self.config.momentum else ()

    def update(self, w, g):
        c = self.config
        velocity = self.state.get("velocity", w[:0])
        kernels.optimizers.sgd_update(w, g, velocity, self.learning_rate, c.momentum, c.nesterov)


class RMSprop(Optimizer):
    def slots(self):
        c = self.config
        return ("mean_square",) + (("mean_grad",) if c.centered else ()) + (("velocity",) if c.momentum else ())

    def update(self, w, g):
        c, s = self.config, self.state
        kernels.optimizers.rmsprop_update(w, g, s["mean_square"], s.get("mean_grad", w[:0]),
                                          s.get("velocity", w[:0]), self.learning_rate, c.rho, c.momentum,
                                          c.epsilon, c.centered)


class Adam(Optimizer):
    def slots(self):
        return ("m", "v")

    def update(self, w, g):
        c, t = self.config, self.iterations
        step_size = self.learning_rate * np.sqrt(1 - c.beta_2 ** t) / (1 - c.beta_1 ** t)
        kernels.optimizers.adam_update(w, g, self.state["m"], self.state["v"], step_size, c.beta_1, c.beta_2,
                                       c.epsilon)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(config, size: int, dtype=np.float32) -> Optimizer:
    return OPTIMIZERS[config.type](config, size, dtype)
