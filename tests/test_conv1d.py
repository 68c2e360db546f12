"""Conv1D: forward against an explicit-loop reference in every algorithm, the same numbers as Conv2D on a
one-row image, causality, thread independence, and shape errors reported where the spec says them."""
import math

import numpy as np
import pytest
from gradcheck import check_layer_gradients
from pydantic import ValidationError

from specc.layers import conv as conv_module
from specc.layers.conv import Conv1D, Conv2D
from specc.runtime import workers
from support import run


def conv1d(**config):
    return Conv1D(type="Conv1D", **config)


ACTS = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}


def conv1d_reference(x, kernel, bias, strides=1, padding="valid", dilation_rate=1, groups=1, activation="linear"):
    """Keras' Conv1D as its documentation states it: causal pads dilation * (k - 1) zeros before, then
    valid; same pads max((out - 1) * s + span - steps, 0), half before (rounded down)."""
    n, steps, channels = x.shape
    k, group_channels, filters = kernel.shape
    span = dilation_rate * (k - 1) + 1
    if padding == "causal":
        x = np.concatenate([np.zeros((n, span - 1, channels)), x], axis=1)
        padding = "valid"
    if padding == "valid":
        out, before = (x.shape[1] - span) // strides + 1, 0
    else:
        out = math.ceil(steps / strides)
        before = max((out - 1) * strides + span - steps, 0) // 2
    per_group = filters // groups
    y = np.zeros((n, out, filters))
    for t in range(out):
        for tap in range(k):
            s = t * strides - before + tap * dilation_rate
            if not 0 <= s < x.shape[1]:
                continue  # a padding zero
            for f in range(filters):
                g = f // per_group
                y[:, t, f] += x[:, s, g * group_channels:(g + 1) * group_channels] @ kernel[tap, :, f]
    if bias is not None:
        y += bias
    return ACTS[activation](y)


@pytest.fixture(params=["direct", "im2col"])
def path(request, monkeypatch):
    """Few filters convolve directly, the rest through im2col (a 1x1 kernel: a matmul on the pixels): the
    same configurations both ways."""
    monkeypatch.setattr(conv_module, "DIRECT_FILTERS", 10 ** 9 if request.param == "direct" else 0)
    return request.param


CONFIGS = [  # (input shape, config)
    ((9, 3), dict(filters=4, kernel_size=3)),
    ((9, 3), dict(filters=4, kernel_size=3, padding="same", activation="relu")),
    ((8, 3), dict(filters=4, kernel_size=4, padding="same", strides=3)),  # uneven padding, strided
    ((9, 2), dict(filters=3, kernel_size=3, padding="causal")),
    ((9, 2), dict(filters=3, kernel_size=2, padding="causal", dilation_rate=3, activation="tanh")),
    ((10, 2), dict(filters=3, kernel_size=3, padding="causal", strides=2)),
    ((11, 2), dict(filters=3, kernel_size=3, dilation_rate=2)),
    ((11, 2), dict(filters=3, kernel_size=3, padding="same", dilation_rate=4)),  # span 9 of 11 steps
    ((7, 6), dict(filters=4, kernel_size=3, groups=2, use_bias=False)),
    ((7, 6), dict(filters=6, kernel_size=2, strides=2, padding="same", groups=3)),
    ((7, 6), dict(filters=6, kernel_size=1, strides=2, groups=6)),  # pointwise, depthwise
    ((7, 6), dict(filters=4, kernel_size=7)),  # the kernel as long as the input
]


def random_case(shape, config, seed, batch=3):
    rng = np.random.default_rng(seed)
    layer = conv1d(**config)
    weights = {name: rng.normal(size=s) for name, s in layer.weight_shapes([shape]).items()}
    x = rng.normal(size=(batch, *shape))
    return layer, weights, x, rng.normal(size=(batch, *layer.output_shape([shape])))


@pytest.mark.parametrize("shape,config", CONFIGS, ids=str)
def test_forward_matches_reference(shape, config, path):
    layer, weights, x, _ = random_case(shape, config, seed=1)
    y, _ = layer.forward(weights, [x], training=False)
    settings = {k: v for k, v in config.items() if k not in ("filters", "kernel_size", "use_bias")}  # in the weights
    expected = conv1d_reference(x, weights["kernel"], weights.get("bias"), **settings)
    assert y.shape == expected.shape == (3, *layer.output_shape([shape]))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,config", CONFIGS[::2], ids=str)
def test_gradients(shape, config, path):
    check_layer_gradients(conv1d(**config), [shape], batch=2)


def conv_step(layer, weights, x, dy):
    grads = {k: np.zeros_like(v) for k, v in weights.items()}
    y, cache = layer.forward(weights, [x], training=True)
    (dx,) = layer.backward(weights, grads, cache, dy)
    return [y, dx, *(grads[k] for k in sorted(grads))]


@pytest.mark.parametrize("shape,config", [c for c in CONFIGS if c[1].get("padding") != "causal"], ids=str)
def test_same_as_conv2d_on_one_row_images(shape, config, path):
    """A sequence is an image one row high: Conv2D with a (1, k) window computes the same output and gradients."""
    layer, weights, x, dy = random_case(shape, config, seed=2)
    ones = {key: [1, config[key]] for key in ("kernel_size", "strides", "dilation_rate") if key in config}
    image = Conv2D(type="Conv2D", **{**config, **ones})
    image_weights = {**weights, "kernel": weights["kernel"][np.newaxis]}
    ours = conv_step(layer, weights, x, dy)
    theirs = conv_step(image, image_weights, x[:, np.newaxis], dy[:, np.newaxis])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.reshape(a.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", [dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2),
                                    dict(filters=12, kernel_size=4, padding="causal", strides=2)], ids=str)
def test_causal_output_never_sees_the_future(config):
    layer, weights, x, _ = random_case((12, 2), config, seed=3)
    y, _ = layer.forward(weights, [x], training=False)
    strides = config.get("strides", 1)
    for t in range(12):
        later = x.copy()
        later[:, t + 1:] = np.random.default_rng(t).normal(size=later[:, t + 1:].shape)
        changed, _ = layer.forward(weights, [later], training=False)
        seen = t // strides + 1  # outputs whose last tap is at or before step t
        np.testing.assert_array_equal(changed[:, :seen], y[:, :seen])
        if seen < y.shape[1]:
            assert not np.allclose(changed[:, seen:], y[:, seen:])


@pytest.mark.parametrize("config", [dict(filters=12, kernel_size=7, strides=3, activation="relu"),
                                    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2, groups=2),
                                    dict(filters=12, kernel_size=3, padding="same", groups=4)], ids=str)
def test_threads_split_sequences_same_results_every_time(config, monkeypatch):
    rng = np.random.default_rng(4)
    layer = conv1d(**config)
    weights = {k: rng.normal(size=s).astype(np.float32) for k, s in layer.weight_shapes([(20, 4)]).items()}
    x = rng.normal(size=(5, 20, 4)).astype(np.float32)
    dy = rng.normal(size=(5, *layer.output_shape([(20, 4)]))).astype(np.float32)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # a chunk per sequence: several per thread
    results = {}
    for threads in [1, 2, 3]:
        with workers.split_over(threads):
            results[threads] = conv_step(layer, weights, x, dy)
            for a, b in zip(results[threads], conv_step(layer, weights, x, dy)):
                np.testing.assert_array_equal(a, b)
    for threads in [2, 3]:
        for a, b in zip(results[1], results[threads]):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_shapes_of_the_keras_io_models():
    """The text classifier (500 token embeddings, two Conv1D(128, 7, strides 3)) and the timeseries FCN."""
    first = conv1d(filters=128, kernel_size=7, strides=3, activation="relu")
    assert first.output_shape([(500, 128)]) == (165, 128)
    assert first.output_shape([(165, 128)]) == (53, 128)
    assert first.weight_shapes([(500, 128)]) == {"kernel": (7, 128, 128), "bias": (128,)}
    assert conv1d(filters=64, kernel_size=3, padding="same").output_shape([(500, 1)]) == (500, 64)
    assert conv1d(filters=8, kernel_size=5, padding="causal", strides=2).output_shape([(9, 3)]) == (5, 8)
    assert conv1d(filters=8, kernel_size=2, groups=4, use_bias=False).weight_shapes([(9, 12)]) == {
        "kernel": (2, 3, 8)}


def test_configuration_is_validated():
    for bad in [dict(kernel_size=0), dict(kernel_size=[3]), dict(kernel_size=3, padding="full"),
                dict(kernel_size=3, dilation_rate=0), dict(kernel_size=3, groups=0), dict(kernel_size=3, strides=0)]:
        with pytest.raises(ValidationError):
            conv1d(filters=2, **bad)


SPEC = """\
specc: 1
inputs:
  x: {shape: [40, 6]}
layers:
  conv: {type: Conv1D, filters: 4, kernel_size: 3, inputs: x}
outputs: [conv]
compile: {loss: mse}
"""


@pytest.mark.parametrize("edit, parts", [
    (("shape: [40, 6]", "shape: [40]"), ["Conv1D needs sequences shaped (steps, channels), got (None, 40)",
                                         "e.g. shape [40, 1]"]),
    (("kernel_size: 3", "kernel_size: 41"), ["kernel_size 41 is larger than its input (None, 40, 6) with padding "
                                             "'valid'", "padding: same"]),
    (("kernel_size: 3", "kernel_size: 3, dilation_rate: 20"), ["kernel_size 3 (dilated, it spans 41)"]),
    (("kernel_size: 3", "kernel_size: 3, groups: 4"), ["groups 4 does not divide its 6 input channels"]),
    (("kernel_size: 3", "kernel_size: 3, groups: 3"), ["groups 3 does not divide its 4 filters"]),
    (("kernel_size: 3", "kernel_size: 3, strides: 2, dilation_rate: 2"),
     ["strides 2 with dilation_rate 2", "set one of them to 1"]),
    (("{type: Conv1D", "{type: Conv2D"), ["Conv2D needs images shaped (height, width, channels)"]),
], ids=["vector", "kernel-larger", "dilated-larger", "groups-channels", "groups-filters", "strided-dilated",
        "conv2d-on-sequence"])
def test_validate_reports_shape_errors_at_the_layer(tmp_path, edit, parts):
    assert run("validate", write(tmp_path, SPEC)).returncode == 0
    path = write(tmp_path, SPEC.replace(*edit))
    result = run("validate", path)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert line.startswith(f"{path}:5:") and ": layers.conv: " in line, line  # the entry's line
    for part in parts:
        assert part in line, line
    kind = "Conv2D" if "Conv2D" in edit[1] else "Conv1D"
    assert line.count(kind) == 1, line  # the layer type is said once


def write(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_padding_same_with_even_kernel_and_causal_by_hand():
    """Hand-computed on 1 2 3 4 5 with a kernel of ones: same pads 1 before and 2 after a window of 4;
    causal pads 3 before."""
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)
    ones = {"kernel": np.ones((4, 1, 1))}
    y, _ = conv1d(filters=1, kernel_size=4, padding="same", use_bias=False).forward(ones, [x], False)
    np.testing.assert_array_equal(y.ravel(), [6, 10, 14, 12, 9])
    y, _ = conv1d(filters=1, kernel_size=4, padding="causal", use_bias=False).forward(ones, [x], False)
    np.testing.assert_array_equal(y.ravel(), [1, 3, 6, 10, 14])
    y, _ = conv1d(filters=1, kernel_size=2, padding="causal", dilation_rate=2, use_bias=False).forward(
        {"kernel": np.ones((2, 1, 1))}, [x], False)
    np.testing.assert_array_equal(y.ravel(), [1, 2, 4, 6, 8])
