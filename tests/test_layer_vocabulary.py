"""Every layer type against a reference: the cases in tests/layer_cases must cover exactly the registry.

Each case is a small spec around one layer: its gradients against finite differences through the graph
(float64), and the same layer built by Keras from the same arguments and weights computing the same output
in inference mode and the same gradients and state updates in a training step (when Keras is installed: the
`keras` fixture skips those tests otherwise).
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from gradcheck import numeric_gradient
from layer_cases import LAYER_CASES, Case

import specc
from specc.layers import LAYERS, Layer, Training, Wrapper
from specc.runtime.parameters import Parameters
from support import assert_keras_arguments, assert_same_names

ALL_CASES = [pytest.param(c, id=c.id) for cases in LAYER_CASES.values() for c in cases]


def test_every_layer_type_has_cases():
    assert_same_names(LAYERS, LAYER_CASES, "layer types")
    for name, cases in LAYER_CASES.items():
        assert cases, name
        assert all(c.entry["type"] == name for c in cases), name


def write_spec(tmp_path: Path, case: Case) -> Path:
    """A spec whose output is the case's layer applied to one input per shape."""
    inputs = {f"x{i}": {"shape": list(shape), "dtype": case.dtype} for i, shape in enumerate(case.shapes)}
    names = list(inputs)
    entry = {**case.entry, "inputs": names[0] if len(names) == 1 else names}
    spec = {"specc": 1, "name": "vocabulary", "inputs": inputs, "layers": {**case.named, "out": entry},
            "outputs": ["out"], "compile": {"loss": "mse"}}
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    return path


def random_parameters(graph, dtype, seed: int) -> Parameters:
    """specc's own initial weights, moved off them: a zero bias would hide a bias added in the wrong place."""
    params = Parameters(graph, dtype)
    params.initialize(seed)
    params.values += np.random.default_rng(seed).normal(scale=0.3, size=params.values.size).astype(dtype)
    return params


def random_inputs(graph, rows: int, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """N(0, 1) for float inputs; for id inputs, ids every layer reading them accepts."""
    arrays = {}
    for name, shape in graph.inputs.items():
        input_dtype = np.dtype(graph.input_dtypes[name])
        if np.issubdtype(input_dtype, np.integer):
            arrays[name] = rng.integers(0, min(graph.id_limits(name)), size=(rows, *shape)).astype(input_dtype)
        else:
            arrays[name] = rng.normal(size=(rows, *shape)).astype(dtype)
    return arrays


def check_graph_gradients(graph, seed: int = 0, rows: int = 3):
    """graph.backward against central differences of sum(output * probe), for every weight (a sample of
    them) and every float input; id inputs must get no gradient."""
    rng = np.random.default_rng(seed)
    params = random_parameters(graph, np.float64, seed)
    inputs = random_inputs(graph, rows, rng, np.float64)
    values, tape = graph.forward(params, inputs, training=True)
    probes = {o: rng.normal(size=values[o].shape) for o in graph.outputs}

    def probed_sum():
        out, _ = graph.forward(params, inputs, training=True)
        return sum(float(np.sum(out[o] * probes[o])) for o in graph.outputs)

    differentiable = tuple(np.issubdtype(x.dtype, np.floating) for x in inputs.values())
    params.grads[...] = 0
    input_grads = graph.backward(params, tape, {o: p.copy() for o, p in probes.items()}, need_inputs=differentiable)
    if params.values.size:
        picks, expected = numeric_gradient(probed_sum, params.values, max_checks=300, rng=rng)
        np.testing.assert_allclose(params.grads[picks], expected, rtol=1e-5, atol=1e-7, err_msg="weights")
    for (name, x), dx, floating in zip(inputs.items(), input_grads, differentiable):
        if not floating:
            assert dx is None, f"{name} holds ids: it has no gradient"
            continue
        picks, expected = numeric_gradient(probed_sum, x, rng=rng)
        np.testing.assert_allclose(dx.reshape(-1)[picks], expected, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", ALL_CASES)
def test_layer_gradients(case, tmp_path):
    check_graph_gradients(specc.load(write_spec(tmp_path, case)).graph)


SPEC_ONLY = {"type", "inputs", "name", "trainable"}  # fields of every spec entry, not arguments of a Keras layer


def call_arguments(entry: dict) -> dict:
    """The entry's keys that Keras takes when the layer is called (`use_causal_mask`), not when it is made."""
    return {k: v for k, v in entry.items() if k in LAYERS[entry["type"]].call_arguments}


def keras_layer_class(keras, type_name: str):
    """Keras' class of a layer type: in keras.layers, or in the module its cases name (Keras-Hub's layers:
    the test is skipped where that is not installed)."""
    module = LAYER_CASES[type_name][0].keras_module
    return getattr(keras.layers if module is None else pytest.importorskip(module), type_name)


def call_keras(layer, tensors: list, entry: dict):
    """The Keras layer called on the case's inputs: one tensor or a list of several as `inputs`, or each as an
    argument of its own where Keras' call takes them so (MultiHeadAttention's query, value, key)."""
    if len(tensors) > 1 and "inputs" not in inspect.signature(layer.call).parameters:
        return layer(*tensors, **call_arguments(entry))
    return layer(one_or_all(tensors), **call_arguments(entry))


def keras_layer(keras, entry, named: dict):
    """The Keras layer a spec entry describes: the class of its type's name, its fields as the arguments."""
    entry = named[entry] if isinstance(entry, str) else entry
    arguments = {k: v for k, v in entry.items() if k not in SPEC_ONLY and k not in call_arguments(entry)}
    if issubclass(LAYERS[entry["type"]], Wrapper):
        arguments["layer"] = keras_layer(keras, arguments["layer"], named)
    keras_class = keras_layer_class(keras, entry["type"])
    # Keras' random initializers compile one XLA program per weight shape (~0.5 s each on JAX), and the
    # weights are replaced by specc's anyway
    arguments.update({p: "zeros" for p in inspect.signature(keras_class).parameters if p.endswith("_initializer")})
    return keras_class(**arguments)


def our_name(layer, variable, names) -> str:
    """specc's name of a Keras variable: its path below the layer where specc has that level (`query/kernel`
    of a MultiHeadAttention), else its bare name (an LSTM's `kernel`, below Keras' cell level)."""
    below = variable.path.removeprefix(f"{layer.name}/")
    below = "/".join(part for part in below.split("/") if not part.endswith("_cell"))  # RNNs' cell level
    if below not in names:  # Keras numbers the names of inner layers made again (forward_lstm_1)
        below = re.sub(r"_\d+/", "/", below)
    return below if below in names else variable.name


def copy_weights(layer, arrays: dict[str, np.ndarray]):
    """specc's weights ("<layer>/<weight name>") into the Keras layer's variables of the same names."""
    by_name: dict[str, list] = {}
    for key, value in arrays.items():
        by_name.setdefault(key.split("/", 1)[1], []).append(value)
    for variable in layer.weights:
        given = by_name.pop(our_name(layer, variable, by_name), [])
        assert len(given) == 1, f"Keras' {variable.path}: specc has {len(given)} weights of that name"
        variable.assign(given[0])
    assert not by_name, f"specc weights the Keras layer does not have: {sorted(by_name)}"


def one_or_all(items: list):
    """What a Keras layer takes: one tensor, or a list of several."""
    return items[0] if len(items) == 1 else items


@pytest.mark.parametrize("case", ALL_CASES)
def test_layer_matches_keras(case, tmp_path, keras):
    graph = specc.load(write_spec(tmp_path, case)).graph
    params = random_parameters(graph, np.float32, seed=1)
    inputs = random_inputs(graph, rows=4, rng=np.random.default_rng(1), dtype=np.float32)
    ours = graph.forward(params, inputs, training=False)[0]["out"]

    tensors = [keras.Input(shape, dtype=case.dtype) for shape in case.shapes]
    layer = keras_layer(keras, case.entry, case.named)
    model = keras.Model(one_or_all(tensors), call_keras(layer, tensors, case.entry))
    copy_weights(layer, params.as_dict())
    theirs = model(one_or_all([inputs[name] for name in graph.inputs]), training=False)
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_arguments_are_keras_arguments(name, keras):
    """The Keras comparison passes only what a case sets: the defaults of everything else are checked here."""
    layer = LAYERS[name]
    skip = set(Layer.model_fields) | {"type"} | layer.call_arguments  # call arguments: checked by the cases
    assert_keras_arguments(layer, keras_layer_class(keras, name), skip=skip)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.values[0].keras_training])
def test_layer_training_step_matches_keras(case, tmp_path, keras):
    """One training step of sum(output * probe): every weight's gradient and every state update (moving
    statistics) as Keras' on JAX computes them, from the same weights: so one SGD step gives the same weights."""
    jax = pytest.importorskip("jax")
    if keras.backend.backend() != "jax":
        pytest.skip("the training-step comparison differentiates Keras' layer with JAX")
    graph = specc.load(write_spec(tmp_path, case)).graph
    params = random_parameters(graph, np.float32, seed=2)
    rng = np.random.default_rng(2)
    inputs = random_inputs(graph, rows=4, rng=rng, dtype=np.float32)
    tensors = [keras.Input(shape, dtype=case.dtype) for shape in case.shapes]
    layer = keras_layer(keras, case.entry, case.named)
    model = keras.Model(one_or_all(tensors), call_keras(layer, tensors, case.entry))
    copy_weights(layer, params.as_dict())

    values, tape = graph.forward(params, inputs, Training())
    probe = rng.normal(size=values["out"].shape).astype(np.float32)
    params.grads[...] = 0
    graph.backward(params, tape, {"out": probe.copy()})
    ours = {name: value for layer in graph.all_layers() for name, value in params.weights(layer).items()}
    our_grads = {name: grad for layer in graph.all_layers() for name, grad in params.gradients(layer).items()}

    xs = one_or_all([inputs[name] for name in graph.inputs])

    def probed_sum(trainable, non_trainable):
        y, non_trainable = model.stateless_call(trainable, non_trainable, xs, training=True)
        return jax.numpy.sum(y * probe), non_trainable

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    (_, updated), grads = jax.value_and_grad(probed_sum, has_aux=True)(trainable, non_trainable)
    for variable, grad in zip(model.trainable_variables, grads):
        np.testing.assert_allclose(our_grads[our_name(layer, variable, our_grads)], np.asarray(grad),
                                   rtol=2e-3, atol=2e-4, err_msg=f"gradient of {variable.path}")
    for variable, value in zip(model.non_trainable_variables, updated):
        if variable.name.startswith("seed_generator"):  # where Keras keeps its random state, not a weight
            continue
        np.testing.assert_allclose(ours[our_name(layer, variable, ours)], np.asarray(value), rtol=2e-4, atol=2e-5,
                                   err_msg=f"{variable.path} after the step")

