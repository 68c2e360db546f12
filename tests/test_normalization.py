"""Normalization layers beyond the per-layer Keras comparison (tests/layer_cases/normalization.py): frozen
BatchNormalization in inference mode, moving statistics saved and resumed, Normalization adapted from the
training data, parameter counts against Keras, shape errors, and BatchNormalization learning real digits."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from gradcheck import numeric_gradient

import specc
import support
from specc.io.data import Dataset
from specc.layers import LAYERS, Training
from specc.runtime.parameters import Parameters
from specc.train import adapt as adapt_module
from specc.train.adapt import adapt
from specc.train.checkpoint import load_checkpoint
from support import StopAfter

HEAD = "specc: 1\nname: norm\nseed: 3\n"
COMPILE = "compile: {optimizer: adam, loss: mse}\n"


def write(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(body) + COMPILE)
    return path


def regression_data(rows: int = 64, features: int = 4, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(rows, features)).astype(np.float32)
    return Dataset({"x": x}, {"out": np.tanh(x[:, :1]).astype(np.float32)})


# -- BatchNormalization frozen: inference mode in training --------------------------------------------------

FROZEN_LAYER = """\
inputs: {x: {shape: [4]}}
layers:
  dense: {type: Dense, units: 3, inputs: x}
  bn: {type: BatchNormalization, trainable: false, inputs: dense}
  out: {type: Dense, units: 1, inputs: bn}
outputs: [out]
"""

FROZEN_MODEL = """\
inputs: {x: {shape: [4]}}
models:
  block:
    trainable: false
    inputs: {h: {shape: [3]}}
    layers:
      bn: {type: BatchNormalization, inputs: h}
    outputs: [bn]
layers:
  dense: {type: Dense, units: 3, inputs: x}
  normed: {call: block, inputs: dense}
  out: {type: Dense, units: 1, inputs: normed}
outputs: [out]
"""


@pytest.mark.parametrize("body, bn", [(FROZEN_LAYER, "bn"), (FROZEN_MODEL, "block/bn")],
                         ids=["trainable-false", "in-frozen-model"])
def test_frozen_batch_normalization_runs_in_inference_mode(tmp_path, body, bn):
    model = specc.load(write(tmp_path, body))
    params = model.params
    weights = params.as_dict()
    rng = np.random.default_rng(1)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        weights[f"{bn}/{name}"] = rng.uniform(0.5, 2.0, size=3).astype(np.float32)
    params.assign(weights, "test")
    assert model.graph.count_params(trainable=False) == 4 * 3

    data = regression_data()
    dense = data.inputs["x"] @ weights["dense/kernel"] + weights["dense/bias"]
    expected = ((dense - weights[f"{bn}/moving_mean"]) / np.sqrt(weights[f"{bn}/moving_variance"] + 1e-3)
                * weights[f"{bn}/gamma"] + weights[f"{bn}/beta"])
    values, _ = model.graph.forward(params, data.inputs, Training())
    normed = values["bn" if bn == "bn" else "normed"]
    np.testing.assert_allclose(normed, expected, rtol=1e-5, atol=1e-5)

    model.fit(epochs=2, batch_size=16, data=(data, None))
    after = model.get_weights()
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert np.array_equal(after[f"{bn}/{name}"], weights[f"{bn}/{name}"]), name
    assert not np.array_equal(after["dense/kernel"], weights["dense/kernel"]), "the layers around it still learn"


@pytest.mark.parametrize("body", [FROZEN_LAYER, FROZEN_MODEL], ids=["trainable-false", "in-frozen-model"])
def test_gradients_pass_through_a_frozen_batch_normalization(tmp_path, body):
    """Inference mode is affine in x: its input gradient, against central differences (float64)."""
    graph = specc.load(write(tmp_path, body)).graph
    params = Parameters(graph, np.float64)
    params.initialize(0)
    params.values += np.random.default_rng(0).uniform(0.2, 1.0, size=params.values.size)
    inputs = {"x": np.random.default_rng(2).normal(size=(5, 4))}
    values, tape = graph.forward(params, inputs, Training())
    probe = np.random.default_rng(3).normal(size=values["out"].shape)
    params.grads[...] = 0
    (dx,) = graph.backward(params, tape, {"out": probe.copy()}, need_inputs=(True,))

    def probed_sum():
        return float(np.sum(graph.forward(params, inputs, Training())[0]["out"] * probe))
    picks, expected = numeric_gradient(probed_sum, inputs["x"])
    np.testing.assert_allclose(dx.reshape(-1)[picks], expected, rtol=1e-6, atol=1e-8)


# -- BatchNormalization trained: moving statistics, predict ---------------------------------------------------

TRAINED_BN = """\
inputs: {x: {shape: [4]}}
layers:
  bn: {type: BatchNormalization, momentum: 0.5, inputs: x}
  out: {type: Dense, units: 1, inputs: bn}
outputs: [out]
"""


def test_training_moves_the_statistics_and_predict_uses_them(tmp_path):
    model = specc.load(write(tmp_path, TRAINED_BN))
    data = regression_data(rows=32)
    x = data.inputs["x"]
    model.fit(epochs=1, batch_size=32, data=(data, None))  # one step: one batch
    weights = model.get_weights()
    # one step from moving mean 0 and variance 1 with momentum 0.5, on the batch's biased statistics
    np.testing.assert_allclose(weights["bn/moving_mean"], 0.5 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(weights["bn/moving_variance"], 0.5 + 0.5 * x.var(axis=0), rtol=1e-5)

    rows = x[:5]
    normed = ((rows - weights["bn/moving_mean"]) / np.sqrt(weights["bn/moving_variance"] + 1e-3)
              * weights["bn/gamma"] + weights["bn/beta"])
    predicted = model.predict(rows)["out"]
    np.testing.assert_allclose(predicted, normed @ weights["out/kernel"] + weights["out/bias"], rtol=1e-5, atol=1e-6)
    batch_normed = (rows - rows.mean(0)) / np.sqrt(rows.var(0) + 1e-3)
    assert not np.allclose(predicted, batch_normed @ weights["out/kernel"] + weights["out/bias"], atol=1e-2)


def test_batch_statistics_of_data_far_from_zero(tmp_path):
    """float32 data at 1e4 with unit spread: the variance is the spread's, not rounding noise."""
    from specc import kernels
    x = (1e4 + np.random.default_rng(0).normal(size=(4096, 3))).astype(np.float32)
    mean, variance = np.empty(3), np.empty(3)
    kernels.normalization.column_moments(x, mean, variance)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(variance, x.astype(np.float64).var(0), rtol=1e-9)


# -- moving statistics saved and resumed ------------------------------------------------------------------------

BN_DIGITS_LAYERS = """\
layers:
  pixels:  {type: Flatten, inputs: images}
  scaled:  {type: Dense, units: 64, inputs: pixels}
  scaled_bn: {type: BatchNormalization, inputs: scaled}
  scaled_relu: {type: Activation, activation: relu, inputs: scaled_bn}
  hidden:  {type: Dense, units: 64, inputs: scaled_relu}
  hidden_bn: {type: BatchNormalization, inputs: hidden}
  hidden_relu: {type: Activation, activation: relu, inputs: hidden_bn}
  digit:   {type: Dense, units: 10, activation: softmax, inputs: hidden_relu}
"""
DIGITS_LAYERS = """\
layers:
  pixels:  {type: Flatten, inputs: images}
  scaled:  {type: Dense, units: 64, activation: relu, inputs: pixels}
  hidden:  {type: Dense, units: 64, activation: relu, inputs: scaled}
  digit:   {type: Dense, units: 10, activation: softmax, inputs: hidden}
"""


def bn_digits(tmp_path: Path, fit: str, layers: str = BN_DIGITS_LAYERS, name: str = "bn_digits") -> Path:
    return support.digits(tmp_path, fit, name, **{DIGITS_LAYERS: layers})


def test_moving_statistics_are_saved_and_resumed_exactly(tmp_path):
    spec = bn_digits(tmp_path, "{epochs: 3, batch_size: 32, shuffle: true}")
    whole = specc.load(spec)
    whole.fit()
    run = tmp_path / "run"
    for stop in (StopAfter(batches=50), StopAfter(batches=30)):
        model = specc.load(spec)
        model.fit(out=run, resume=run if (run / "checkpoint.npz").exists() else None, progress=stop, stop=stop)
        assert model.stopped["reason"] == "interrupted"
    saved = load_checkpoint(run / "checkpoint.npz").weights
    assert not np.array_equal(saved["scaled_bn/moving_mean"], np.zeros(64, np.float32))
    resumed = specc.load(spec)
    resumed.fit(resume=run)
    ours, theirs = resumed.get_weights(), whole.get_weights()
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key

    out = tmp_path / "cli_run"
    assert support.run("train", spec, "--out", out, "--quiet").returncode == 0
    with np.load(out / "weights.npz") as written:
        for key in ("scaled_bn/moving_mean", "scaled_bn/moving_variance"):
            assert np.array_equal(written[key], theirs[key]), key


# -- Normalization adapted from the training data --------------------------------------------------------------

ADAPTED = """\
inputs: {x: {shape: [3, 4]}}
models:
  encoder:
    inputs: {h: {shape: [3, 2]}}
    layers:
      inner: {type: Normalization, axis: [1, 2], inputs: h}
    outputs: [inner]
layers:
  by_feature: {type: Normalization, inputs: x}
  overall: {type: Normalization, axis: null, inputs: x}
  by_step: {type: Normalization, axis: 1, inputs: x}
  dense: {type: Dense, units: 2, inputs: x}
  encoded: {call: encoder, inputs: dense}
  steps: {type: TimeDistributed, layer: {type: Normalization, name: per_step}, inputs: dense}
  joined: {type: Concatenate, inputs: [by_feature, overall, by_step, encoded, steps]}
  flat: {type: Flatten, inputs: joined}
  out: {type: Dense, units: 1, inputs: flat}
outputs: [out]
"""


def adapted_data(rows: int = 300) -> Dataset:
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(rows, 3, 4)) * [1.0, 10.0, 0.1, 3.0] + [5.0, -2.0, 100.0, 0.0]).astype(np.float32)
    return Dataset({"x": x}, {"out": rng.normal(size=(rows, 1)).astype(np.float32)})


def test_normalization_adapts_to_the_training_data(tmp_path, monkeypatch):
    """Every unadapted Normalization, wherever it is called, gets numpy's mean and var of what it receives
    (float64, the statistics of many small batches merged)."""
    monkeypatch.setattr(adapt_module, "BATCH_VALUES", 12 * 7)  # 7 rows a batch: many merges
    model = specc.load(write(tmp_path, ADAPTED))
    data = adapted_data()
    x = data.inputs["x"].astype(np.float64)
    dense = x @ model.get_weights()["dense/kernel"] + model.get_weights()["dense/bias"]
    adapt(model.graph, model.params, data)
    weights = model.get_weights()
    expected = {"by_feature": (x, (0, 1)), "overall": (x, (0, 1, 2)), "by_step": (x, (0, 2)),
                "inner": (dense, (0,)), "per_step": (dense, (0, 1))}
    keys = {layer.name: layer.key for layer in model.graph.all_layers()}
    keys["per_step"] = model.get_layer("steps").inner.key
    for name, (values, axes) in expected.items():
        layer = keys[name]
        np.testing.assert_allclose(weights[f"{layer}/mean"], values.mean(axis=axes), rtol=1e-6, atol=1e-6,
                                   err_msg=layer)
        np.testing.assert_allclose(weights[f"{layer}/variance"], values.var(axis=axes), rtol=1e-6, err_msg=layer)
        count = np.prod([values.shape[a] for a in axes])
        assert weights[f"{layer}/count"] == count, layer
    normalized = model.graph.forward(model.params, data.inputs, False)[0]["by_feature"]
    np.testing.assert_allclose(normalized.mean(axis=(0, 1)), 0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(axis=(0, 1)), 1, atol=1e-4)


def test_fit_adapts_a_fresh_run_once(tmp_path):
    model = specc.load(write(tmp_path, ADAPTED))
    data = adapted_data()
    model.fit(epochs=1, batch_size=50, data=(data, None))
    first = model.get_weights()
    np.testing.assert_allclose(first["by_feature/mean"], data.inputs["x"].mean(axis=(0, 1)), rtol=1e-5, atol=1e-5)
    assert model.graph.count_params(trainable=False) == sum(
        first[key].size for key in first if key.endswith(("/mean", "/variance", "/count")))
    other = adapted_data(rows=100)
    model.fit(epochs=1, batch_size=50, data=(other, None))  # adapted already: its statistics stay
    assert np.array_equal(model.get_weights()["by_feature/mean"], first["by_feature/mean"])


def test_statistics_loaded_with_count_zero_are_kept(tmp_path):
    """Keras' adapt leaves `count` at 0: statistics loaded from Keras are not adapted again."""
    model = specc.load(write(tmp_path, ADAPTED))
    weights = model.get_weights()
    weights["by_feature/mean"] = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    model.params.assign(weights, "test")
    adapt(model.graph, model.params, adapted_data())
    after = model.get_weights()
    assert np.array_equal(after["by_feature/mean"], weights["by_feature/mean"])
    assert after["by_feature/count"] == 0
    assert after["overall/count"] == 300 * 3 * 4, "the others are adapted"


def test_unadapted_normalization_passes_its_input_through(tmp_path):
    """As an unadapted Keras layer (mean 0, variance 1): predict before any fit changes nothing."""
    model = specc.load(write(tmp_path, ADAPTED))
    x = adapted_data(rows=4).inputs["x"]
    values, _ = model.graph.forward(model.params, {"x": x}, False)
    for name in ("by_feature", "overall", "by_step"):
        np.testing.assert_array_equal(values[name], x)


@pytest.mark.parametrize("axis", [-1, None, 1, [1, 2]])
def test_adapted_statistics_are_keras_adapt(tmp_path, keras, axis):
    text = f"""\
        inputs: {{x: {{shape: [3, 4]}}}}
        layers:
          norm: {{type: Normalization, axis: {json.dumps(axis)}, inputs: x}}
          out: {{type: Dense, units: 1, inputs: norm}}
        outputs: [out]
        """
    model = specc.load(write(tmp_path, text))
    data = adapted_data()
    adapt(model.graph, model.params, data)
    layer = keras.layers.Normalization(axis=axis)
    layer.adapt(data.inputs["x"].astype(np.float64))  # Keras' float32 numpy mean is off by 2e-5 at 100
    weights = model.get_weights()
    for name in ("mean", "variance"):
        theirs = keras.ops.convert_to_numpy(getattr(layer, f"adapt_{name}"))
        np.testing.assert_allclose(weights[f"norm/{name}"], theirs, rtol=1e-5, atol=1e-5, err_msg=name)
    x = data.inputs["x"][:8]
    ours = model.graph.forward(model.params, {"x": x}, False)[0]["norm"]
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(layer(x)), rtol=1e-5, atol=1e-5)


def test_unit_normalization_of_zeros(keras):
    """A zero vector stays zero (scaled by 1 / epsilon), without a division by zero, as in Keras."""
    layer = LAYERS["UnitNormalization"](type="UnitNormalization")
    x = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]], np.float32)
    y, cache = layer.forward({}, [x], False)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(keras.layers.UnitNormalization()(x)), atol=1e-7)
    (dx,) = layer.backward({}, {}, cache, np.ones_like(x))
    np.testing.assert_allclose(dx[0], 1e12, rtol=1e-6)
    np.testing.assert_allclose(dx[1], (1 - y[1] * y[1].sum()) / 5, rtol=1e-6)


# -- parameter counts ------------------------------------------------------------------------------------------

def test_summary_counts_moving_and_adapted_statistics_as_keras(tmp_path, keras):
    text = """\
        inputs: {x: {shape: [6, 5]}}
        layers:
          norm: {type: Normalization, inputs: x}
          dense: {type: Dense, units: 8, inputs: norm}
          bn: {type: BatchNormalization, inputs: dense}
          ln: {type: LayerNormalization, axis: [1, 2], inputs: bn}
          flat: {type: Flatten, inputs: ln}
          out: {type: Dense, units: 1, inputs: flat}
        outputs: [out]
        """
    model = specc.load(write(tmp_path, text))
    L = keras.layers
    x = keras.Input((6, 5))
    y = L.Dense(1)(L.Flatten()(L.LayerNormalization(axis=[1, 2])(L.BatchNormalization()(L.Dense(8)(
        L.Normalization()(x))))))
    reference = keras.Model(x, y)
    non_trainable = sum(int(np.prod(w.shape)) for w in reference.non_trainable_weights)
    assert model.graph.count_params(trainable=False) == non_trainable == 5 + 5 + 1 + 8 + 8
    assert model.count_params() == reference.count_params()
    summary = support.run("summary", model.path).stdout
    assert f"Non-trainable params: {non_trainable:,}" in summary


# -- shape errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, message", [
    ("{type: BatchNormalization, axis: 3}", "axis 3 is out of range for inputs of rank 3 (axis 0 is the batch)"),
    ("{type: BatchNormalization, axis: 0}", "axis 0 is the batch axis; name axes 1 to 2 (or -1 to -2)"),
    ("{type: LayerNormalization, axis: [-1, 2]}", "axis [-1, 2] names an axis twice"),
    ("{type: UnitNormalization, axis: -4}", "axis -4 is out of range"),
    ("{type: Rescaling, scale: [1.0, 2.0]}", "scale has 2 values; the input's last axis has 4 values"),
    ("{type: Normalization, mean: [1.0, 2.0], variance: [1.0, 1.0]}",
     "`mean` and `variance` of shape (2,) do not fit the kept axes [2] of size (4,) of (None, 3, 4)"),
    ("{type: Normalization, mean: 1.0}", "give both `mean` and `variance`, or neither"),
    ("{type: Normalization, mean: [1.0], variance: [1.0, 2.0]}", "`mean` has shape (1,) and `variance` (2,)"),
    ("{type: Normalization, mean: [[1.0, 2.0], [3.0]], variance: [[1.0, 2.0], [3.0]]}",
     "`mean` and `variance` must be numbers or rectangular lists of numbers"),
])
def test_shape_errors(tmp_path, entry, message):
    text = f"""\
        inputs: {{x: {{shape: [3, 4]}}}}
        layers:
          bad: {entry}
          out: {{type: Dense, units: 1, inputs: bad}}
        outputs: [out]
        """
    path = write(tmp_path, text.replace("bad: {type", "bad: {inputs: x, type"))
    with pytest.raises(specc.SpecError) as caught:
        specc.load(path)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1 and message in problems[0], problems
    assert f"{path}:6:" in problems[0]  # located at the entry


# -- real data ------------------------------------------------------------------------------------------------

CONV_DIGITS_LAYERS = """\
layers:
  pixels:  {type: Reshape, target_shape: [8, 8, 1], inputs: images}
  conv:    {type: Conv2D, filters: 8, kernel_size: 3, padding: same, inputs: pixels}
  conv_bn: {type: BatchNormalization, inputs: conv}
  conv_relu: {type: Activation, activation: relu, inputs: conv_bn}
  pooled:  {type: MaxPooling2D, inputs: conv_relu}
  flat:    {type: Flatten, inputs: pooled}
  hidden:  {type: Dense, units: 64, inputs: flat}
  hidden_bn: {type: BatchNormalization, inputs: hidden}
  hidden_relu: {type: Activation, activation: relu, inputs: hidden_bn}
  digit:   {type: Dense, units: 10, activation: softmax, inputs: hidden_relu}
"""


def test_batch_normalization_learns_digits(tmp_path):
    """The digit images through Conv2D and Dense layers, each followed by BatchNormalization, reach at least the
    validation accuracy of the shipped dense spec trained as long."""
    fit = "{epochs: 6, batch_size: 32, shuffle: true}"
    with_bn = specc.load(bn_digits(tmp_path, fit, layers=CONV_DIGITS_LAYERS)).fit()
    plain = specc.load(bn_digits(tmp_path, fit, layers=DIGITS_LAYERS, name="plain")).fit()
    assert with_bn[-1]["val_accuracy"] >= max(0.97, plain[-1]["val_accuracy"]), (with_bn[-1], plain[-1])
