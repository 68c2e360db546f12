"""Every initializer name against Keras' distribution: shapes, bounds and moments, seeded draws repeatable;
the table must list exactly the registry's names."""
from __future__ import annotations

import numpy as np
import pytest

from specc.layers.initializers import INITIALIZERS
from support import assert_same_names

# -- initializers -----------------------------------------------------------------------------------------

def draw(name: str, shape: tuple, seed: int = 0) -> np.ndarray:
    values = INITIALIZERS[name](shape, np.random.default_rng(seed))
    assert values.shape == shape
    np.testing.assert_array_equal(values, INITIALIZERS[name](shape, np.random.default_rng(seed)))  # seeded
    return values


def check_glorot_uniform(name):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out)); a kernel's receptive field multiplies both fans."""
    for shape, fan_in, fan_out in (((60, 40), 60, 40), ((3, 3, 8, 16), 72, 144)):
        limit = np.sqrt(6 / (fan_in + fan_out))
        values = draw(name, shape)
        assert np.abs(values).max() <= limit
        assert np.abs(values).max() > 0.97 * limit
        assert values.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
        assert abs(values.mean()) < 0.05 * limit


def check_orthogonal(name):
    """Orthonormal rows (or columns, whichever are fewer): for an LSTM's (u, 4u), W @ W.T == I."""
    for shape in ((8, 32), (32, 8), (6, 6)):
        values = draw(name, shape)
        gram = values @ values.T if shape[0] <= shape[1] else values.T @ values
        np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-12)
    assert not np.allclose(draw(name, (6, 6), seed=1), draw(name, (6, 6), seed=2))


def check_random_uniform(name):
    """U(-0.05, 0.05): Keras' RandomUniform defaults."""
    values = draw(name, (100, 50))
    assert np.abs(values).max() <= 0.05
    assert np.abs(values).max() > 0.049
    assert values.std() == pytest.approx(0.05 / np.sqrt(3), rel=0.05)
    assert abs(values.mean()) < 0.003


def constant(value):
    def check(name):
        np.testing.assert_array_equal(draw(name, (3, 4)), np.full((3, 4), value))
    return check


INITIALIZER_CHECKS = {
    "glorot_uniform": check_glorot_uniform,
    "orthogonal": check_orthogonal,
    "random_uniform": check_random_uniform,
    "zeros": constant(0.0),
    "ones": constant(1.0),
}
INITIALIZER_ALIASES = {"uniform": "random_uniform"}  # Embedding's default, by the name Keras gives it


def test_every_initializer_has_a_reference():
    assert_same_names(INITIALIZERS, INITIALIZER_CHECKS, "initializers")
    assert set(INITIALIZERS.names(with_aliases=True)) - set(INITIALIZERS) == set(INITIALIZER_ALIASES)


@pytest.mark.parametrize("name", INITIALIZERS.names(with_aliases=True))
def test_initializer_matches_its_reference(name):
    INITIALIZER_CHECKS[INITIALIZERS.canonical(name)](name)
