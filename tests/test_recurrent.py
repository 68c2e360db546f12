"""Embedding and LSTM: gradients against finite differences, LSTM forward against a slow reference of the
Keras equations, Keras weight shapes / parameter counts / initializers, and the out-of-range id error."""
import numpy as np
import pytest
from gradcheck import check_layer_gradients

from specc.layers import LAYERS, LSTM, Embedding


def lstm(units, **kw):
    return LSTM(type="LSTM", units=units, **kw)


def embedding(input_dim, output_dim):
    return Embedding(type="Embedding", input_dim=input_dim, output_dim=output_dim)


def n_params(layer, input_shape):
    return sum(int(np.prod(s)) for s in layer.weight_shapes([input_shape]).values())


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


ACTS = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda z: np.maximum(z, 0), "linear": lambda z: z}


def reference_lstm(x, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid",
                   return_sequences=False):
    """Keras' LSTM equations, one sample and one step at a time."""
    act, ract = ACTS[activation], ACTS[recurrent_activation]
    B, T, _ = x.shape
    u = recurrent_kernel.shape[0]
    W = {g: kernel[:, n * u:(n + 1) * u] for n, g in enumerate("ifco")}
    U = {g: recurrent_kernel[:, n * u:(n + 1) * u] for n, g in enumerate("ifco")}
    b = {g: bias[n * u:(n + 1) * u] for n, g in enumerate("ifco")}
    out = np.zeros((B, T, u))
    for s in range(B):
        h = np.zeros(u)
        c = np.zeros(u)
        for t in range(T):
            xt = x[s, t]
            i = ract(xt @ W["i"] + h @ U["i"] + b["i"])
            f = ract(xt @ W["f"] + h @ U["f"] + b["f"])
            cc = act(xt @ W["c"] + h @ U["c"] + b["c"])
            o = ract(xt @ W["o"] + h @ U["o"] + b["o"])
            c = f * c + i * cc
            h = o * act(c)
            out[s, t] = h
    return out if return_sequences else out[:, -1]


def random_lstm_weights(layer, features, rng, scale=0.5):
    shapes = layer.weight_shapes([(None, features)])
    return {k: rng.normal(scale=scale, size=s) for k, s in shapes.items()}


def test_registered():
    assert "Embedding" in LAYERS and "LSTM" in LAYERS
    assert Embedding.accepts_integers and not LSTM.accepts_integers


# ---------------------------------------------------------------- Embedding

@pytest.mark.parametrize("ids_shape", [(5,), (2, 3)], ids=["sequence", "grid"])
def test_embedding_gradients(ids_shape):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 4, size=(3, *ids_shape))  # few ids, so rows repeat and gradients must add up
    check_layer_gradients(embedding(4, 3), [ids_shape], inputs=[ids])


def test_embedding_forward_and_no_id_gradient():
    layer = embedding(6, 2)
    table = np.arange(12.0).reshape(6, 2)
    ids = np.array([[0, 5, 5], [2, 1, 0]], dtype=np.int32)
    y, cache = layer.forward({"embeddings": table}, [ids], training=True)
    assert layer.output_shape([(3,)]) == (3, 2)
    np.testing.assert_array_equal(y, table[ids])
    grads = {"embeddings": np.zeros_like(table)}
    assert layer.backward({"embeddings": table}, grads, cache, np.ones((2, 3, 2))) == [None]
    np.testing.assert_array_equal(grads["embeddings"][:, 0], [2, 1, 1, 0, 0, 2])


def test_embedding_keras_shape_and_init():
    layer = embedding(10000, 512)
    assert layer.weight_shapes([(20,)]) == {"embeddings": (10000, 512)}
    assert n_params(layer, (20,)) == 5_120_000
    table = layer.init_weights({"embeddings": (1000, 8)}, np.random.default_rng(0))["embeddings"]
    assert table.shape == (1000, 8) and np.abs(table).max() <= 0.05 and table.std() > 0.02


@pytest.mark.parametrize("bad, where", [(10, "row 1, position 2"), (-1, "row 0, position 0")])
def test_embedding_out_of_range_id(bad, where):
    ids = np.array([[3, 4, 5], [6, 7, 8]])
    ids[(1, 2) if bad == 10 else (0, 0)] = bad
    with pytest.raises(ValueError, match=rf"id {bad} at \({where}\).*\[0, 10\)"):
        embedding(10, 4).forward({"embeddings": np.zeros((10, 4))}, [ids], training=False)


# ---------------------------------------------------------------- LSTM

@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("activation, recurrent_activation",
                         [("tanh", "sigmoid"), ("relu", "tanh"), ("linear", "sigmoid")])
def test_lstm_gradients(return_sequences, activation, recurrent_activation):
    layer = lstm(3, activation=activation, recurrent_activation=recurrent_activation,
                 return_sequences=return_sequences)
    check_layer_gradients(layer, [(4, 2)], batch=2)


def test_lstm_gradients_without_bias_and_single_step():
    check_layer_gradients(lstm(2, use_bias=False, return_sequences=True), [(3, 2)])
    check_layer_gradients(lstm(3), [(1, 4)])


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("activation, recurrent_activation",
                         [("tanh", "sigmoid"), ("relu", "sigmoid"), ("tanh", "linear")])
def test_lstm_forward_matches_reference(return_sequences, activation, recurrent_activation):
    rng = np.random.default_rng(2)
    layer = lstm(5, activation=activation, recurrent_activation=recurrent_activation,
                 return_sequences=return_sequences)
    w = random_lstm_weights(layer, 3, rng)
    x = rng.normal(size=(4, 6, 3))
    y, _ = layer.forward(w, [x], training=False)
    assert y.shape == (4, *layer.output_shape([(6, 3)]))
    expected = reference_lstm(x, w["kernel"], w["recurrent_kernel"], w["bias"], activation,
                              recurrent_activation, return_sequences)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_lstm_float32_fast_path():
    """float32 takes the vectorized tanh/sigmoid approximation: forward and backward stay close to float64."""
    rng = np.random.default_rng(3)
    layer = lstm(16, return_sequences=True)
    w64 = random_lstm_weights(layer, 8, rng)
    x64 = rng.normal(size=(5, 30, 8))
    dy64 = rng.normal(size=(5, 30, 16))
    out = {}
    for dtype in (np.float64, np.float32):
        w = {k: v.astype(dtype) for k, v in w64.items()}
        y, cache = layer.forward(w, [x64.astype(dtype)], training=True)
        grads = {k: np.zeros_like(v) for k, v in w.items()}
        (dx,) = layer.backward(w, grads, cache, dy64.astype(dtype))
        assert y.dtype == dx.dtype == dtype and all(g.dtype == dtype for g in grads.values())
        out[dtype] = (y, dx, grads)
    (y64, dx64, g64), (y32, dx32, g32) = out[np.float64], out[np.float32]
    np.testing.assert_allclose(y32, y64, atol=2e-5)
    np.testing.assert_allclose(dx32, dx64, atol=2e-4 * np.abs(dx64).max())
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], atol=2e-4 * np.abs(g64[name]).max())


def test_lstm_last_step_equals_sequence_with_only_last_gradient():
    rng = np.random.default_rng(4)
    w = random_lstm_weights(lstm(3), 2, rng)
    x = rng.normal(size=(2, 5, 2))
    dy = rng.normal(size=(2, 3))
    results = []
    for seq in (False, True):
        layer = lstm(3, return_sequences=seq)
        y, cache = layer.forward(w, [x], training=True)
        grads = {k: np.zeros_like(v) for k, v in w.items()}
        d = dy if not seq else np.concatenate([np.zeros((2, 4, 3)), dy[:, None]], axis=1)
        results.append((y if not seq else y[:, -1], layer.backward(w, grads, cache, d)[0], grads))
    (y0, dx0, g0), (y1, dx1, g1) = results
    np.testing.assert_allclose(y0, y1)
    np.testing.assert_allclose(dx0, dx1)
    for name in g0:
        np.testing.assert_allclose(g0[name], g1[name])


@pytest.mark.parametrize("units, features, count", [(32, 512, 69_760), (64, 256, 82_176), (256, 256, 525_312)])
def test_lstm_keras_parameter_counts(units, features, count):
    layer = lstm(units)
    assert layer.weight_shapes([(100, features)]) == {
        "kernel": (features, 4 * units), "recurrent_kernel": (units, 4 * units), "bias": (4 * units,)}
    assert n_params(layer, (100, features)) == count == 4 * units * (features + units + 1)
    assert n_params(lstm(units, use_bias=False), (100, features)) == count - 4 * units


def test_lstm_shapes():
    assert lstm(7).output_shape([(10, 3)]) == (7,)
    assert lstm(7, return_sequences=True).output_shape([(10, 3)]) == (10, 7)
    with pytest.raises(ValueError, match="timesteps, features"):
        lstm(7).output_shape([(10,)])


def test_lstm_keras_initializers():
    layer = lstm(16)
    w = layer.init_weights(layer.weight_shapes([(9, 24)]), np.random.default_rng(5))
    U = w["recurrent_kernel"]
    assert U.shape == (16, 64)
    np.testing.assert_allclose(U @ U.T, np.eye(16), atol=1e-12)  # orthonormal rows of the flattened (u, 4u)
    limit = np.sqrt(6 / (24 + 64))  # glorot_uniform over (features, 4u)
    assert np.abs(w["kernel"]).max() <= limit and np.abs(w["kernel"]).max() > 0.8 * limit
    expected_bias = np.zeros(64)
    expected_bias[16:32] = 1.0  # unit_forget_bias: the f gate slice
    np.testing.assert_array_equal(w["bias"], expected_bias)
    square = layer.init_weights({"kernel": (4, 8), "recurrent_kernel": (8, 8), "bias": (8,)},
                                np.random.default_rng(6))["recurrent_kernel"]
    np.testing.assert_allclose(square.T @ square, np.eye(8), atol=1e-12)


def test_lstm_config_validation():
    with pytest.raises(ValueError):
        lstm(0)
    with pytest.raises(ValueError):
        lstm(4, activation="softmax")


def test_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    layer = lstm(6, return_sequences=True)
    w = random_lstm_weights(layer, 4, rng)
    x = rng.normal(size=(3, 5, 4))
    net = torch.nn.LSTM(4, 6, batch_first=True).double()
    with torch.no_grad():  # torch stores (4u, in) with the same i, f, g, o order and two biases
        net.weight_ih_l0.copy_(torch.from_numpy(w["kernel"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(w["recurrent_kernel"].T))
        net.bias_ih_l0.copy_(torch.from_numpy(w["bias"]))
        net.bias_hh_l0.zero_()
        expected = net(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer.forward(w, [x], training=False)[0], expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- in a model

def test_models_with_embedding_and_shared_lstm(tmp_path):
    """Keras' shared-LSTM example (two sequences through one LSTM) and an Embedding -> LSTM stack,
    compiled from a spec and gradient-checked through the executor."""
    import textwrap

    from gradcheck import numeric_gradient

    import specc
    from specc.runtime.parameters import Parameters

    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent("""
        specc: 1
        name: m
        compile: {optimizer: adam, loss: mse}
        inputs:
          a: {shape: [4, 3]}
          b: {shape: [4, 3]}
          ids: {shape: [5], dtype: int32}
        layers:
          shared: {type: LSTM, units: 2}
          enc_a: {call: shared, inputs: a}
          enc_b: {call: shared, inputs: b}
          words: {type: Embedding, input_dim: 6, output_dim: 3, inputs: ids}
          seq: {type: LSTM, units: 2, return_sequences: true, activation: relu, inputs: words}
          last: {type: LSTM, units: 2, inputs: seq}
          both: {type: Concatenate, inputs: [enc_a, enc_b, last]}
          out: {type: Dense, units: 1, inputs: both}
        outputs: [out]
        """))
    model = specc.load(path)
    # shared LSTM once, Embedding, LSTM on 3 features, LSTM on 2, Dense on 6
    assert model.count_params() == 4 * 2 * (3 + 2 + 1) + 6 * 3 + 4 * 2 * (3 + 2 + 1) + 4 * 2 * (2 + 2 + 1) + 7
    graph = model.graph
    rng = np.random.default_rng(0)
    params = Parameters(graph, np.float64)
    params.initialize(0)
    params.values[...] = rng.normal(scale=0.5, size=params.values.size)
    inputs = {"a": rng.normal(size=(3, 4, 3)), "b": rng.normal(size=(3, 4, 3)),
              "ids": rng.integers(0, 6, size=(3, 5)).astype(np.int32)}
    probe = rng.normal(size=(3, 1))

    def loss():
        out, _ = graph.forward(params, inputs, training=True)
        return float(np.sum(out["out"] * probe))

    _, tape = graph.forward(params, inputs, training=True)
    params.grads[...] = 0
    input_grads = dict(zip(graph.inputs, graph.backward(params, tape, {"out": probe.copy()},
                                                  need_inputs=(True,) * len(graph.inputs))))
    picks, expected = numeric_gradient(loss, params.values, max_checks=300, rng=rng)
    np.testing.assert_allclose(params.grads[picks], expected, rtol=1e-5, atol=1e-7)
    for name in ("a", "b"):
        picks, expected = numeric_gradient(loss, inputs[name], rng=rng)
        np.testing.assert_allclose(input_grads[name].reshape(-1)[picks], expected, rtol=1e-5, atol=1e-7)
    assert input_grads["ids"] is None


# ------------------------------------------------- several outputs, states between layers, masks (graphs)

def write_spec(tmp_path, inputs: dict, layers: dict, outputs: list, loss="mse"):
    import yaml
    spec = {"specc": 1, "name": "m", "inputs": inputs, "layers": layers, "outputs": outputs,
            "compile": {"optimizer": "sgd", "loss": loss}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def problems(path) -> list[str]:
    import specc
    from specc.errors import SpecError
    with pytest.raises(SpecError) as caught:
        specc.load(path)
    return [f"{'.'.join(map(str, p.path))}: {p.message}" for p in caught.value.problems]


SEQ2SEQ = {  # keras.io lstm_seq2seq in miniature: the encoder's final states start the decoder
    "inputs": {"enc_in": {"shape": [5, 3]}, "dec_in": {"shape": [4, 2]}},
    "layers": {
        "encoder": {"type": "LSTM", "units": 3, "return_state": True, "inputs": "enc_in"},
        "decoder": {"type": "LSTM", "units": 3, "return_sequences": True, "inputs": "dec_in",
                    "initial_state": ["encoder.1", "encoder.2"]},
        "out": {"type": "Dense", "units": 2, "activation": "softmax", "inputs": "decoder"},
    },
    "outputs": ["out"],
}


def test_several_outputs_are_named_by_index(tmp_path):
    import specc
    path = write_spec(tmp_path, {"x": {"shape": [4, 2]}},
                      {"rnn": {"type": "LSTM", "units": 3, "return_state": True, "inputs": "x"}},
                      ["rnn.0", "rnn.2"])
    model = specc.load(path)
    node = model.graph.nodes[0]
    assert node.outputs == ["rnn.0", "rnn.1", "rnn.2"]
    assert model.graph.shapes["rnn.1"] == (3,)
    x = np.random.default_rng(0).normal(size=(5, 4, 2)).astype(np.float32)
    predicted = model.predict(x)
    assert sorted(predicted) == ["rnn.0", "rnn.2"]
    # without return_sequences the output is the last h; c is the cell state (not h)
    values, _ = model.graph.forward(model.params, {"x": x}, training=False)
    np.testing.assert_array_equal(values["rnn.0"], values["rnn.1"])
    np.testing.assert_array_equal(predicted["rnn.2"], values["rnn.2"])
    assert not np.allclose(values["rnn.2"], values["rnn.1"])
    table = model.summary()
    for tensor in ("rnn.0: (None, 3)", "rnn.1: (None, 3)", "rnn.2: (None, 3)"):
        assert tensor in table
    from specc.plot import to_dot
    dot = to_dot(model.graph)
    assert "0: (None, 3), 1: (None, 3), 2: (None, 3)" in dot
    # a loss on each output named, the cell state's too
    from specc.io.data import Dataset
    from specc.synth import synthesize
    arrays = synthesize(model.graph, model.losses(), 8, seed=1)
    before = model.get_weights()
    history = model.fit(epochs=1, batch_size=4, data=(Dataset({"x": arrays["x"]}, {o: arrays[o] for o in
                                                                                 ("rnn.0", "rnn.2")}), None))
    assert {"rnn.0_loss", "rnn.2_loss"} <= set(history[0])
    assert not np.array_equal(before["rnn/recurrent_kernel"], model.get_weights()["rnn/recurrent_kernel"])


def test_wrong_output_references_are_located_errors(tmp_path):
    path = write_spec(tmp_path, {"x": {"shape": [4, 2]}}, {
        "rnn": {"type": "GRU", "units": 3, "return_state": True, "inputs": "x"},
        "a": {"type": "Dense", "units": 1, "inputs": "rnn"},
        "b": {"type": "Dense", "units": 1, "inputs": "rnn.2"},
        "c": {"type": "Dense", "units": 1, "inputs": "a.0"},
        "d": {"type": "Concatenate", "inputs": ["a", "b", "c", "rnn.1"]},
    }, ["d", "rnn"])
    found = problems(path)
    assert "layers.a.inputs: 'rnn' has 2 outputs; name one of them: rnn.0, rnn.1" in found
    assert "layers.b.inputs: 'rnn' has no output '2'; its outputs are rnn.0, rnn.1" in found
    assert "layers.c.inputs: 'a' has one output; refer to it as 'a'" in found
    assert "outputs.1: 'rnn' has 2 outputs; name one of them: rnn.0, rnn.1" in found


def test_initial_state_wiring_and_errors(tmp_path):
    import specc
    model = specc.load(write_spec(tmp_path, **SEQ2SEQ))
    decoder = model.graph.nodes[1]
    assert decoder.inputs == ["dec_in", "encoder.1", "encoder.2"]
    bad = {**SEQ2SEQ, "layers": {**SEQ2SEQ["layers"], "decoder": {
        **SEQ2SEQ["layers"]["decoder"], "initial_state": ["encoder.1", "encoder.3"]}}}
    assert problems(write_spec(tmp_path, **bad)) == [
        "layers.decoder.initial_state.1: 'encoder' has no output '3'; its outputs are encoder.0, encoder.1, encoder.2"]
    one = {**SEQ2SEQ, "layers": {**SEQ2SEQ["layers"], "decoder": {
        **SEQ2SEQ["layers"]["decoder"], "initial_state": ["encoder.1"]}}}
    (found,) = problems(write_spec(tmp_path, **one))
    assert found == ("layers.decoder: LSTM on (None, 4, 2) and (None, 3): initial_state needs 2 tensor(s) of shape "
                     "(None, 3); got (None, 3)")


def test_stateful_is_a_clear_error(tmp_path):
    layers = {"rnn": {"type": "SimpleRNN", "units": 3, "stateful": True, "inputs": "x"}}
    (found,) = problems(write_spec(tmp_path, {"x": {"shape": [4, 2]}}, layers, ["rnn"]))
    assert found.startswith("layers.rnn.stateful:") and "initial_state" in found


@pytest.mark.parametrize("type_name", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_states_between_layers_gradients(tmp_path, type_name, go_backwards):
    """Finite differences through an encoder's final states into a decoder's initial state, every output of
    the encoder reaching the loss (its states directly too)."""
    from test_layer_vocabulary import check_graph_gradients

    import specc
    states = 2 if type_name == "LSTM" else 1
    layers = {
        "encoder": {"type": type_name, "units": 3, "return_state": True, "go_backwards": go_backwards,
                    "inputs": "enc_in"},
        "decoder": {"type": type_name, "units": 3, "return_sequences": True, "inputs": "dec_in",
                    "initial_state": [f"encoder.{k + 1}" for k in range(states)]},
    }
    path = write_spec(tmp_path, SEQ2SEQ["inputs"], layers, ["decoder", "encoder.0", f"encoder.{states}"])
    check_graph_gradients(specc.load(path).graph)


def keras_seq2seq(keras, type_name: str, go_backwards: bool):
    states = 2 if type_name == "LSTM" else 1
    layer = getattr(keras.layers, type_name)
    enc_in, dec_in = keras.Input((5, 3)), keras.Input((4, 2))
    _, *state = layer(3, return_state=True, go_backwards=go_backwards, name="encoder")(enc_in)
    decoded = layer(3, return_sequences=True, name="decoder")(dec_in, initial_state=state[:states])
    return keras.Model([enc_in, dec_in], decoded)


@pytest.mark.parametrize("type_name", ["LSTM", "GRU", "SimpleRNN"])
def test_states_between_layers_match_keras(tmp_path, type_name, keras):
    """Inference output and one training step's gradients against Keras' model of the same weights."""
    jax = pytest.importorskip("jax")
    from test_layer_vocabulary import random_parameters

    import specc
    from specc.layers import Training
    states = 2 if type_name == "LSTM" else 1
    layers = {
        "encoder": {"type": type_name, "units": 3, "return_state": True, "go_backwards": True, "inputs": "enc_in"},
        "decoder": {"type": type_name, "units": 3, "return_sequences": True, "inputs": "dec_in",
                    "initial_state": [f"encoder.{k + 1}" for k in range(states)]},
    }
    graph = specc.load(write_spec(tmp_path, SEQ2SEQ["inputs"], layers, ["decoder"])).graph
    params = random_parameters(graph, np.float32, seed=1)
    rng = np.random.default_rng(1)
    inputs = {"enc_in": rng.normal(size=(4, 5, 3)).astype(np.float32),
              "dec_in": rng.normal(size=(4, 4, 2)).astype(np.float32)}
    model = keras_seq2seq(keras, type_name, go_backwards=True)
    for variable in model.weights:
        variable.assign(params.as_dict()[f"{variable.path.split('/')[0]}/{variable.name}"])
    xs = [inputs["enc_in"], inputs["dec_in"]]
    values, tape = graph.forward(params, inputs, Training())
    np.testing.assert_allclose(values["decoder"], np.asarray(model(xs, training=False)), rtol=2e-4, atol=2e-5)
    probe = rng.normal(size=values["decoder"].shape).astype(np.float32)
    params.grads[...] = 0
    graph.backward(params, tape, {"decoder": probe.copy()})
    fixed = [v.value for v in model.non_trainable_variables]  # the seed generators
    grads = jax.grad(lambda w: jax.numpy.sum(model.stateless_call(w, fixed, xs, training=True)[0] * probe))(
        [v.value for v in model.trainable_variables])
    ours = {f"{layer.key}/{name}": g for layer in graph.all_layers() for name, g in params.gradients(layer).items()}
    for variable, grad in zip(model.trainable_variables, grads):
        np.testing.assert_allclose(ours[f"{variable.path.split('/')[0]}/{variable.name}"], np.asarray(grad),
                                   rtol=2e-3, atol=2e-4, err_msg=variable.path)


def our_key(variable) -> str:
    """specc's weight key of a Keras variable: its path without the cell level, and without the number Keras
    gives an inner layer whose name is taken already in the session (forward_lstm_1)."""
    import re
    parts = [re.sub(r"^((?:forward|backward)_[a-z_]+?)_\d+$", r"\1", part) for part in variable.path.split("/")]
    return "/".join(part for part in parts if not part.endswith("_cell"))


def compare_with_keras(graph, model, inputs: dict, outputs: list, seed: int = 1):
    """Inference outputs and one training step's gradients of `outputs` against a Keras model whose layers
    are named as the spec's; the weights are specc's."""
    jax = pytest.importorskip("jax")
    from test_layer_vocabulary import random_parameters

    from specc.layers import Training
    params = random_parameters(graph, np.float32, seed=seed)
    arrays = params.as_dict()
    for variable in model.weights:
        if "seed_generator" not in variable.path:  # Keras' random state, not a weight
            variable.assign(arrays[our_key(variable)])
    xs = [inputs[name] for name in graph.inputs]
    xs = xs[0] if len(xs) == 1 else xs
    theirs = model(xs, training=False)
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    values, tape = graph.forward(params, inputs, Training())
    for name, their in zip(outputs, theirs):
        np.testing.assert_allclose(values[name], np.asarray(their), rtol=2e-4, atol=2e-5, err_msg=name)
    rng = np.random.default_rng(seed)
    probes = {name: rng.normal(size=values[name].shape).astype(np.float32) for name in outputs}
    params.grads[...] = 0
    graph.backward(params, tape, {name: p.copy() for name, p in probes.items()})
    fixed = [v.value for v in model.non_trainable_variables]

    def probed_sum(trainable):
        ys = model.stateless_call(trainable, fixed, xs, training=True)[0]
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return sum(jax.numpy.sum(y * probes[name]) for name, y in zip(outputs, ys))

    grads = jax.grad(probed_sum)([v.value for v in model.trainable_variables])
    ours = {f"{layer.key}/{name}": g for layer in graph.all_layers() for name, g in params.gradients(layer).items()}
    for variable, grad in zip(model.trainable_variables, grads):
        np.testing.assert_allclose(ours[our_key(variable)], np.asarray(grad), rtol=2e-3, atol=2e-4,
                                   err_msg=variable.path)


BIDIRECTIONAL = {"type": "Bidirectional", "merge_mode": None,
                 "layer": {"type": "LSTM", "units": 3, "return_sequences": True, "return_state": True}}


def test_bidirectional_with_two_outputs_and_states(tmp_path, keras):
    """merge_mode null: the directions as bi.0 and bi.1, then each direction's h and c; weights keyed
    bi/forward_lstm/..., bi/backward_lstm/...; gradients through every output."""
    from test_layer_vocabulary import check_graph_gradients

    import specc
    path = write_spec(tmp_path, {"x": {"shape": [4, 2]}}, {"bi": {**BIDIRECTIONAL, "inputs": "x"}},
                      [f"bi.{k}" for k in range(6)])
    model = specc.load(path)
    assert sorted(model.get_weights()) == sorted(f"bi/{d}_lstm/{w}" for d in ("forward", "backward")
                                                 for w in ("kernel", "recurrent_kernel", "bias"))
    assert [model.graph.shapes[f"bi.{k}"] for k in range(6)] == [(4, 3), (4, 3), (3,), (3,), (3,), (3,)]
    check_graph_gradients(model.graph)
    x = keras.Input((4, 2))
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, return_state=True),
                                        merge_mode=None, name="bi")(x)
    compare_with_keras(model.graph, keras.Model(x, list(theirs)),
                       {"x": np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32)},
                       [f"bi.{k}" for k in range(6)])


# ---------------------------------------------------------------- masks

def masked_classifier(tmp_path, steps: int, rnn: dict, name="m"):
    """Embedding(mask_zero) -> rnn -> Dense over `steps` ids."""
    folder = tmp_path / f"{name}{steps}"
    folder.mkdir(exist_ok=True)
    return write_spec(folder, {"ids": {"shape": [steps], "dtype": "int32"}}, {
        "embed": {"type": "Embedding", "input_dim": 7, "output_dim": 3, "mask_zero": True, "inputs": "ids"},
        "rnn": {**rnn, "inputs": "embed"},
        "out": {"type": "Dense", "units": 2, "inputs": "rnn"},
    }, ["out"])


RNNS = [{"type": "LSTM", "units": 3}, {"type": "GRU", "units": 3}, {"type": "GRU", "units": 3, "reset_after": False},
        {"type": "SimpleRNN", "units": 3}, {"type": "LSTM", "units": 3, "go_backwards": True},
        {"type": "Bidirectional", "layer": {"type": "GRU", "units": 2}}]


@pytest.mark.parametrize("rnn", RNNS, ids=lambda r: str(r))
def test_padded_batches_give_the_numbers_of_the_unpadded_sequences(tmp_path, rnn):
    """Rows of different lengths padded with id 0, at the end or at the start, in one batch: each row's output
    is the output of the same model on that row alone, unpadded; and the loss's gradient the same too."""
    import specc
    from specc.layers import Training
    padded = specc.load(masked_classifier(tmp_path, 6, rnn))
    rng = np.random.default_rng(0)
    padded.params.values[...] = rng.normal(scale=0.5, size=padded.params.values.size).astype(np.float32)
    weights = padded.get_weights()
    rows = [rng.integers(1, 7, size=n).astype(np.int32) for n in (6, 4, 1, 3)]
    batch = np.zeros((len(rows), 6), np.int32)
    for i, row in enumerate(rows):
        if i % 2:
            batch[i, :len(row)] = row  # padded after
        else:
            batch[i, 6 - len(row):] = row  # padded before
    values, tape = padded.graph.forward(padded.params, {"ids": batch}, Training())
    padded.params.grads[...] = 0
    probe = rng.normal(size=(len(rows), 2)).astype(np.float32)
    padded.graph.backward(padded.params, tape, {"out": probe.copy()})
    total = padded.params.grads.copy()
    summed = np.zeros_like(total)
    for i, row in enumerate(rows):
        alone = specc.load(masked_classifier(tmp_path, len(row), rnn, name=f"alone{i}"))
        for key, array in weights.items():
            alone.params.weights(alone.graph.get_layer(key.split("/")[0]))[key.split("/", 1)[1]][...] = array
        own, own_tape = alone.graph.forward(alone.params, {"ids": row[None]}, Training())
        np.testing.assert_allclose(values["out"][i], own["out"][0], rtol=1e-5, atol=1e-6)
        alone.params.grads[...] = 0
        alone.graph.backward(alone.params, own_tape, {"out": probe[i:i + 1].copy()})
        summed += alone.params.grads
    np.testing.assert_allclose(total, summed, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rnn", RNNS + [{"type": "LSTM", "units": 2, "return_sequences": True,
                                         "recurrent_dropout": 0.3}], ids=lambda r: str(r))
def test_gradients_through_masks(tmp_path, rnn):
    """Finite differences with random ids (zeros among them: masked steps anywhere)."""
    from test_layer_vocabulary import check_graph_gradients

    import specc
    path = write_spec(tmp_path, {"ids": {"shape": [5], "dtype": "int32"}, "x": {"shape": [5, 2]}}, {
        "embed": {"type": "Embedding", "input_dim": 3, "output_dim": 2, "mask_zero": True, "inputs": "ids"},
        "joined": {"type": "Masking", "mask_value": 0.25, "inputs": "x"},
        "first": {**rnn, "inputs": "embed"},
        "second": {"type": "GRU", "units": 2, "return_sequences": True, "inputs": "joined"},
        "pooled": {"type": "GlobalAveragePooling1D", "inputs": "second"},
    }, ["first", "pooled"])
    graph = specc.load(path).graph
    check_graph_gradients(graph, rows=4)


def test_masks_match_keras(tmp_path, keras):
    """Embedding(mask_zero) -> LSTM(return_sequences) -> Bidirectional(GRU, return_sequences) ->
    GlobalAveragePooling1D, and Masking -> SimpleRNN, against Keras' model of the same weights."""
    import specc
    path = write_spec(tmp_path, {"ids": {"shape": [6], "dtype": "int32"}, "x": {"shape": [6, 2]}}, {
        "embed": {"type": "Embedding", "input_dim": 5, "output_dim": 3, "mask_zero": True, "inputs": "ids"},
        "lstm": {"type": "LSTM", "units": 3, "return_sequences": True, "inputs": "embed"},
        "bi": {"type": "Bidirectional", "layer": {"type": "GRU", "units": 2, "return_sequences": True},
               "inputs": "lstm"},
        "pooled": {"type": "GlobalAveragePooling1D", "inputs": "bi"},
        "masked": {"type": "Masking", "mask_value": 0.5, "inputs": "x"},
        "rnn": {"type": "SimpleRNN", "units": 2, "go_backwards": True, "inputs": "masked"},
    }, ["pooled", "rnn"])
    graph = specc.load(path).graph
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 5, size=(4, 6)).astype(np.int32)
    ids[0, 4:] = 0
    ids[1, :3] = 0
    ids[2, 2] = 0
    x = rng.normal(size=(4, 6, 2)).astype(np.float32)
    x[0, 5:] = 0.5
    x[3, :2] = 0.5
    L = keras.layers
    ids_in, x_in = keras.Input((6,), dtype="int32"), keras.Input((6, 2))
    h = L.Embedding(5, 3, mask_zero=True, name="embed")(ids_in)
    h = L.LSTM(3, return_sequences=True, name="lstm")(h)
    h = L.Bidirectional(L.GRU(2, return_sequences=True), name="bi")(h)
    pooled = L.GlobalAveragePooling1D(name="pooled")(h)
    rnn = L.SimpleRNN(2, go_backwards=True, name="rnn")(L.Masking(0.5, name="masked")(x_in))
    model = keras.Model([ids_in, x_in], [pooled, rnn])
    compare_with_keras(graph, model, {"ids": ids, "x": x}, ["pooled", "rnn"])


def test_a_loss_ignores_masked_positions(tmp_path):
    """Keras' loss masking: the mean over the unmasked positions of a masked sequence output, each sample's
    weight applying to its positions; evaluate() reports it for a model whose output carries a mask."""
    import specc
    from specc.io.data import Dataset
    from specc.train.losses import LOSSES, masked_sample_weight
    rng = np.random.default_rng(0)
    pred, true = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]], bool)
    sample_weight = np.array([1.0, 2.0, 0.5])
    loss, grad = LOSSES["mse"].model_validate({"type": "mse"})(pred, true, masked_sample_weight(sample_weight, mask))
    per_position = ((pred - true) ** 2).mean(axis=-1) * sample_weight[:, None]
    assert np.isclose(loss, per_position[mask].sum() / mask.sum())
    assert not np.any(grad[~mask])

    model = specc.load(write_spec(tmp_path, {"ids": {"shape": [4], "dtype": "int32"}}, {
        "embed": {"type": "Embedding", "input_dim": 5, "output_dim": 2, "mask_zero": True, "inputs": "ids"},
        "out": {"type": "LSTM", "units": 2, "return_sequences": True, "inputs": "embed"}}, ["out"]))
    ids = np.where(mask, rng.integers(1, 5, size=mask.shape), 0).astype(np.int32)
    targets = true.astype(np.float32)
    predicted = model.predict(ids)["out"]
    expected = ((predicted - targets) ** 2).mean(axis=-1)[mask].mean()
    logs = model.evaluate(Dataset({"ids": ids}, {"out": targets}, None), batch_size=3)
    assert np.isclose(logs["loss"], expected, rtol=1e-5)


def test_bidirectional_takes_a_recurrent_layer_inline(tmp_path):
    found = problems(write_spec(tmp_path, {"x": {"shape": [4, 2]}}, {
        "bi": {"type": "Bidirectional", "layer": "other", "inputs": "x"},
        "bi2": {"type": "Bidirectional", "layer": {"type": "Dense", "units": 3}, "inputs": "x"},
    }, ["bi", "bi2"]))
    assert found == ["layers.bi.layer: Bidirectional takes its recurrent layer inline (`layer: {type: LSTM, ...}`): "
                     "it runs a copy of it in each direction",
                     "layers.bi2.layer: Bidirectional wraps a recurrent layer (GRU, LSTM, SimpleRNN), not Dense"]


def test_masks_pass_through_the_layers_keras_passes_them_through(tmp_path):
    """Embedding(mask_zero) -> Dense -> Dropout -> LayerNormalization -> ReLU -> GRU: the mask reaches the GRU
    through every one of them, so a padded row's output is the row's own, unpadded. Merging layers keep a step
    where every input with a mask keeps it."""
    import specc

    def model(steps: int, name: str):
        folder = tmp_path / name
        folder.mkdir()
        return specc.load(write_spec(folder, {"ids": {"shape": [steps], "dtype": "int32"}}, {
            "embed": {"type": "Embedding", "input_dim": 7, "output_dim": 4, "mask_zero": True, "inputs": "ids"},
            "dense": {"type": "Dense", "units": 4, "inputs": "embed"},
            "dropped": {"type": "Dropout", "rate": 0.5, "inputs": "dense"},
            "normed": {"type": "LayerNormalization", "inputs": "dropped"},
            "relu": {"type": "ReLU", "inputs": "normed"},
            "gru": {"type": "GRU", "units": 3, "inputs": "relu"},
        }, ["gru"]))

    padded, alone = model(6, "padded"), model(3, "alone")
    rng = np.random.default_rng(1)
    padded.params.values[...] = rng.normal(scale=0.5, size=padded.params.values.size).astype(np.float32)
    alone.params.values[...] = padded.params.values
    row = np.array([3, 1, 5], np.int32)
    batch = np.array([[0, 0, 0, *row], [*row, 0, 0, 0]], np.int32)
    outputs = padded.predict({"ids": batch})["gru"]
    own = alone.predict({"ids": row[None]})["gru"][0]
    np.testing.assert_allclose(outputs, [own, own], rtol=1e-5, atol=1e-6)

    from specc.layers import LAYERS
    first, second = np.array([[True, True, False]]), np.array([[False, True, True]])
    for merge in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        layer = LAYERS[merge](type=merge)
        np.testing.assert_array_equal(layer.compute_mask([], [first, second]), [[False, True, False]])
        np.testing.assert_array_equal(layer.compute_mask([], [None, second]), second)
