"""Every initializer name against Keras' distribution: shapes, bounds and moments against Keras' own draws
(statistics: Keras' seeded draws differ by backend), exact values for the ones that draw nothing; seeded
draws repeatable; the table must list exactly the registry's names."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import specc
from specc.layers.initializers import INITIALIZERS, initializer
from support import assert_keras_arguments, assert_same_names, keras_class_by_alias

SHAPES = [(200, 300), (3, 3, 64, 64)]  # a Dense kernel, a Conv2D kernel (receptive field 9)


def draw(name, shape: tuple, seed: int = 0) -> np.ndarray:
    values = initializer(name)(shape, np.random.default_rng(seed))
    assert values.shape == shape
    np.testing.assert_array_equal(values, initializer(name)(shape, np.random.default_rng(seed)))  # seeded
    return values


def keras_class(keras, name: str):
    return keras_class_by_alias(keras.initializers, INITIALIZERS, name)


def keras_draw(keras, name: str, shape: tuple, **arguments) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras_class(keras, name)(**arguments)(shape))


def same_distribution(ours: np.ndarray, theirs: np.ndarray):
    """Two large samples agree in mean, standard deviation and quantiles out to the tails (where a truncated
    normal and a normal part), each within a few standard errors."""
    scale = max(theirs.std(), 1e-12)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=5 * scale / np.sqrt(ours.size))
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    quantiles = [0.01, 0.1, 0.5, 0.9, 0.99]
    np.testing.assert_allclose(np.quantile(ours, quantiles), np.quantile(theirs, quantiles), atol=0.15 * scale)


RANDOM = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
          "random_normal", "random_uniform", "truncated_normal", "variance_scaling"]
DETERMINISTIC = ["zeros", "ones", "constant", "identity"]


def test_every_initializer_is_checked():
    assert_same_names(INITIALIZERS, {*RANDOM, *DETERMINISTIC, "orthogonal"}, "initializers")


@pytest.mark.parametrize("shape", SHAPES, ids=["dense", "conv"])
@pytest.mark.parametrize("name", RANDOM)
def test_random_initializer_draws_like_keras(name, shape, keras):
    keras.utils.set_random_seed(1)
    same_distribution(draw(name, shape), keras_draw(keras, name, shape))


@pytest.mark.parametrize("config", [
    {"type": "variance_scaling", "scale": 2.0, "mode": "fan_out", "distribution": "uniform"},
    {"type": "variance_scaling", "scale": 0.5, "mode": "fan_avg", "distribution": "untruncated_normal"},
    {"type": "random_normal", "mean": 1.0, "stddev": 0.2},
    {"type": "random_uniform", "minval": 0.0, "maxval": 3.0},
    {"type": "truncated_normal", "mean": -1.0, "stddev": 2.0},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items() if k != "type"))
def test_initializer_arguments_draw_like_keras(config, keras):
    keras.utils.set_random_seed(1)
    ours = INITIALIZERS[config["type"]].model_validate(config)
    arguments = {k: v for k, v in config.items() if k != "type"}
    same_distribution(ours((200, 300), np.random.default_rng(0)), keras_draw(keras, config["type"], (200, 300),
                                                                              **arguments))


@pytest.mark.parametrize("name,arguments", [("zeros", {}), ("ones", {}), ("constant", {}), ("constant",
                         {"value": 2.5}), ("identity", {}), ("identity", {"gain": 3.0})])
def test_fixed_initializer_is_keras(name, arguments, keras):
    ours = INITIALIZERS[name].model_validate({"type": name, **arguments})((4, 6), np.random.default_rng(0))
    np.testing.assert_array_equal(ours, keras_draw(keras, name, (4, 6), **arguments))


def test_constant_takes_an_array_of_the_weights_shape():
    value = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    constant = INITIALIZERS["constant"].model_validate({"type": "constant", "value": value})
    np.testing.assert_array_equal(constant((3, 2), np.random.default_rng(0)), np.array(value))
    assert "shape (3, 2) for a weight of shape (2, 3)" in constant.shape_problem((2, 3))


@pytest.mark.parametrize("shape", [(8, 32), (32, 8), (6, 6), (3, 4, 20)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_the_gain(shape, keras):
    for gain in (1.0, 2.0):
        values = INITIALIZERS["orthogonal"](type="orthogonal", gain=gain)(shape, np.random.default_rng(0))
        flat = values.reshape(-1, shape[-1])
        gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(flat.shape)), atol=1e-12)
    theirs = keras_draw(keras, "orthogonal", shape[-2:])
    assert theirs.shape == shape[-2:]
    assert not np.allclose(draw("orthogonal", (6, 6), seed=1), draw("orthogonal", (6, 6), seed=2))


@pytest.mark.parametrize("name", INITIALIZERS.names(with_aliases=True))
def test_every_name_and_keras_class_name_resolves(name, keras):
    assert initializer(name).type == INITIALIZERS.canonical(name)
    assert isinstance(keras_class(keras, name), type)


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_arguments_are_keras_arguments(name, keras):
    assert_keras_arguments(INITIALIZERS[name], keras_class(keras, name), skip={"type"})


def test_own_seed_gives_the_same_values_whatever_the_run_seed():
    seeded = INITIALIZERS["he_normal"](type="he_normal", seed=7)
    np.testing.assert_array_equal(seeded((5, 4), np.random.default_rng(1)), seeded((5, 4), np.random.default_rng(2)))


def write(tmp_path, layer: dict, seed: int = 0):
    spec = {"specc": 1, "name": "init", "seed": seed, "inputs": {"x": {"shape": [400]}},
            "layers": {"dense": {"type": "Dense", "units": 300, "inputs": "x", **layer}},
            "outputs": ["dense"], "compile": {"loss": "mse"}}
    path = tmp_path / f"init{seed}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_spec_chooses_its_initializers_and_its_seed_decides_the_draw(tmp_path):
    layer = {"kernel_initializer": "he_normal", "bias_initializer": {"type": "Constant", "value": 0.5}}
    weights = specc.load(write(tmp_path, layer)).get_weights()
    kernel = weights["dense/kernel"]
    assert kernel.std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    assert np.abs(kernel).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6  # truncated at 2 stddev
    np.testing.assert_array_equal(weights["dense/bias"], 0.5)
    again = specc.load(write(tmp_path, layer)).get_weights()
    np.testing.assert_array_equal(again["dense/kernel"], kernel)
    other = specc.load(write(tmp_path, layer, seed=1)).get_weights()
    assert not np.array_equal(other["dense/kernel"], kernel)
