"""Regularizers and constraints: every name against Keras' own (penalty values, constrained weights), every
penalty's gradient against finite differences (float64), and what training does with them: penalties in the
logged loss and the gradients, activity penalties divided by the batch size, constraints after each step."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from gradcheck import numeric_gradient

import specc
from specc.layers import Training
from specc.layers.constraints import CONSTRAINTS, constraint
from specc.layers.regularizers import REGULARIZERS, regularizer
from support import assert_keras_arguments, assert_same_names, keras_class_by_alias

REGULARIZER_CASES = [
    {"type": "l1"}, {"type": "l1", "l1": 0.3},
    {"type": "l2"}, {"type": "l2", "l2": 0.2},
    {"type": "l1_l2"}, {"type": "l1_l2", "l1": 0.1, "l2": 0.05},
    {"type": "orthogonal_regularizer"}, {"type": "orthogonal_regularizer", "factor": 0.5, "mode": "columns"},
]
CONSTRAINT_CASES = [
    {"type": "max_norm"}, {"type": "max_norm", "max_value": 0.5, "axis": 1},
    {"type": "min_max_norm"}, {"type": "min_max_norm", "min_value": 0.8, "max_value": 1.2, "rate": 0.5,
                                "axis": [0, 1]},
    {"type": "non_neg"},
    {"type": "unit_norm"}, {"type": "unit_norm", "axis": 1},
]


def case_id(config: dict) -> str:
    return config["type"] + "".join(f",{k}={v}" for k, v in config.items() if k != "type")


def test_every_regularizer_and_constraint_is_checked():
    assert_same_names(REGULARIZERS, {c["type"] for c in REGULARIZER_CASES}, "regularizers")
    assert_same_names(CONSTRAINTS, {c["type"] for c in CONSTRAINT_CASES}, "constraints")


@pytest.mark.parametrize("config", REGULARIZER_CASES, ids=case_id)
def test_penalty_is_keras(config, keras):
    w = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    ours = REGULARIZERS[config["type"]].model_validate(config)
    arguments = {k: v for k, v in config.items() if k != "type"}
    theirs = keras_class_by_alias(keras.regularizers, REGULARIZERS, config["type"])(**arguments)
    # a backend tensor: for numpy arrays, Keras normalizes columns along the wrong axis
    assert ours.penalty(w.astype(np.float64)) == pytest.approx(float(theirs(keras.ops.convert_to_tensor(w))), rel=1e-5)


@pytest.mark.parametrize("config", REGULARIZER_CASES, ids=case_id)
def test_penalty_gradient(config):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 3))
    rule = REGULARIZERS[config["type"]].model_validate(config)
    picks, expected = numeric_gradient(lambda: rule.penalty(w), w, rng=rng)
    np.testing.assert_allclose(rule.gradient(w).reshape(-1)[picks], expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("config", CONSTRAINT_CASES, ids=case_id)
def test_constraint_is_keras(config, keras):
    w = np.random.default_rng(2).normal(size=(5, 4, 3)).astype(np.float32)
    ours = CONSTRAINTS[config["type"]].model_validate(config)
    arguments = {k: v for k, v in config.items() if k != "type"}
    theirs = keras_class_by_alias(keras.constraints, CONSTRAINTS, config["type"])(**arguments)
    constrained = w.copy()
    ours.apply(constrained)
    np.testing.assert_allclose(constrained, keras.ops.convert_to_numpy(theirs(w)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("registry,module", [(REGULARIZERS, "regularizers"), (CONSTRAINTS, "constraints")])
def test_arguments_are_keras_arguments(registry, module, keras):
    for name in registry:
        keras_type = keras_class_by_alias(getattr(keras, module), registry, name)
        assert_keras_arguments(registry[name], keras_type, skip={"type"})


@pytest.mark.parametrize("spelling,name", [
    ("l1l2", "l1_l2"), ("L1L2", "l1_l2"), ("L2", "l2"), ("NonNeg", "non_neg"), ("MaxNorm", "max_norm"),
    ("OrthogonalRegularizer", "orthogonal_regularizer")])
def test_keras_spellings(spelling, name):
    rule = regularizer(spelling) if spelling in REGULARIZERS else constraint(spelling)
    assert rule.type == name


def test_bare_names_take_keras_defaults():
    assert regularizer("l2").l2 == 0.01 and regularizer("l1").l1 == 0.01
    assert constraint("max_norm").max_value == 2.0


def spec(tmp_path, dense: dict, name: str = "rules") -> str:
    text = {"specc": 1, "name": name, "seed": 3, "inputs": {"x": {"shape": [4]}},
            "layers": {"hidden": {"type": "Dense", "units": 3, "inputs": "x", **dense},
                       "out": {"type": "Dense", "units": 2, "inputs": "hidden"}},
            "outputs": ["out"], "compile": {"loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.1}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(text))
    return str(path)


def test_activity_penalty_is_divided_by_the_batch_and_differentiated(tmp_path):
    graph = specc.load(spec(tmp_path, {"activity_regularizer": {"type": "l2", "l2": 0.3}})).graph
    from test_layer_vocabulary import random_parameters
    params = random_parameters(graph, np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = {"x": rng.normal(size=(5, 4))}
    probe = rng.normal(size=(5, 2))

    def total() -> float:
        training = Training()
        values, _ = graph.forward(params, x, training)
        return float(np.sum(values["out"] * probe)) + sum(training.losses)

    training = Training()
    values, tape = graph.forward(params, x, training)
    hidden = values["hidden"]
    assert training.losses == [pytest.approx(0.3 * np.sum(hidden ** 2) / 5)]
    params.grads[...] = 0
    graph.backward(params, tape, {"out": probe.copy()})
    picks, expected = numeric_gradient(total, params.values, rng=rng)
    np.testing.assert_allclose(params.grads[picks], expected, rtol=1e-6, atol=1e-8)


def test_a_regularizer_on_a_weight_that_cannot_take_it_is_a_located_error(tmp_path):
    from support import run
    path = spec(tmp_path, {"kernel_initializer": {"type": "constant", "value": [[1.0, 2.0]]}})
    result = run("validate", path)
    assert result.returncode == 1
    assert "constant value of shape (1, 2) for a weight of shape (4, 3)" in result.stderr
    assert "layers.hidden" in result.stderr


DENSE_RULES = {"kernel_regularizer": {"type": "l2", "l2": 0.1}, "bias_regularizer": {"type": "l1", "l1": 0.05},
               "activity_regularizer": {"type": "l2", "l2": 0.02}, "kernel_constraint": "non_neg"}


def test_a_training_step_with_penalties_and_constraints_is_keras(tmp_path, keras):
    """Loss (with every penalty) and weights after one SGD step, against Keras' train_on_batch."""
    model = specc.load(spec(tmp_path, DENSE_RULES))
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    # biases moved off zero, where |b| has no derivative: specc takes 0 there (as TensorFlow and PyTorch do),
    # JAX takes 1
    model.params.assign({"hidden/bias": rng.normal(size=3).astype(np.float32)}, "test", partial=True)
    before = model.get_weights()
    assert (before["hidden/kernel"] < 0).any()  # constraints apply after steps, not at initialization

    L = keras.layers
    inputs = keras.Input((4,))
    hidden = L.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1), bias_regularizer=keras.regularizers.L1(0.05),
                     activity_regularizer=keras.regularizers.L2(0.02), kernel_constraint=keras.constraints.NonNeg(),
                     name="hidden")
    net = keras.Model(inputs, L.Dense(2, name="out")(hidden(inputs)))
    for layer in ("hidden", "out"):
        net.get_layer(layer).set_weights([before[f"{layer}/kernel"], before[f"{layer}/bias"]])
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    keras_loss = float(net.train_on_batch(x, y))

    from specc.io.data import Dataset
    history = model.fit(epochs=1, batch_size=8, data=(Dataset({"x": x}, {"out": y}), None))
    assert history[0]["loss"] == pytest.approx(keras_loss, rel=1e-5)
    after = model.get_weights()
    for layer in ("hidden", "out"):
        kernel, bias = net.get_layer(layer).get_weights()
        np.testing.assert_allclose(after[f"{layer}/kernel"], kernel, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(after[f"{layer}/bias"], bias, rtol=1e-5, atol=1e-6)
    assert (after["hidden/kernel"] >= 0).all()


def test_evaluate_counts_the_weight_penalties_as_keras_does(tmp_path):
    rules = {"kernel_regularizer": {"type": "l2", "l2": 0.1}}
    model, plain = specc.load(spec(tmp_path, rules)), specc.load(spec(tmp_path, {}, name="plain"))
    rng = np.random.default_rng(5)
    from specc.io.data import Dataset
    data = Dataset({"x": rng.normal(size=(6, 4)).astype(np.float32)},
                   {"out": rng.normal(size=(6, 2)).astype(np.float32)})
    kernel = model.get_weights()["hidden/kernel"].astype(np.float64)
    assert model.evaluate(data)["loss"] == pytest.approx(plain.evaluate(data)["loss"] + 0.1 * np.sum(kernel ** 2),
                                                         rel=1e-5)
