"""Pooling and reshaping layers beyond the Keras comparisons of tests/layer_cases: shape errors as `specc
validate` reports them, ties in max pooling, hand-computed values, dtypes, views and thread splits."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_layer_vocabulary import check_graph_gradients

import specc
from specc.layers import LAYERS
from specc.runtime import workers
from support import run


def layer(entry: dict):
    return LAYERS[entry["type"]].model_validate(entry)


def step(entry: dict, x: np.ndarray, dy: np.ndarray | None = None):
    """(y, dx) of one forward and backward pass; dy defaults to ones."""
    config = layer(entry)
    y, cache = config.forward({}, [x], training=False)
    (dx,) = config.backward({}, {}, cache, np.ones_like(y) if dy is None else dy)
    return y, dx


def write_spec(tmp_path, layers: dict, shape: list, outputs: list | None = None):
    """A spec of these layers, one line each (in JSON's flow style, which is YAML)."""
    lines = ["specc: 1", "name: t", f"inputs: {{x: {{shape: {shape}}}}}", "layers:",
             *[f"  {name}: {json.dumps(entry)}" for name, entry in layers.items()],
             f"outputs: {json.dumps(outputs or [list(layers)[-1]])}", "compile: {loss: mse}"]
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- shape errors, located at the entry ------------------------------------------------------------

@pytest.mark.parametrize("entry, shape, parts", [
    ({"type": "Reshape", "target_shape": [5, 3]}, [3, 4],
     ["cannot reshape (None, 3, 4) (12 values) into target_shape [5, 3] (15 values)"]),
    ({"type": "Reshape", "target_shape": [5, -1]}, [3, 4],
     ["cannot reshape (None, 3, 4) (12 values) into target_shape [5, -1]", "12 is not a multiple of 5"]),
    ({"type": "MaxPooling1D"}, [8], ["MaxPooling1D needs sequences shaped (steps, channels), got (None, 8)",
                                     "shape [8, 1]"]),
    ({"type": "GlobalAveragePooling1D"}, [8], ["GlobalAveragePooling1D needs sequences", "shape [8, 1]"]),
    ({"type": "GlobalMaxPooling2D"}, [4, 4], ["GlobalMaxPooling2D needs images", "shape [4, 4, 1]"]),
    ({"type": "AveragePooling2D", "pool_size": 3}, [2, 5, 1], ["pool_size 3x3 is larger", "padding: same"]),
    ({"type": "AveragePooling1D", "pool_size": 4}, [3, 2], ["pool_size 4 is longer than its input (None, 3, 2)"]),
    ({"type": "Permute", "dims": [2, 1]}, [2, 3, 4], ["dims [2, 1] reorder 2 axes", "(None, 2, 3, 4) has 3"]),
    ({"type": "RepeatVector", "n": 2}, [3, 4], ["RepeatVector needs vectors", "Flatten"]),
    ({"type": "Cropping1D", "cropping": [2, 1]}, [3, 2], ["crops 2 + 1 steps", "(None, 3, 2) with 3"]),
    ({"type": "Cropping2D", "cropping": [[0, 0], [2, 2]]}, [5, 4, 1], ["crops 2 + 2 columns", "with 4"]),
    ({"type": "UpSampling2D"}, [6, 2], ["UpSampling2D needs images"]),
    ({"type": "ZeroPadding1D"}, [6, 2, 1], ["ZeroPadding1D needs sequences"]),
], ids=lambda v: v["type"] if isinstance(v, dict) else None)
def test_shape_errors_are_located(tmp_path, entry, shape, parts):
    path = write_spec(tmp_path, {"out": {**entry, "inputs": "x"}}, shape)
    result = run("validate", path)
    assert result.returncode == 1
    line = path.read_text().splitlines().index(f"  out: {json.dumps({**entry, 'inputs': 'x'})}") + 1
    assert f"spec.yaml:{line}:8: layers.out: " in result.stdout + result.stderr
    for part in parts:
        assert part in result.stdout + result.stderr


@pytest.mark.parametrize("entry, part", [
    ({"type": "Reshape", "target_shape": [-1, 2, -1]}, "at most one size can be -1"),
    ({"type": "Reshape", "target_shape": [0, 12]}, "every size must be positive, or -1"),
    ({"type": "Permute", "dims": [1, 3]}, "must be a permutation of 1..2"),
    ({"type": "Permute", "dims": [0, 1]}, "greater than 0"),
    ({"type": "UpSampling2D", "interpolation": "bicubic"}, "'bicubic' is not one of: nearest, bilinear"),
    ({"type": "ZeroPadding2D", "padding": [1, 2, 3]}, "at most 2 items"),
    ({"type": "AveragePooling1D"}, "missing required key 'pool_size'"),
])
def test_arguments_are_validated(tmp_path, entry, part):
    path = write_spec(tmp_path, {"out": {**entry, "inputs": "x"}}, [3, 4])
    result = run("validate", path)
    assert result.returncode == 1 and part in result.stdout + result.stderr, result.stdout + result.stderr


# -- what Keras computes, by hand or against Keras where the layer cases cannot show it -------------------

TIES = np.array([1, 1, 0, 2, 2, 2, 3, 3], dtype=np.float32).reshape(1, 8, 1)


def keras_gradient(keras, entry: dict, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The gradient of sum(y * dy) for the Keras layer of the entry, by JAX."""
    jax = pytest.importorskip("jax")
    keras_layer = getattr(keras.layers, entry["type"])(**{k: v for k, v in entry.items() if k != "type"})
    return np.asarray(jax.grad(lambda t: jax.numpy.sum(keras_layer(t) * dy))(x))


@pytest.mark.parametrize("entry", [{"type": "MaxPooling1D", "pool_size": 3, "strides": 1, "padding": "same"},
                                   {"type": "MaxPooling1D", "pool_size": 2},
                                   {"type": "MaxPooling1D", "pool_size": 3, "strides": 2, "padding": "same"}],
                         ids=str)
def test_max_pooling_ties_send_the_gradient_to_the_first_maximum_of_each_window(entry, keras):
    """JAX's (so Keras') gradient of a pooling window with several maxima goes to the first of them."""
    y, dx = step(entry, TIES)
    np.testing.assert_array_equal(dx, keras_gradient(keras, entry, TIES, np.ones_like(y)))


def test_max_pooling_ties_by_hand():
    np.testing.assert_array_equal(step({"type": "MaxPooling1D"}, TIES)[1].ravel(), [1, 0, 0, 1, 1, 0, 1, 0])


@pytest.mark.parametrize("entry, shape", [({"type": "GlobalMaxPooling1D"}, (2, 6, 3)),
                                          ({"type": "GlobalMaxPooling2D", "keepdims": True}, (2, 3, 2, 3))])
def test_global_max_pooling_ties_share_the_gradient(entry, shape, keras):
    """A maximum over whole axes held by k cells gives each 1/k of the gradient, as JAX's does."""
    x = np.random.default_rng(0).integers(0, 3, size=shape).astype(np.float32)  # many ties
    dy = np.random.default_rng(1).normal(size=(shape[0], *layer(entry).output_shape([shape[1:]])))
    dy = dy.astype(np.float32)
    np.testing.assert_allclose(step(entry, x, dy)[1], keras_gradient(keras, entry, x, dy), rtol=1e-6)


def test_average_pooling_same_padding_averages_only_inside_cells():
    x = np.array([1, 2, 3, 4], dtype=np.float64).reshape(1, 4, 1)
    y, dx = step({"type": "AveragePooling1D", "pool_size": 3, "strides": 1, "padding": "same"}, x)
    np.testing.assert_allclose(y.ravel(), [1.5, 2, 3, 3.5])
    np.testing.assert_allclose(dx.ravel(), [1 / 2 + 1 / 3, 1 / 2 + 2 / 3, 2 / 3 + 1 / 2, 1 / 3 + 1 / 2])


def test_bilinear_upsampling_samples_between_cell_centres():
    """Output cell j of a 2x upsampling samples the input at (j + 0.5) / 2 - 0.5; beyond the first and last
    centres the edge cell alone."""
    x = np.array([1.0, 3.0, 7.0]).reshape(1, 1, 3, 1)
    y, dx = step({"type": "UpSampling2D", "size": [1, 2], "interpolation": "bilinear"}, x)
    np.testing.assert_allclose(y.ravel(), [1, 1.5, 2.5, 4, 6, 7])
    np.testing.assert_allclose(dx.ravel(), [1 + 0.75 + 0.25, 0.25 + 0.75 + 0.75 + 0.25, 0.25 + 0.75 + 1])


def test_dense_applies_to_the_last_axis_of_any_rank():
    rng = np.random.default_rng(0)
    config = layer({"type": "Dense", "units": 3})
    weights = {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3)}
    x = rng.normal(size=(2, 3, 2, 4))
    y, _ = config.forward(weights, [x], training=False)
    np.testing.assert_allclose(y, x @ weights["kernel"] + weights["bias"])


# -- arrays: dtypes, views, contiguity, threads -------------------------------------------------------------

ENTRIES = [
    ({"type": "MaxPooling1D", "strides": 1, "padding": "same"}, (5, 3)),
    ({"type": "AveragePooling1D", "pool_size": 2}, (5, 3)),
    ({"type": "AveragePooling2D", "pool_size": 3, "strides": 2, "padding": "same"}, (5, 6, 3)),
    ({"type": "GlobalAveragePooling1D", "keepdims": True}, (5, 3)),
    ({"type": "GlobalAveragePooling2D"}, (4, 5, 3)),
    ({"type": "GlobalMaxPooling1D"}, (5, 3)),
    ({"type": "GlobalMaxPooling2D", "keepdims": True}, (4, 5, 3)),
    ({"type": "Reshape", "target_shape": [-1, 5]}, (5, 3)),
    ({"type": "Permute", "dims": [2, 3, 1]}, (4, 5, 3)),
    ({"type": "RepeatVector", "n": 3}, (5,)),
    ({"type": "UpSampling1D", "size": 3}, (5, 3)),
    ({"type": "UpSampling2D", "size": [2, 3]}, (4, 5, 3)),
    ({"type": "UpSampling2D", "interpolation": "bilinear"}, (4, 5, 3)),
    ({"type": "ZeroPadding1D", "padding": [0, 2]}, (5, 3)),
    ({"type": "ZeroPadding2D", "padding": [[1, 0], [2, 1]]}, (4, 5, 3)),
    ({"type": "Cropping1D"}, (5, 3)),
    ({"type": "Cropping2D", "cropping": [[1, 0], [2, 1]]}, (4, 5, 3)),
]


@pytest.mark.parametrize("entry, shape", ENTRIES, ids=lambda v: v["type"] if isinstance(v, dict) else None)
def test_float32_stays_float32_and_arrays_are_contiguous(entry, shape):
    """Training runs in float32: nothing is promoted; outputs and gradients are C-contiguous whatever the
    input's layout (the numba kernels downstream need it), and match those of a contiguous input."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, *shape)).astype(np.float32)
    config = layer(entry)
    y, dx = step(entry, x, rng.normal(size=(5, *config.output_shape([shape]))).astype(np.float32))
    assert y.dtype == dx.dtype == np.float32
    assert y.shape[1:] == config.output_shape([shape]) and dx.shape == x.shape
    assert y.flags.c_contiguous and dx.flags.c_contiguous
    strided = np.empty((5, *shape[:-1], 2 * shape[-1]), np.float32)[..., ::2]  # every other channel
    strided[...] = x
    y2, _ = config.forward({}, [strided], training=False)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("entry, shape", [e for e in ENTRIES if e[0]["type"] != "MaxPooling1D"]
                         + [({"type": "Flatten"}, (4, 5, 3))],
                         ids=lambda v: v["type"] if isinstance(v, dict) else None)
def test_an_empty_batch_passes(entry, shape):
    """(MaxPooling1D is MaxPooling2D's kernels, which take batches of at least one.)"""
    y, dx = step(entry, np.zeros((0, *shape), np.float32))
    assert y.shape == (0, *layer(entry).output_shape([shape])) and dx.shape == (0, *shape)


def test_reshape_moves_no_values():
    x = np.arange(24.0).reshape(2, 3, 4)
    config = layer({"type": "Reshape", "target_shape": [2, -1, 3]})
    y, cache = config.forward({}, [x], training=False)
    dy = np.ones_like(y)
    assert np.shares_memory(y, x) and np.shares_memory(config.backward({}, {}, cache, dy)[0], dy)


def test_views_and_shared_tensors_keep_gradients_right(tmp_path):
    """A reshaped tensor read by two layers, a permuted one, pooled, cropped, padded and repeated: the
    graph's gradients against finite differences (no backward writes into an array another node reads)."""
    layers = {
        "r": {"type": "Reshape", "target_shape": [4, 6], "inputs": "x"},
        "p": {"type": "Permute", "dims": [2, 1], "inputs": "r"},
        "a": {"type": "MaxPooling1D", "pool_size": 2, "strides": 1, "inputs": "r"},
        "b": {"type": "AveragePooling1D", "pool_size": 2, "padding": "same", "inputs": "p"},
        "c": {"type": "Cropping1D", "cropping": [1, 0], "inputs": "b"},
        "d": {"type": "ZeroPadding1D", "padding": [1, 0], "inputs": "c"},
        "e": {"type": "UpSampling1D", "inputs": "a"},
        "f": {"type": "Reshape", "target_shape": [3, 2, 2], "inputs": "d"},
        "g": {"type": "UpSampling2D", "interpolation": "bilinear", "inputs": "f"},
        "h": {"type": "GlobalMaxPooling2D", "inputs": "g"},
        "i": {"type": "RepeatVector", "n": 2, "inputs": "h"},
        "j": {"type": "Dense", "units": 2, "inputs": "e"},
    }
    graph = specc.load(write_spec(tmp_path, layers, [2, 3, 4], outputs=["i", "j", "r"])).graph
    check_graph_gradients(graph)


@pytest.mark.parametrize("entry, shape", [e for e in ENTRIES if e[0]["type"] in {
    "AveragePooling2D", "GlobalMaxPooling2D", "UpSampling2D"}], ids=str)
def test_threads_split_images_same_results(entry, shape):
    """However many threads take the images, the results are the same numbers."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, *shape)).astype(np.float32)
    dy = rng.normal(size=(7, *layer(entry).output_shape([shape]))).astype(np.float32)
    results = []
    for threads in [1, 2, 3]:
        with workers.split_over(threads):
            results.append(step(entry, x, dy))
    for y, dx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])
