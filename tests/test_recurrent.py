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
