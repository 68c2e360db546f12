"""Graph features: shared layers, nodes, sub-models, TimeDistributed, frozen weights, with gradient checks."""
import textwrap

import numpy as np
import pytest
from gradcheck import numeric_gradient

import specc
from specc.runtime.parameters import Parameters


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def check_model_gradients(model, rows=3, seed=0):
    """Finite differences of sum(outputs * probes) against backward(), over weights and float inputs."""
    rng = np.random.default_rng(seed)
    graph = model.graph
    params = Parameters(graph, np.float64)
    params.initialize(seed)
    params.values[...] = rng.normal(scale=0.5, size=params.values.size)
    inputs = {n: rng.normal(size=(rows, *s)) for n, s in graph.inputs.items()}
    values, _ = graph.forward(params, inputs, training=True)
    probes = {o: rng.normal(size=values[o].shape) for o in graph.outputs}

    def loss():
        out, _ = graph.forward(params, inputs, training=True)
        return sum(float(np.sum(out[o] * probes[o])) for o in graph.outputs)

    values, tape = graph.forward(params, inputs, training=True)
    params.grads[...] = 0
    input_grads = graph.backward(params, tape, {o: p.copy() for o, p in probes.items()},
                           need_inputs=(True,) * len(graph.inputs))
    picks, expected = numeric_gradient(loss, params.values, max_checks=300, rng=rng)
    np.testing.assert_allclose(params.grads[picks], expected, rtol=1e-5, atol=1e-7)
    for (name, x), dx in zip(inputs.items(), input_grads):
        picks, expected = numeric_gradient(loss, x, rng=rng)
        np.testing.assert_allclose(dx.reshape(-1)[picks], expected, rtol=1e-5, atol=1e-7, err_msg=name)
    return params


HEAD = """
    specc: 1
    name: m
    compile: {optimizer: adam, loss: mse}
"""


def test_shared_layer_gradients_add_up(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs:
      a: {shape: [4]}
      b: {shape: [4]}
    layers:
      shared: {type: Dense, units: 3, activation: tanh}
      enc_a: {call: shared, inputs: a}
      enc_b: {call: shared, inputs: b}
      both: {type: Concatenate, inputs: [enc_a, enc_b]}
      out: {type: Dense, units: 2, inputs: both}
    outputs: [out]
    """))
    shared = model.get_layer("shared")
    assert [n.output for n in shared.nodes] == ["enc_a", "enc_b"]
    assert model.count_params() == 4 * 3 + 3 + 6 * 2 + 2
    check_model_gradients(model)


def test_layer_with_inputs_called_again_gets_node_1(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [3]}}
    layers:
      d: {type: Dense, units: 3, inputs: x}
      again: {call: d, inputs: d}
    outputs: [again]
    """))
    layer = model.get_layer("d")
    assert [n.index for n in layer.nodes] == [0, 1]
    assert layer.get_input_shape_at(1) == (3,)
    check_model_gradients(model)


def test_node_shapes_and_ambiguous_output_shape(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs:
      small: {shape: [2, 4]}
      large: {shape: [3, 4]}
    layers:
      flat: {type: Flatten}
      f_small: {call: flat, inputs: small}
      f_large: {call: flat, inputs: large}
      both: {type: Concatenate, inputs: [f_small, f_large]}
      out: {type: Dense, units: 1, inputs: both}
    outputs: [out]
    """))
    flat = model.get_layer("flat")
    assert flat.get_output_shape_at(0) == (8,)
    assert flat.get_output_shape_at(1) == (12,)
    assert flat.get_input_shape_at(1) == (3, 4)
    with pytest.raises(AttributeError, match=r"node 0: \(None, 8\), node 1: \(None, 12\)"):
        _ = flat.output_shape
    with pytest.raises(IndexError, match="no node 2"):
        flat.get_output_shape_at(2)
    assert model.get_layer("out").output_shape == (1,)


SUBMODEL = HEAD + """
    inputs:
      a: {shape: [5]}
      b: {shape: [5]}
    models:
      encoder:
        inputs: {x: {shape: [5]}}
        layers:
          hidden: {type: Dense, units: 4, activation: sigmoid, inputs: x}
          code: {type: Dense, units: 3, inputs: hidden}
        outputs: [code]
    layers:
      code_a: {call: encoder, inputs: a}
      code_b: {call: encoder, inputs: b}
      diff: {type: Add, inputs: [code_a, code_b]}
      out: {type: Dense, units: 1, activation: sigmoid, inputs: diff}
    outputs: [out]
"""


def test_sub_model_called_twice_shares_weights(tmp_path):
    model = specc.load(write(tmp_path, SUBMODEL))
    assert sorted(model.get_weights()) == ["encoder/code/bias", "encoder/code/kernel", "encoder/hidden/bias",
                                           "encoder/hidden/kernel", "out/bias", "out/kernel"]
    assert len(model.get_layer("encoder").nodes) == 2
    check_model_gradients(model)


def test_frozen_sub_model_never_changes(tmp_path):
    model = specc.load(write(tmp_path, SUBMODEL.replace("  encoder:\n", "  encoder:\n        trainable: false\n")))
    assert model.graph.count_params(trainable=False) == 5 * 4 + 4 + 4 * 3 + 3
    check_model_gradients(model)  # gradients still flow through a frozen model to its inputs
    before = model.get_weights()
    rng = np.random.default_rng(0)
    from specc.io.data import Dataset
    data = Dataset({"a": rng.normal(size=(64, 5)).astype("f4"), "b": rng.normal(size=(64, 5)).astype("f4")},
                   {"out": rng.random((64, 1)).astype("f4")})
    model.fit(epochs=2, data=(data, None))
    after = model.get_weights()
    for key in before:
        frozen = key.startswith("encoder/")
        assert np.array_equal(before[key], after[key]) == frozen, key


def test_sequential_sub_model_names_like_keras(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [6]}}
    models:
      stack:
        input: {shape: [6]}
        sequential:
          - {type: Dense, units: 4, activation: relu}
          - {type: Dense, units: 4, activation: tanh}
          - {type: Dense, units: 2, name: head}
    layers:
      out: {call: stack, inputs: x}
    outputs: [out]
    """))
    assert sorted({k.rsplit("/", 1)[0] for k in model.get_weights()}) == ["stack/dense", "stack/dense_1",
                                                                         "stack/head"]
    check_model_gradients(model)


def test_nested_sub_models(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [3]}}
    models:
      outer:
        inputs: {y: {shape: [3]}}
        models:
          inner:
            input: {shape: [3]}
            sequential: [{type: Dense, units: 3, activation: tanh}]
        layers:
          once: {call: inner, inputs: y}
          twice: {call: inner, inputs: once}
        outputs: [twice]
    layers:
      out: {call: outer, inputs: x}
    outputs: [out]
    """))
    assert sorted(model.get_weights()) == ["outer/inner/dense/bias", "outer/inner/dense/kernel"]
    check_model_gradients(model)


def test_time_distributed_over_model_and_layer(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {frames: {shape: [4, 6]}}
    models:
      per_frame:
        input: {shape: [6]}
        sequential: [{type: Dense, units: 5, activation: relu}, {type: Dense, units: 3, activation: softmax}]
    layers:
      scores: {type: TimeDistributed, layer: per_frame, inputs: frames}
      mixed: {type: TimeDistributed, layer: {type: Dense, units: 2, activation: tanh}, inputs: scores}
      out: {type: Flatten, inputs: mixed}
    outputs: [out]
    """))
    assert model.graph.shapes["scores"] == (4, 3)
    assert model.graph.shapes["out"] == (8,)
    assert "mixed/dense/kernel" in model.get_weights()  # the inline layer's level, as Keras' variable.path
    check_model_gradients(model)


def test_time_distributed_loads_weights_keyed_without_the_inline_level(tmp_path):
    """Weights files written before wrappers kept their layer's level (`td/kernel`) still load."""
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [3, 4]}}
    layers:
      td: {type: TimeDistributed, layer: {type: Dense, units: 2, name: proj}, inputs: x}
    outputs: [td]
    """))
    weights = model.get_weights()
    assert sorted(weights) == ["td/proj/bias", "td/proj/kernel"]
    old = {"td/kernel": np.full((4, 2), 0.5, np.float32), "td/bias": np.arange(2, dtype=np.float32)}
    path = tmp_path / "old.npz"
    np.savez(path, **old)
    model.load_weights(path)
    np.testing.assert_array_equal(model.get_weights()["td/proj/kernel"], old["td/kernel"])
    np.testing.assert_array_equal(model.get_weights()["td/proj/bias"], old["td/bias"])


def test_time_distributed_shares_a_named_layer(tmp_path):
    model = specc.load(write(tmp_path, HEAD + """
    inputs:
      one: {shape: [5]}
      seq: {shape: [3, 5]}
    layers:
      proj: {type: Dense, units: 2, inputs: one}
      each: {type: TimeDistributed, layer: proj, inputs: seq}
      flat: {type: Flatten, inputs: each}
      both: {type: Concatenate, inputs: [proj, flat]}
    outputs: [both]
    """))
    assert sorted(model.get_weights()) == ["proj/bias", "proj/kernel"]
    check_model_gradients(model)


def test_multi_output_loss_weights_and_history_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(40, 3)).astype("f4"),
             y1=np.ones((40, 1), "f4"), y2=np.zeros((40, 2), "f4"))
    model = specc.load(write(tmp_path, """
    specc: 1
    name: two
    inputs: {x: {shape: [3]}}
    layers:
      h: {type: Dense, units: 4, activation: relu, inputs: x}
      first: {type: Dense, units: 1, activation: sigmoid, inputs: h}
      second: {type: Dense, units: 2, inputs: h}
    outputs: [first, second]
    compile:
      optimizer: sgd
      loss: {first: binary_crossentropy, second: mse}
      loss_weights: [1.0, 0.5]
      metrics: {first: [accuracy]}
    data: {train: {path: d.npz, targets: {first: y1, second: y2}}}
    """))
    history = model.fit(epochs=1)
    assert list(history[0]) == ["loss", "first_loss", "second_loss", "first_accuracy"]
    logs = model.evaluate()
    assert logs["loss"] == pytest.approx(logs["first_loss"] + 0.5 * logs["second_loss"], rel=1e-6)


def test_reuse_a_trained_model_from_another_spec(tmp_path):
    source = specc.load(write(tmp_path, SUBMODEL, "source.yaml"))
    source.params.values[...] = np.random.default_rng(5).normal(size=source.params.values.size)
    source.save_weights(tmp_path / "source_weights.npz")
    model = specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [5]}}
    models:
      reused: {from: source.yaml, model: encoder, weights: source_weights.npz, trainable: false}
    layers:
      code: {call: reused, inputs: x}
      out: {type: Dense, units: 2, inputs: code}
    outputs: [out]
    """))
    trained = source.get_weights()
    weights = model.get_weights()
    for name in ("hidden/kernel", "hidden/bias", "code/kernel", "code/bias"):
        np.testing.assert_array_equal(weights[f"reused/{name}"], trained[f"encoder/{name}"])
    assert model.graph.count_params(trainable=False) == 5 * 4 + 4 + 4 * 3 + 3
    check_model_gradients(model)


def test_reuse_names_a_missing_model(tmp_path):
    write(tmp_path, SUBMODEL, "source.yaml")
    with pytest.raises(specc.SpecError) as error:
        specc.load(write(tmp_path, HEAD + """
    inputs: {x: {shape: [5]}}
    models:
      reused: {from: source.yaml, model: encodr}
    layers:
      out: {call: reused, inputs: x}
    outputs: [out]
    """))
    problem = error.value.problems[0]
    assert "source.yaml defines no model 'encodr' (did you mean 'encoder'?)" in problem.message
    assert (problem.line, problem.path) == (8, ("models", "reused", "model"))


def test_no_gradient_work_for_graph_inputs_or_frozen_branches(tmp_path):
    """Graph inputs get no gradient unless asked; a frozen branch on an input runs no backward at all."""
    model = specc.load(write(tmp_path, SUBMODEL.replace("  encoder:\n", "  encoder:\n        trainable: false\n")))
    graph = model.graph
    params = Parameters(graph, np.float64)
    params.initialize(0)
    rng = np.random.default_rng(0)
    inputs = {n: rng.normal(size=(2, *s)) for n, s in graph.inputs.items()}
    _, tape = graph.forward(params, inputs, training=True)
    tape[0] = tape[1] = None  # a backward through the frozen encoder would fail on these
    params.grads[...] = 0
    assert graph.backward(params, tape, {"out": np.ones((2, 1))}) == [None, None]
    assert not params.grads[params.trainable_size:].any()
    assert params.trainable_grads.any()


def test_two_weights_never_share_a_key(tmp_path):
    """Names are identifiers, so no two layers make one key; the weight buffer asserts it all the same."""
    from specc.graph import LayerCall
    spec = tmp_path / "two.yaml"
    spec.write_text("specc: 1\ninputs: {x: {shape: [3]}}\nlayers:\n  a: {type: Dense, units: 2, inputs: x}\n"
                    "  b: {type: Dense, units: 2, inputs: a}\noutputs: [b]\ncompile: {loss: mse}\n")
    graph = specc.load(spec).graph
    Parameters(graph)
    first, second = [layer for layer in graph.walk() if isinstance(layer, LayerCall)]
    second.key = first.key
    with pytest.raises(AssertionError, match="two weights share the key a/kernel"):
        Parameters(graph)


@pytest.mark.parametrize("other, inputs, message", [
    ("b: {shape: [3]}", "[a, b, a]", "layers.diff.inputs: Subtract takes 2 inputs, got 3"),
    ("c: {shape: [4]}", "[a, c]", "layers.diff: Subtract: cannot subtract tensors of different shapes: (None, 3) "
                                  "and (None, 4)"),
])
def test_subtract_takes_two_inputs_of_one_shape(tmp_path, other, inputs, message):
    spec = tmp_path / "sub.yaml"
    spec.write_text(f"specc: 1\ninputs: {{a: {{shape: [3]}}, {other}}}\n"
                    f"layers:\n  diff: {{type: Subtract, inputs: {inputs}}}\noutputs: [diff]\ncompile: {{loss: mse}}\n")
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    assert any(message in str(p) for p in caught.value.problems), caught.value
