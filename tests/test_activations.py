"""Every activation name against its formula in numpy, forward and derivative; the table must list exactly
the registry's names (Keras' meaning of each is checked through the Activation layer's Keras comparison)."""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numeric_gradient

from specc.layers import Activation
from specc.layers.activations import ACTIVATIONS
from support import assert_same_names

# -- activations ------------------------------------------------------------------------------------------

def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


ACTIVATION_REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": softmax,
}


def test_every_activation_has_a_reference():
    assert_same_names(ACTIVATIONS, ACTIVATION_REFERENCES, "activations")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_its_reference(name):
    layer = Activation(type="Activation", activation=name)
    x = np.random.default_rng(8).normal(scale=3, size=(3, 4, 5))
    reference = ACTIVATION_REFERENCES[name]
    np.testing.assert_allclose(layer.forward({}, [x], training=False)[0], reference(x), rtol=1e-12, atol=1e-14)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(layer.forward({}, [x32], training=False)[0], reference(x), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_matches_its_reference(name):
    """The layer's backward against central differences of the reference formula, not of specc's forward."""
    rng = np.random.default_rng(9)
    layer = Activation(type="Activation", activation=name)
    x, dy = rng.normal(scale=3, size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    _, cache = layer.forward({}, [x], training=True)
    (dx,) = layer.backward({}, {}, cache, dy.copy())
    picks, expected = numeric_gradient(lambda: float(np.sum(ACTIVATION_REFERENCES[name](x) * dy)), x, rng=rng)
    np.testing.assert_allclose(dx.reshape(-1)[picks], expected, rtol=1e-6, atol=1e-8)
