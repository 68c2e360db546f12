"""Every activation name against its formula in numpy, forward and derivative; the table must list exactly
the registry's names, and each formula must be Keras' (checked against keras.activations here, and through
the Activation layer's Keras comparison in test_layer_vocabulary.py). Every name works in every layer that
takes `activation:`: Dense and Conv2D fuse it, LSTM takes the element-wise ones whose derivative follows from
their output."""
from __future__ import annotations

import math

import numpy as np
import pytest
import test_layer_vocabulary as vocabulary
from gradcheck import check_layer_gradients, numeric_gradient
from layer_cases import LAYER_CASES, case

import specc
from specc.layers import LAYERS, Activation
from specc.layers.activations import ACTIVATIONS, needs_input
from support import assert_same_names

# -- activations ------------------------------------------------------------------------------------------

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
erf = np.vectorize(math.erf)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.logaddexp(x, 0)


def relu6(x):
    return np.clip(x, 0, 6)


ACTIVATION_REFERENCES = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "softmax": softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "softplus": softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: relu6(x + 3) / 6,
    "relu6": relu6,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "exponential": np.exp,
    "log_softmax": lambda x: x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True))
                                                                   .sum(-1, keepdims=True)),
    "celu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "sparse_sigmoid": lambda x: np.clip(x + 1, 0, 2) / 2,
    "log_sigmoid": lambda x: -softplus(-x),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4)) / 2,
    "gelu": lambda x: x * (1 + erf(x / np.sqrt(2))) / 2,
    "silu": lambda x: x * sigmoid(x),
    "mish": lambda x: x * np.tanh(softplus(x)),
    "hard_silu": lambda x: x * relu6(x + 3) / 6,
    "tanh_shrink": lambda x: x - np.tanh(x),
}
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def test_every_activation_has_a_reference():
    assert_same_names(ACTIVATIONS, ACTIVATION_REFERENCES, "activations")
    assert {name: ACTIVATIONS.canonical(name) for name in ALIASES} == ALIASES


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_reference_is_keras_activation(name, keras):
    """The reference formula against Keras' function of that name (and its aliases), default arguments."""
    x = np.random.default_rng(7).normal(scale=3, size=(4, 6)).astype(np.float32)
    for spelled in [name, *(alias for alias, target in ALIASES.items() if target == name)]:
        theirs = keras.ops.convert_to_numpy(keras.activations.get(spelled)(x))
        np.testing.assert_allclose(ACTIVATION_REFERENCES[name](x.astype(np.float64)), theirs, rtol=1e-5, atol=1e-6,
                                   err_msg=spelled)


@pytest.mark.parametrize("name", ACTIVATIONS.names(with_aliases=True))
def test_activation_matches_its_reference(name):
    layer = Activation(type="Activation", activation=name)
    x = np.random.default_rng(8).normal(scale=3, size=(3, 4, 5))
    reference = ACTIVATION_REFERENCES[ACTIVATIONS.canonical(name)]
    np.testing.assert_allclose(layer.forward({}, [x], training=False)[0], reference(x), rtol=1e-12, atol=1e-14)
    x32 = x.astype(np.float32)
    y32 = layer.forward({}, [x32], training=False)[0]
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, reference(x), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_matches_its_reference(name):
    """The layer's backward against central differences of the reference formula, not of specc's forward."""
    rng = np.random.default_rng(9)
    layer = Activation(type="Activation", activation=name)
    x, dy = rng.normal(scale=3, size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    _, cache = layer.forward({}, [x], training=True)
    (dx,) = layer.backward({}, {}, cache, dy.copy())
    reference = ACTIVATION_REFERENCES[name]
    picks, expected = numeric_gradient(lambda: float(np.sum(reference(x) * dy)), x, rng=rng)
    # central differences of a sum as large as exponential's lose digits in proportion to it
    rounding = 1e-9 * float(np.abs(reference(x) * dy).sum())
    np.testing.assert_allclose(dx.reshape(-1)[picks], expected, rtol=1e-6, atol=max(1e-8, rounding))


def test_activation_layer_leaves_its_input_alone():
    for name in ("relu", "gelu"):  # in place into a copy; into a new array
        x = np.random.default_rng(1).normal(size=(4, 5))
        before = x.copy()
        y, _ = Activation(type="Activation", activation=name).forward({}, [x], training=True)
        assert y is not x and np.array_equal(x, before)


# -- in the layers that take `activation:` --------------------------------------------------------------------

@pytest.mark.parametrize("name", [name for name in ACTIVATIONS if name != "exponential"])
def test_dense_and_conv_take_every_activation(name):
    """Fused with the bias add (or, for those that need their input, applied after it): the gradients of
    Dense, and of Conv2D by each of its algorithms (direct, im2col, Winograd). (exponential's outputs there
    are too large for finite differences; its derivative is checked above.)"""
    check_layer_gradients(LAYERS["Dense"](type="Dense", units=4, activation=name), [(2, 5)])
    for filters, shape in [(3, (5, 5, 2)), (10, (4, 4, 3)), (9, (4, 4, 16))]:
        conv = LAYERS["Conv2D"](type="Conv2D", filters=filters, kernel_size=3, padding="same", activation=name)
        check_layer_gradients(conv, [shape], batch=2)


LAYERS_WITH_ACTIVATION = sorted(name for name, config in LAYERS.items()
                                if "activation" in config.model_fields
                                and name not in ("Activation", "LSTM", "GRU", "SimpleRNN"))  # recurrent: below



@pytest.mark.parametrize("type_name", LAYERS_WITH_ACTIVATION)
@pytest.mark.parametrize("name", ["gelu", "elu", "log_softmax"])  # needs its input; from its output; row-wise
def test_every_layer_with_an_activation_takes_every_kind(type_name, name, tmp_path, keras):
    """Each layer type's first case with `activation:` set: its gradients through the graph, and Keras' output."""
    layer_case = LAYER_CASES[type_name][0]
    changed = case({**layer_case.entry, "activation": name}, *layer_case.shapes, dtype=layer_case.dtype,
                   named=layer_case.named)
    vocabulary.check_graph_gradients(specc.load(vocabulary.write_spec(tmp_path, changed)).graph)
    vocabulary.test_layer_matches_keras(changed, tmp_path, keras)


def test_dense_keeps_the_pre_activation_only_when_needed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4))
    for name, kept in (("relu", False), ("gelu", True)):
        dense = LAYERS["Dense"](type="Dense", units=2, activation=name)
        weights = dense.init_weights(dense.weight_shapes([(4,)]), rng)
        y, (_, z, _) = dense.forward(weights, [x], training=True)
        assert (not np.shares_memory(z, y)) == kept == needs_input(name)


LSTM_ACTIVATIONS = [name for name in ACTIVATIONS if name not in ("softmax", "log_softmax") and not needs_input(name)]


@pytest.mark.parametrize("name", [name for name in LSTM_ACTIVATIONS if name != "exponential"])
def test_lstm_takes_every_element_wise_activation(name, tmp_path, keras):
    """As the cell activation and as the gates' one: gradients, and Keras' output. (exponential compounds
    over the steps past what finite differences can check; its formula is shared with the others.)"""
    for entry in ({"type": "LSTM", "units": 3, "activation": name, "return_sequences": True},
                  {"type": "LSTM", "units": 2, "recurrent_activation": name}):
        layer_case = case(entry, (4, 3))
        vocabulary.check_graph_gradients(specc.load(vocabulary.write_spec(tmp_path, layer_case)).graph)
        vocabulary.test_layer_matches_keras(layer_case, tmp_path, keras)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "gelu", "silu", "swish", "mish", "hard_silu"])
def test_lstm_refuses_the_others(name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        LAYERS["LSTM"](type="LSTM", units=3, activation=name)


# -- activation layers with arguments ----------------------------------------------------------------------------

SPEC = """\
specc: 1
name: activated
inputs:
  x: {{shape: [3, 4]}}
layers:
  a: {entry}
outputs: [a]
compile: {{loss: mse}}
"""


@pytest.mark.parametrize("entry, message", [
    ("{type: ReLU, max_value: -1, inputs: x}", "greater than or equal to 0"),
    ("{type: LeakyReLU, negative_slope: -0.1, inputs: x}", "greater than or equal to 0"),
    ("{type: PReLU, shared_axes: [3], inputs: x}", "shared_axes [3] must be axes 1 to 2 of its input (None, 3, 4)"),
    ("{type: Softmax, axis: 3, inputs: x}", "axis 3 is out of range for inputs of rank 3 (axis 0 is the batch)"),
    ("{type: Dense, units: 2, activation: gelux, inputs: x}", "(did you mean 'gelu'?)"),
])
def test_bad_arguments_are_spec_errors(tmp_path, entry, message):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(entry=entry))
    with pytest.raises(specc.SpecError) as caught:
        specc.load(path)
    (problem,) = caught.value.problems
    assert message in problem.message, problem.message


def test_prelu_learns_one_alpha_per_shared_group():
    layer = LAYERS["PReLU"](type="PReLU", shared_axes=[1])
    assert layer.weight_shapes([(3, 4)]) == {"alpha": (1, 4)}
    alpha = np.array([[0.1, 0.2, 0.3, 0.4]])
    x = np.random.default_rng(3).normal(size=(2, 3, 4))
    y, cache = layer.forward({"alpha": alpha}, [x], training=True)
    np.testing.assert_allclose(y, np.where(x > 0, x, alpha * x))
    grads = {"alpha": np.zeros_like(alpha)}
    layer.backward({"alpha": alpha}, grads, cache, np.ones_like(x))
    np.testing.assert_allclose(grads["alpha"], np.minimum(x, 0).sum(axis=(0, 1), keepdims=True)[0])
