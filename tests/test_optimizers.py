"""Optimizer kernels against the Keras update rules written out in numpy, step by step."""
import numpy as np
import pytest

from specc.train.optimizers import OPTIMIZERS, SGD, Adam, Optimizer, RMSprop
from support import assert_keras_arguments, assert_same_names, keras_class_of


def keras_sgd(c):
    def step(w, g, s, t):
        if not c.momentum:
            return w - c.learning_rate * g
        s["m"] = c.momentum * s.get("m", 0) - c.learning_rate * g
        return w + (c.momentum * s["m"] - c.learning_rate * g if c.nesterov else s["m"])
    return step


def keras_rmsprop(c):
    def step(w, g, s, t):
        s["v"] = c.rho * s.get("v", 0) + (1 - c.rho) * g * g
        denominator = s["v"]
        if c.centered:
            s["a"] = c.rho * s.get("a", 0) + (1 - c.rho) * g
            denominator = denominator - s["a"] ** 2
        increment = c.learning_rate * g / np.sqrt(denominator + c.epsilon)
        if c.momentum:
            s["m"] = c.momentum * s.get("m", 0) + increment
            return w - s["m"]
        return w - increment
    return step


def keras_adam(c):
    def step(w, g, s, t):
        s["m"] = s.get("m", 0) + (g - s.get("m", 0)) * (1 - c.beta_1)
        s["v"] = s.get("v", 0) + (g * g - s.get("v", 0)) * (1 - c.beta_2)
        alpha = c.learning_rate * np.sqrt(1 - c.beta_2 ** t) / (1 - c.beta_1 ** t)
        return w - alpha * s["m"] / (np.sqrt(s["v"]) + c.epsilon)
    return step


CASES = [
    (SGD(type="sgd"), keras_sgd), (SGD(type="sgd", momentum=0.9), keras_sgd),
    (SGD(type="sgd", momentum=0.9, nesterov=True), keras_sgd),
    (RMSprop(type="rmsprop"), keras_rmsprop), (RMSprop(type="rmsprop", momentum=0.5, centered=True), keras_rmsprop),
    (Adam(type="adam"), keras_adam), (Adam(type="adam", learning_rate=0.01, beta_1=0.5), keras_adam),
]


@pytest.mark.parametrize("config,reference", CASES, ids=lambda c: repr(c)[:60] if not callable(c) else "")
def test_matches_keras_rule(config, reference):
    rng = np.random.default_rng(0)
    w = rng.normal(size=50)
    expected, state = w.copy(), {}
    optimizer = Optimizer(config, w.size, np.float64)
    step = reference(config)
    for t in range(1, 6):
        g = rng.normal(size=50)
        optimizer.step(w, g)
        expected = step(expected, g, state, t)
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(w, rng.normal(size=50))


def test_keras_defaults():
    assert (SGD(type="sgd").learning_rate, RMSprop(type="rmsprop").learning_rate, Adam(type="adam").learning_rate) \
        == (0.01, 0.001, 0.001)
    assert (RMSprop(type="rmsprop").rho, Adam(type="adam").beta_2, Adam(type="adam").epsilon) == (0.9, 0.999, 1e-7)


def test_every_optimizer_is_checked_against_keras_rules():
    """CASES steps each optimizer next to Keras' update rule written out in numpy."""
    assert_same_names(OPTIMIZERS, {config.type for config, _ in CASES}, "optimizers (CASES)")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_arguments_are_keras_arguments(name, keras):
    assert_keras_arguments(OPTIMIZERS[name], keras_class_of(keras.optimizers, name), skip={"type"})
