"""The noise layers: their statistics in training, which cells they drop, identity in inference, masks that
depend only on the run's seed, the step and the node, and a resumed run with Dropout that ends bit for bit
as an uninterrupted one. (Their gradients and inference outputs against Keras: test_layer_vocabulary.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_resume import same_weights

import specc
import support
from specc.layers import LAYERS, Training
from support import StopAfter

NOISE_TYPES = {"Dropout": {"rate": 0.4}, "SpatialDropout1D": {"rate": 0.4}, "SpatialDropout2D": {"rate": 0.4},
               "GaussianNoise": {"stddev": 0.3}, "GaussianDropout": {"rate": 0.4}, "AlphaDropout": {"rate": 0.4}}
SHAPES = {"SpatialDropout1D": (6, 5, 4), "SpatialDropout2D": (6, 5, 3, 4)}


def layer(type_name: str, **arguments):
    return LAYERS[type_name](type=type_name, **arguments)


def noisy(type_name: str, x: np.ndarray, training=None, **arguments) -> np.ndarray:
    return layer(type_name, **arguments).forward({}, [x], training or Training())[0]


def ones(*shape) -> np.ndarray:
    return np.ones(shape, dtype=np.float32)


def within(value: float, expected: float, deviation: float, draws: int):
    """value is expected within 5 standard errors of a mean of `draws` draws of that deviation."""
    assert abs(value - expected) < 5 * deviation / math.sqrt(draws), (value, expected)


# -- statistics -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_drops_a_fraction_rate_and_scales_the_rest(rate):
    x = np.random.default_rng(0).uniform(1, 2, size=(500, 400)).astype(np.float32)
    y = noisy("Dropout", x, rate=rate)
    dropped = y == 0
    within(dropped.mean(), rate, math.sqrt(rate * (1 - rate)), x.size)
    # kept values x / (1 - rate), to float32's precision (specc multiplies by the float32 scale)
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=2.5e-7)
    assert y.dtype == np.float32
    within(y.mean() / x.mean(), 1.0, math.sqrt(rate / (1 - rate)), x.size)  # the mean is kept


def test_dropout_rate_one_drops_everything_and_rate_zero_nothing():
    x = ones(4, 5)
    assert not noisy("Dropout", x, rate=1.0).any()
    assert noisy("Dropout", x, rate=0.0) is x


def test_gaussian_noise_adds_noise_of_mean_zero_and_the_given_deviation():
    x = np.random.default_rng(1).normal(size=(400, 500)).astype(np.float32)
    noise = noisy("GaussianNoise", x, stddev=0.3) - x
    within(noise.mean(), 0.0, 0.3, x.size)
    assert abs(noise.std() - 0.3) < 0.003


def test_gaussian_dropout_multiplies_by_noise_of_mean_one():
    rate = 0.2
    factor = noisy("GaussianDropout", ones(400, 500), rate=rate)
    deviation = math.sqrt(rate / (1 - rate))
    within(factor.mean(), 1.0, deviation, factor.size)
    assert abs(factor.std() - deviation) < 0.01 * deviation


def test_alpha_dropout_keeps_mean_and_variance_of_standardized_inputs():
    """Keras' definition: dropped cells take selu's negative limit, then a * x + b restores mean 0, variance 1."""
    rate = 0.3
    x = np.random.default_rng(2).normal(size=(500, 400)).astype(np.float32)
    y = noisy("AlphaDropout", x, rate=rate)
    alpha_prime = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_prime ** 2)) ** -0.5
    b = -a * alpha_prime * rate
    dropped = np.isclose(y, a * alpha_prime + b, rtol=0, atol=1e-6)
    within(dropped.mean(), rate, math.sqrt(rate * (1 - rate)), x.size)
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-6)
    within(y.mean(), 0.0, 1.0, x.size)
    assert abs(y.var() - 1) < 0.02


# -- which cells --------------------------------------------------------------------------------------------

def test_noise_shape_shares_the_mask_along_axes_of_size_one():
    y = noisy("Dropout", ones(8, 5, 6), rate=0.5, noise_shape=[None, 1, None])
    assert (y == y[:, :1, :]).all()  # every timestep the same features
    assert 0 < (y == 0).mean() < 1
    y = noisy("Dropout", ones(8, 6), rate=0.5, noise_shape=[1, None])
    assert (y == y[:1]).all()  # every row the same
    assert not (y == y[:, :1]).all()
    y = noisy("Dropout", ones(8, 6), rate=0.5, noise_shape=[8, 6])  # Keras' batch size there: a row each
    assert not (y == y[:1]).all()


@pytest.mark.parametrize("type_name, shape, spatial_axes", [("SpatialDropout1D", (40, 7, 8), (1,)),
                                                            ("SpatialDropout2D", (40, 3, 4, 8), (1, 2))])
def test_spatial_dropout_drops_whole_channels(type_name, shape, spatial_axes):
    y = noisy(type_name, ones(*shape), rate=0.5)
    per_channel = (y == 0).mean(axis=spatial_axes)
    assert set(np.unique(per_channel)) == {0.0, 1.0}  # each channel of each sample all dropped or all kept
    assert set(np.unique(y)) == {0.0, 2.0}


def test_backward_multiplies_by_the_same_mask():
    x = np.random.default_rng(3).normal(size=(6, 5, 4)).astype(np.float32)
    for type_name in ("Dropout", "SpatialDropout1D", "GaussianDropout", "AlphaDropout"):
        noise_layer = layer(type_name, **NOISE_TYPES[type_name])
        y, cache = noise_layer.forward({}, [x], Training())
        dy = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
        (dx,) = noise_layer.backward({}, {}, cache, dy)
        slope = (noisy(type_name, x + 1, **NOISE_TYPES[type_name]) - y)  # y is linear in x, the same draws
        np.testing.assert_allclose(dx, dy * slope, rtol=1e-4, atol=1e-5, err_msg=type_name)
    noise_layer = layer("GaussianNoise", stddev=0.3)
    (dx,) = noise_layer.backward({}, {}, noise_layer.forward({}, [x], Training())[1], dy)
    assert dx is dy


# -- inference and determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name", NOISE_TYPES)
def test_inference_returns_the_input_itself(type_name):
    x = ones(*SHAPES.get(type_name, (6, 5)))
    noise_layer = layer(type_name, **NOISE_TYPES[type_name])
    y, _ = noise_layer.forward({}, [x], False)
    assert y is x
    assert not np.array_equal(noise_layer.forward({}, [x], Training())[0], x)


@pytest.mark.parametrize("type_name", NOISE_TYPES)
def test_noise_depends_on_the_seeds_the_step_and_the_node_only(type_name):
    x = ones(*SHAPES.get(type_name, (6, 5)))
    arguments = NOISE_TYPES[type_name]
    step = Training(seed=3, step=(1, 7)).at(2)

    def draw(training, **more):
        return noisy(type_name, x, training, **arguments, **more)

    same = draw(step)
    assert np.array_equal(draw(Training(seed=3, step=(1, 7)).at(2)), same)
    for other in (Training(seed=4, step=(1, 7)).at(2), Training(seed=3, step=(1, 8)).at(2),
                  Training(seed=3, step=(2, 7)).at(2), Training(seed=3, step=(1, 7)).at(3),
                  Training(seed=3, step=(1, 7)).at(2).at(0)):
        assert not np.array_equal(draw(other), same), other
    assert not np.array_equal(draw(step, seed=1), same)  # the layer's own seed
    assert np.array_equal(draw(step, seed=1), draw(step, seed=1))


def test_float64_inputs_see_the_masks_of_float32_ones():
    x = np.random.default_rng(5).normal(size=(6, 5))
    y64 = noisy("Dropout", x, rate=0.5)
    y32 = noisy("Dropout", x.astype(np.float32), rate=0.5)
    assert y64.dtype == np.float64
    np.testing.assert_array_equal(y64 == 0, y32 == 0)


# -- specs ----------------------------------------------------------------------------------------------------

def with_layer(tmp_path, entry: str, name: str = "digits"):
    """The digits spec with `drop: <entry>` between its hidden layer and its output."""
    return support.digits(tmp_path, "{epochs: 3, batch_size: 32, shuffle: true}", name, **{
        "  digit:   {type: Dense, units: 10, activation: softmax, inputs: hidden}":
            f"  drop: {entry}\n  digit:   {{type: Dense, units: 10, activation: softmax, inputs: drop}}"})


@pytest.mark.parametrize("entry, message", [
    ("{type: Dropout, rate: 1.5, inputs: hidden}", "less than or equal to 1"),
    ("{type: Dropout, rate: 0.5, noise_shape: [null, 1, 64], inputs: hidden}",
     "noise_shape [null, 1, 64] does not fit an input of shape (None, 64)"),
    ("{type: SpatialDropout2D, rate: 0.5, inputs: hidden}",
     "SpatialDropout2D needs images shaped (height, width, channels), got (None, 64)"),
    ("{type: GaussianNoise, stddev: -0.1, inputs: hidden}", "greater than or equal to 0"),
    ("{type: GaussianDropout, rate: 1, inputs: hidden}", "less than 1"),
])
def test_bad_arguments_are_spec_errors(tmp_path, entry, message):
    with pytest.raises(specc.SpecError) as caught:
        specc.load(with_layer(tmp_path, entry))
    (problem,) = caught.value.problems
    assert message in problem.message, problem.message
    assert "drop" in problem.path


def test_a_resumed_run_with_dropout_ends_as_an_uninterrupted_one(tmp_path):
    spec = with_layer(tmp_path, "{type: Dropout, rate: 0.3, inputs: hidden}")
    whole = specc.load(spec)
    whole_history = whole.fit()
    run = tmp_path / "run"
    for stop in (StopAfter(batches=30), StopAfter(batches=50)):  # stopped mid-epoch twice
        model = specc.load(spec)
        model.fit(out=run, resume=run if (run / "checkpoint.npz").exists() else None, progress=stop, stop=stop)
        assert model.stopped["reason"] == "interrupted", model.stopped
    resumed = specc.load(spec)
    assert resumed.fit(resume=run) == whole_history
    assert same_weights(resumed.get_weights(), whole.get_weights())
    # and the dropout was on: without it, the same run ends elsewhere
    without = specc.load(with_layer(tmp_path, "{type: Dropout, rate: 0.0, inputs: hidden}", name="without"))
    without.fit()
    assert not same_weights(without.get_weights(), whole.get_weights())
