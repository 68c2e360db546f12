"""The attention layers beyond the Keras comparisons of tests/layer_cases/attention.py: shape errors located at
the entry, the causal mask, the attention probabilities as a second output, dropout statistics, a numpy
reference where Keras on JAX cannot compute (value_dim != key_dim), and PositionEmbedding against numpy and
Keras-Hub."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from test_layer_vocabulary import check_graph_gradients, random_parameters

import specc
from specc.layers import Training
from specc.runtime.parameters import Parameters
from support import run


def write(tmp_path, layers: dict, inputs: dict, outputs: list, name: str = "spec") -> str:
    spec = {"specc": 1, "name": "attention", "inputs": {k: {"shape": list(v)} for k, v in inputs.items()},
            "layers": layers, "outputs": outputs, "compile": {"loss": "mse"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    return str(path)


def graph_of(tmp_path, entry: dict, *shapes, outputs=("att",)):
    inputs = {f"x{i}": s for i, s in enumerate(shapes)}
    layers = {"att": {**entry, "inputs": list(inputs)}}
    return specc.load(write(tmp_path, layers, inputs, list(outputs))).graph


def batch(graph, rows: int = 3, seed: int = 0, dtype=np.float64) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(rows, *shape)).astype(dtype) for name, shape in graph.inputs.items()}


MHA = {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3}


# -- errors a user can act on, at the entry ----------------------------------------------------------------

@pytest.mark.parametrize("entry, shapes, said, key", [
    (MHA, [(4, 5), (3, 6), (2, 6)], "the key (None, 2, 6) and the value (None, 3, 6) must have the same number "
                                    "of steps", "layers.att"),
    (MHA, [(4, 5), (6,)], "the value must be a sequence of shape (None, steps, features), not (None, 6)",
     "layers.att"),
    (MHA, [(4, 5)] * 4, "MultiHeadAttention takes [query, value] or [query, value, key], got 4 inputs",
     "layers.att.inputs"),
    ({**MHA, "attention_axes": [1, 2]}, [(4, 5), (3, 5)], "only attention over the steps axis is supported",
     "layers.att.attention_axes"),
    ({"type": "Attention"}, [(4, 5), (3, 2)], "the query (None, 4, 5) and the key (None, 3, 2) must have as many "
                                              "features", "layers.att"),
    ({"type": "PositionEmbedding", "sequence_length": 3}, [(4, 5)],
     "an input of 4 steps is longer than sequence_length 3", "layers.att"),
])
def test_shape_errors_name_the_entry(tmp_path, entry, shapes, said, key):
    inputs = {f"x{i}": s for i, s in enumerate(shapes)}
    names = list(inputs)
    path = write(tmp_path, {"att": {**entry, "inputs": names[0] if len(names) == 1 else names}}, inputs, ["att"])
    result = run("validate", path)
    assert result.returncode == 1
    assert f": {key}: " in result.stdout + result.stderr
    assert said in result.stdout + result.stderr


def test_output_shape_is_the_keras_key(tmp_path):
    """MultiHeadAttention's `output_shape` argument is spelled as in Keras, and only so."""
    graph = graph_of(tmp_path, {**MHA, "output_shape": [2, 3]}, (4, 5), (3, 5))
    assert graph.shapes["att"] == (4, 2, 3)
    inputs = {"q": (4, 5), "v": (3, 5)}
    path = write(tmp_path, {"att": {**MHA, "projected_shape": 3, "inputs": ["q", "v"]}}, inputs, ["att"])
    assert run("validate", path).returncode == 1


# -- the causal mask --------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", [MHA, {"type": "Attention"}, {"type": "Attention", "score_mode": "concat"},
                                   {"type": "AdditiveAttention"}])
@pytest.mark.parametrize("causal", [True, False])
def test_causal_outputs_ignore_later_steps(tmp_path, entry, causal):
    """With use_causal_mask, changing the value (and key) from step 3 on leaves query steps 0..2 as they were;
    without it, every step sees the change."""
    graph = graph_of(tmp_path, {**entry, "use_causal_mask": causal}, (5, 4), (5, 4))
    params = random_parameters(graph, np.float64, seed=0)
    inputs = batch(graph)
    before = graph.forward(params, inputs, training=False)[0]["att"]
    inputs["x1"][:, 3:] += 1.0
    after = graph.forward(params, inputs, training=False)[0]["att"]
    early_changed = not np.allclose(before[:, :3], after[:, :3], rtol=0, atol=1e-12)
    assert early_changed != causal
    assert not np.allclose(before[:, 3:], after[:, 3:])


# -- MultiHeadAttention against numpy ---------------------------------------------------------------------

def mha_reference(w: dict, query, value, key, heads: int, key_dim: int, causal: bool):
    """Keras' MultiHeadAttention in einsum form (inference): projections per head, softmax of the scaled
    dot products with the causal cells removed, the heads' outputs projected together."""
    q = np.einsum("btd,dhk->bthk", query, w["query/kernel"]) + w["query/bias"]
    k = np.einsum("bsd,dhk->bshk", key, w["key/kernel"]) + w["key/bias"]
    v = np.einsum("bsd,dhv->bshv", value, w["value/kernel"]) + w["value/bias"]
    scores = np.einsum("bthk,bshk->bhts", q / np.sqrt(key_dim), k)
    if causal:
        t, s = scores.shape[-2:]
        scores = np.where(np.arange(s)[None, :] <= np.arange(t)[:, None], scores, -np.inf)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = np.einsum("bhts,bshv->bthv", probs, v)
    return np.einsum("bthv,hvo->bto", out, w["attention_output/kernel"]) + w["attention_output/bias"], probs


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_numpy(tmp_path, causal):
    """value_dim apart from key_dim, three inputs (Keras on JAX fails on value_dim != key_dim)."""
    entry = {**MHA, "value_dim": 4, "output_shape": 2, "use_causal_mask": causal, "return_attention_scores": True}
    graph = graph_of(tmp_path, entry, (5, 3), (4, 6), (4, 2), outputs=("att.0", "att.1"))
    params = random_parameters(graph, np.float64, seed=3)
    inputs = batch(graph, seed=3)
    values = graph.forward(params, inputs, training=False)[0]
    weights = params.weights(graph.layers["att"])
    expected, probs = mha_reference(weights, inputs["x0"], inputs["x1"], inputs["x2"], 2, 3, causal)
    np.testing.assert_allclose(values["att.0"], expected, rtol=1e-10)
    np.testing.assert_allclose(values["att.1"], probs, rtol=1e-10, atol=1e-15)


# -- the attention probabilities as a second output ---------------------------------------------------------

SCORED = [MHA, {**MHA, "dropout": 0.3}, {"type": "Attention", "use_scale": True},
          {"type": "Attention", "dropout": 0.3}, {"type": "AdditiveAttention", "use_causal_mask": True}]


@pytest.mark.parametrize("entry", SCORED)
@pytest.mark.parametrize("outputs", [("att.0", "att.1"), ("att.1",)])
def test_attention_scores_gradients(tmp_path, entry, outputs):
    """Gradients through both outputs, or through the probabilities alone (in training: through dropout)."""
    graph = graph_of(tmp_path, {**entry, "return_attention_scores": True}, (4, 3), (5, 3), outputs=outputs)
    check_graph_gradients(graph)


@pytest.mark.parametrize("entry", [MHA, {**MHA, "use_causal_mask": True}, {"type": "Attention"},
                                   {"type": "AdditiveAttention"}])
def test_attention_scores_match_keras(tmp_path, entry, keras):
    graph = graph_of(tmp_path, {**entry, "return_attention_scores": True}, (4, 3), (5, 3),
                     outputs=("att.0", "att.1"))
    params = random_parameters(graph, np.float32, seed=1)
    inputs = batch(graph, rows=2, seed=1, dtype=np.float32)
    ours = graph.forward(params, inputs, training=False)[0]
    arguments = {k: v for k, v in entry.items() if k not in ("type", "use_causal_mask")}
    arguments.update({"kernel_initializer": "zeros"} if entry["type"] == "MultiHeadAttention" else {})
    layer = getattr(keras.layers, entry["type"])(**arguments)
    tensors = [keras.Input((4, 3)), keras.Input((5, 3))]
    call = dict(return_attention_scores=True, use_causal_mask=entry.get("use_causal_mask", False))
    y = layer(*tensors, **call) if entry["type"] == "MultiHeadAttention" else layer(tensors, **call)
    model = keras.Model(tensors, list(y))
    weights = params.weights(graph.layers["att"])
    for variable in layer.weights:
        variable.assign(weights[variable.path.removeprefix(f"{layer.name}/")])
    theirs = model([inputs["x0"], inputs["x1"]], training=False)
    for name, value in zip(("att.0", "att.1"), theirs):
        np.testing.assert_allclose(ours[name], keras.ops.convert_to_numpy(value), rtol=2e-4, atol=2e-5)


# -- dropout on the probabilities ----------------------------------------------------------------------------

def test_dropout_drops_probabilities(tmp_path):
    """Attention over one-hot values returns its probabilities: in training a fraction `dropout` of them is 0
    and the rest scaled by 1 / (1 - dropout); the same step and node draw the same cells, another step
    others; inference drops nothing."""
    rate, steps = 0.3, 40
    graph = graph_of(tmp_path, {"type": "Attention", "dropout": rate}, (steps, 4), (steps, steps), (steps, 4))
    params = random_parameters(graph, np.float64, seed=0)
    inputs = batch(graph, rows=20)
    inputs["x1"] = np.broadcast_to(np.eye(steps), (20, steps, steps)).copy()
    probs = graph.forward(params, inputs, training=False)[0]["att"]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    dropped = graph.forward(params, inputs, Training(step=(1,)))[0]["att"]
    kept = dropped != 0
    assert abs(1 - kept.mean() - rate) < 0.01  # 32000 cells: a standard error of 0.0026
    np.testing.assert_allclose(dropped[kept], probs[kept] / (1 - rate))
    np.testing.assert_array_equal(graph.forward(params, inputs, Training(step=(1,)))[0]["att"], dropped)
    assert not np.array_equal(graph.forward(params, inputs, Training(step=(2,)))[0]["att"] != 0, kept)


def test_multi_head_dropout_keeps_the_expected_output(tmp_path):
    """Dropout is inverted: over many steps, training outputs average to the inference output."""
    graph = graph_of(tmp_path, {**MHA, "dropout": 0.5}, (3, 4), (6, 4))
    params = random_parameters(graph, np.float64, seed=0)
    inputs = batch(graph, rows=2)
    expected = graph.forward(params, inputs, training=False)[0]["att"]
    draws = np.stack([graph.forward(params, inputs, Training(step=(s,)))[0]["att"] for s in range(400)])
    error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected) < 5 * error + 1e-9)
    assert np.all(draws.std(axis=0) > 0)


# -- PositionEmbedding ------------------------------------------------------------------------------------------

def test_position_embedding_matches_numpy(tmp_path):
    """The first `steps` rows of the embeddings, broadcast over the batch: the input's values do not matter;
    their gradient is the sum over the batch of the output's."""
    layers = {"pos": {"type": "PositionEmbedding", "sequence_length": 6, "inputs": "x"}}
    graph = specc.load(write(tmp_path, layers, {"x": (4, 3)}, ["pos"])).graph
    params = random_parameters(graph, np.float64, seed=0)
    embeddings = params.weights(graph.layers["pos"])["embeddings"]
    assert embeddings.shape == (6, 3)
    inputs = batch(graph, rows=5)
    values, tape = graph.forward(params, inputs, training=True)
    np.testing.assert_array_equal(values["pos"], np.broadcast_to(embeddings[:4], (5, 4, 3)))
    dy = np.random.default_rng(1).normal(size=(5, 4, 3))
    params.grads[...] = 0
    (dx,) = graph.backward(params, tape, {"pos": dy.copy()}, need_inputs=(True,))
    grads = params.gradients(graph.layers["pos"])["embeddings"]
    np.testing.assert_allclose(grads[:4], dy.sum(axis=0))
    np.testing.assert_array_equal(grads[4:], 0)
    np.testing.assert_array_equal(dx, 0)


def test_position_embedding_initializer(tmp_path):
    layers = {"pos": {"type": "PositionEmbedding", "sequence_length": 6, "initializer": "ones", "inputs": "x"}}
    graph = specc.load(write(tmp_path, layers, {"x": (4, 3)}, ["pos"])).graph
    params = Parameters(graph, np.float32)
    params.initialize(0)
    np.testing.assert_array_equal(params.weights(graph.layers["pos"])["embeddings"], 1)


# -- Keras' masking: padded steps -------------------------------------------------------------------------------

def masked_spec(tmp_path, entry: dict, steps: int, name: str = "masked", pooled: bool = True) -> str:
    """Ids -> Embedding(mask_zero) -> the attention layer over [query, value] (one embedding each) -> a masked
    average over the steps, both outputs (or else the attention's output and probabilities:
    return_attention_scores)."""
    layers = {"emb_q": {"type": "Embedding", "input_dim": 7, "output_dim": 4, "mask_zero": True, "inputs": "q"},
              "emb_v": {"type": "Embedding", "input_dim": 7, "output_dim": 4, "mask_zero": True, "inputs": "v"},
              "att": {**entry, "inputs": ["emb_q", "emb_v"]}}
    if pooled:
        layers["pooled"] = {"type": "GlobalAveragePooling1D", "inputs": "att"}
    spec = {"specc": 1, "name": name, "inputs": {n: {"shape": [steps], "dtype": "int32"} for n in ("q", "v")},
            "layers": layers, "outputs": ["att", "pooled"] if pooled else ["att.0", "att.1"],
            "compile": {"loss": "mse"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None))
    return str(path)


MASKED = [MHA, {**MHA, "use_causal_mask": True}, {"type": "Attention"}, {"type": "Attention", "use_causal_mask": True},
          {"type": "AdditiveAttention"}]


@pytest.mark.parametrize("entry", MASKED)
def test_padded_batches_give_the_unpadded_numbers(tmp_path, entry):
    """Sequences padded with id 0 give what the same sequences give unpadded, row by row."""
    short, long = (specc.load(masked_spec(tmp_path, entry, steps, f"s{steps}")).graph for steps in (3, 5))
    params = random_parameters(long, np.float64, seed=0)
    short_params = random_parameters(short, np.float64, seed=0)
    short_params.values[...] = params.values  # the same weights: none depends on the number of steps
    rng = np.random.default_rng(0)
    rows = {"q": rng.integers(1, 7, size=(4, 3)), "v": rng.integers(1, 7, size=(4, 3))}
    padded = {name: np.pad(ids, ((0, 0), (0, 2))) for name, ids in rows.items()}
    ours = long.forward(params, {k: v.astype(np.int32) for k, v in padded.items()}, training=False)[0]["pooled"]
    alone = short.forward(short_params, {k: v.astype(np.int32) for k, v in rows.items()}, training=False)[0]["pooled"]
    np.testing.assert_allclose(ours, alone, rtol=1e-12)


@pytest.mark.parametrize("entry", MASKED)
@pytest.mark.parametrize("pooled", [True, False])
def test_masked_gradients(tmp_path, entry, pooled):
    """Ids from 0 to 2: many masked steps, some rows with no unmasked value at all."""
    graph = specc.load(masked_spec(tmp_path, {**entry, "return_attention_scores": not pooled}, 5,
                                   pooled=pooled)).graph
    graph.id_limits = lambda name: [3]  # few ids: many padded steps
    check_graph_gradients(graph, rows=6)


@pytest.mark.parametrize("entry", MASKED)
def test_masked_attention_matches_keras(tmp_path, entry, keras):
    """Masked query and value steps as Keras treats them, through to a masked average. Left out: rows whose
    values are all masked (there Keras' Attention gives float32's rounding of scores - 1e9), and the output
    at masked query steps of MultiHeadAttention, which Keras computes two ways (its masked softmax gives
    them no weights, as specc does; on JAX without dropout it calls jax.nn.dot_product_attention, which
    weighs every step alike): the mask it carries marks them as padding."""
    graph = specc.load(masked_spec(tmp_path, entry, 5)).graph
    params = random_parameters(graph, np.float32, seed=1)
    rng = np.random.default_rng(1)
    ids = {"q": rng.integers(0, 4, size=(6, 5)), "v": rng.integers(0, 4, size=(6, 5))}
    ids["v"][:, 0] = 1
    ids["q"][:, 0] = 1  # every row keeps a step, so the masked average has something to average
    ids = {k: v.astype(np.int32) for k, v in ids.items()}
    ours = graph.forward(params, ids, training=False)[0]

    L = keras.layers
    q, v = keras.Input((5,), dtype="int32"), keras.Input((5,), dtype="int32")
    emb_q, emb_v = L.Embedding(7, 4, mask_zero=True), L.Embedding(7, 4, mask_zero=True)
    arguments = {k: val for k, val in entry.items() if k not in ("type", "use_causal_mask")}
    layer = getattr(L, entry["type"])(**arguments)
    call = {"use_causal_mask": entry.get("use_causal_mask", False)}
    attended = (layer(emb_q(q), emb_v(v), **call) if entry["type"] == "MultiHeadAttention"
                else layer([emb_q(q), emb_v(v)], **call))
    model = keras.Model([q, v], [attended, L.GlobalAveragePooling1D()(attended)])
    weights = {f"{name}/": params.weights(graph.layers[name]) for name in ("emb_q", "emb_v", "att")}
    for keras_layer, ours_of in ((emb_q, "emb_q/"), (emb_v, "emb_v/"), (layer, "att/")):
        for variable in keras_layer.weights:
            variable.assign(weights[ours_of][variable.path.removeprefix(f"{keras_layer.name}/")])
    theirs = model([ids["q"], ids["v"]], training=False)
    theirs = [keras.ops.convert_to_numpy(value) for value in theirs]
    np.testing.assert_allclose(ours["pooled"], theirs[1], rtol=2e-4, atol=2e-5)
    steps = ids["q"] != 0 if entry["type"] == "MultiHeadAttention" else slice(None)
    np.testing.assert_allclose(ours["att"][steps], theirs[0][steps], rtol=2e-4, atol=2e-5)
