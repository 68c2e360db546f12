"""Conv2D and MaxPooling2D: gradients, forward against explicit-loop references, shapes, configuration.
(Conv1D, which runs on the same algorithms, has tests/test_conv1d.py.)"""
import math

import numpy as np
import pytest
from gradcheck import check_layer_gradients
from pydantic import ValidationError

from specc.layers import LAYERS, ShapeError
from specc.layers import conv as conv_module
from specc.layers.conv import Conv2D, MaxPooling2D


def conv(**config):
    return Conv2D(type="Conv2D", **config)


def pool(**config):
    return MaxPooling2D(type="MaxPooling2D", **config)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# --- slow, obviously correct references -------------------------------------------------------------

def keras_axis(size, window, stride, padding):
    """(output size, padding before) along one axis, as TensorFlow documents it."""
    if padding == "valid":
        return math.floor((size - window) / stride) + 1, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


ACTS = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def conv_reference(x, kernel, bias, strides, padding, activation, dilation_rate=1, groups=1):
    """Kernel cell (a, d) of output (i, j) reads input (i * sh - top + a * dh, j * sw - left + d * dw); the
    dilated window spans (k - 1) * dilation + 1 cells. Filter f of group g = f // (F / groups) reads that
    group's channels, g * C / groups + ch for the kernel's channel ch."""
    n, h, w, c = x.shape
    kh, kw, group_c, f = kernel.shape
    (sh, sw), (dh, dw) = pair(strides), pair(dilation_rate)
    oh, top = keras_axis(h, (kh - 1) * dh + 1, sh, padding)
    ow, left = keras_axis(w, (kw - 1) * dw + 1, sw, padding)
    group_f = f // groups
    y = np.zeros((n, oh, ow, f))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    for d in range(kw):
                        r, s = i * sh - top + a * dh, j * sw - left + d * dw
                        if 0 <= r < h and 0 <= s < w:  # outside: zero padding adds nothing
                            for fo in range(f):
                                g = fo // group_f
                                for ch in range(group_c):
                                    y[b, i, j, fo] += x[b, r, s, g * group_c + ch] * kernel[a, d, ch, fo]
    if bias is not None:
        y += bias
    return ACTS[activation](y)


def pool_reference(x, pool_size, strides, padding):
    n, h, w, c = x.shape
    ph, pw = pair(pool_size)
    sh, sw = pair(pool_size if strides is None else strides)
    oh, top = keras_axis(h, ph, sh, padding)
    ow, left = keras_axis(w, pw, sw, padding)
    y = np.full((n, oh, ow, c), -np.inf)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for a in range(ph):
                    for d in range(pw):
                        r, s = i * sh - top + a, j * sw - left + d
                        if 0 <= r < h and 0 <= s < w:  # padding cells are never candidates
                            y[b, i, j] = np.maximum(y[b, i, j], x[b, r, s])
    return y


def random_weights(layer, input_shape, rng):
    shapes = layer.weight_shapes([input_shape])
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


# --- (a) gradients ---------------------------------------------------------------------------------

CONV_CONFIGS = [
    dict(filters=3, kernel_size=3),
    dict(filters=3, kernel_size=3, padding="same", activation="relu"),
    dict(filters=2, kernel_size=3, strides=2),
    dict(filters=2, kernel_size=3, strides=2, padding="same", activation="relu"),
    dict(filters=2, kernel_size=[2, 3], strides=[1, 2], padding="same"),
    dict(filters=2, kernel_size=[3, 1], padding="valid", use_bias=False, activation="tanh"),
    dict(filters=2, kernel_size=2, padding="same", use_bias=False),
    dict(filters=3, kernel_size=1, activation="relu"),
    dict(filters=2, kernel_size=1, strides=2, padding="same"),
    dict(filters=2, kernel_size=2, dilation_rate=[2, 3], activation="tanh"),
    dict(filters=3, kernel_size=3, padding="same", dilation_rate=2),
    dict(filters=4, kernel_size=[2, 3], strides=[2, 1], groups=2, padding="same"),
    dict(filters=2, kernel_size=3, groups=2, dilation_rate=[1, 2], use_bias=False),
    dict(filters=4, kernel_size=1, strides=2, groups=2),
]


@pytest.fixture(params=["direct", "im2col", "winograd"])
def path(request, monkeypatch):
    """Layers with few filters convolve directly, 3x3 stride-1 layers with many channels by Winograd,
    the rest through im2col: the same configurations through im2col, and through Winograd where their
    kernel allows it."""
    if request.param != "direct":
        monkeypatch.setattr(conv_module, "DIRECT_FILTERS", 0)
    monkeypatch.setattr(conv_module, "WINOGRAD_CHANNELS", 1 if request.param == "winograd" else 10 ** 9)
    return request.param


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=str)
def test_conv_gradients(config, path):
    check_layer_gradients(conv(**config), [(5, 6, 2)], batch=2)


def conv_step(layer, weights, x, dy):
    grads = {k: np.zeros_like(v) for k, v in weights.items()}
    y, cache = layer.forward(weights, [x], training=True)
    (dx,) = layer.backward(weights, grads, cache, dy)
    return [y, dx, *(grads[k] for k in sorted(grads))]


def random_case(shape, config, seed, batch):
    """A layer, random weights, a batch of inputs of `shape` and a gradient for its output."""
    rng = np.random.default_rng(seed)
    layer = conv(**config)
    weights = random_weights(layer, shape, rng)
    x = rng.normal(size=(batch, *shape))
    return layer, weights, x, rng.normal(size=(batch, *layer.output_shape([shape])))


@pytest.mark.parametrize("shape,config", [
    ((9, 8, 3), dict(filters=3, kernel_size=3, padding="same")),
    ((9, 8, 3), dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu")),
    ((9, 8, 3), dict(filters=2, kernel_size=[2, 3], strides=[1, 2], padding="valid", activation="tanh")),
    ((9, 8, 3), dict(filters=5, kernel_size=5, padding="same", use_bias=False)),
    ((4, 4, 1), dict(filters=8, kernel_size=3, strides=3, padding="same")),
    ((9, 8, 3), dict(filters=3, kernel_size=3, padding="same", dilation_rate=[2, 3], activation="relu")),
    ((9, 8, 4), dict(filters=6, kernel_size=[3, 2], strides=2, groups=2)),
    ((9, 8, 4), dict(filters=4, kernel_size=3, padding="same", groups=4, dilation_rate=2, use_bias=False)),
], ids=str)
def test_direct_conv_equals_im2col(shape, config, monkeypatch):
    """The direct kernels compute what the im2col path does: output, input, kernel and bias gradients."""
    layer, weights, x, dy = random_case(shape, config, seed=7, batch=5)
    assert layer._direct(shape[2])
    direct = conv_step(layer, weights, x, dy)
    monkeypatch.setattr(conv_module, "DIRECT_FILTERS", 0)
    assert not layer._direct(shape[2])
    for a, b in zip(direct, conv_step(layer, weights, x, dy)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


WINOGRAD_CASES = [  # (input shape, config): odd and even sizes, both paddings, a tile row/column cut off
    ((9, 8, 16), dict(filters=12, kernel_size=3)),
    ((9, 8, 16), dict(filters=12, kernel_size=3, padding="same", activation="relu")),
    ((6, 7, 20), dict(filters=9, kernel_size=3, padding="same", use_bias=False, activation="tanh")),
    ((3, 3, 16), dict(filters=10, kernel_size=3)),  # one output pixel
]


@pytest.mark.parametrize("shape,config", WINOGRAD_CASES, ids=str)
def test_winograd_equals_im2col(shape, config, monkeypatch):
    """Winograd's F(2x2, 3x3) computes what im2col does: output, input, kernel and bias gradients, in
    float64 to rounding, with chunks of any size, and in float32 within float32's precision."""
    layer, weights, x, dy = random_case(shape, config, seed=9, batch=3)
    assert layer._winograd(shape[2])
    results = []
    for budget in [1 << 30, 1, 5 * 16 * (shape[2] + config["filters"]) * 8]:  # one chunk, one tile, five
        monkeypatch.setattr(conv_module, "WINOGRAD_CHUNK_BYTES", budget)
        results.append(conv_step(layer, weights, x, dy))
    single = conv_step(layer, {k: v.astype(np.float32) for k, v in weights.items()}, x.astype(np.float32),
                       dy.astype(np.float32))
    monkeypatch.setattr(conv_module, "WINOGRAD_CHANNELS", 10 ** 9)
    assert not layer._winograd(shape[2])
    expected = conv_step(layer, weights, x, dy)
    for result in results:
        for a, b in zip(result, expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(single, expected):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


@pytest.mark.parametrize("config", [dict(filters=12, kernel_size=3, padding="same", activation="relu"),
                                    dict(filters=12, kernel_size=1, strides=2),
                                    dict(filters=3, kernel_size=3, strides=2, padding="same"),
                                    dict(filters=12, kernel_size=3, padding="same", groups=2, dilation_rate=2)],
                         ids=str)
def test_threads_split_images_same_results_every_time(config, path, monkeypatch):
    """However many threads take the images, the results agree; with a given count they are bit-identical."""
    from specc.runtime import workers
    rng = np.random.default_rng(8)
    layer = conv(**config)
    weights = {k: v.astype(np.float32) for k, v in random_weights(layer, (7, 6, 4), rng).items()}
    x = rng.normal(size=(5, 7, 6, 4)).astype(np.float32)
    dy = rng.normal(size=(5, *layer.output_shape([(7, 6, 4)]))).astype(np.float32)
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # a chunk per output row: many per thread
    monkeypatch.setattr(conv_module, "WINOGRAD_CHUNK_BYTES", 1)  # a chunk per tile
    results = {}
    for threads in [1, 2, 3]:
        with workers.split_over(threads):
            results[threads] = conv_step(layer, weights, x, dy)
            for a, b in zip(results[threads], conv_step(layer, weights, x, dy)):
                np.testing.assert_array_equal(a, b)
    for threads in [2, 3]:
        for a, b in zip(results[1], results[threads]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


POOL_CONFIGS = [
    dict(),
    dict(pool_size=2, strides=1),
    dict(pool_size=2, padding="same"),
    dict(pool_size=3, strides=1, padding="same"),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=[2, 3], strides=[1, 2], padding="valid"),
]


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=str)
def test_pool_gradients(config):
    check_layer_gradients(pool(**config), [(5, 7, 2)], batch=2)


def test_chunked_conv_matches_one_chunk(monkeypatch):
    """Chunks of one output row, and chunks spanning image boundaries, give the same results."""
    rng = np.random.default_rng(1)
    for config in [dict(filters=4, kernel_size=3, padding="same", activation="relu"),
                   dict(filters=4, kernel_size=1, activation="relu")]:
        layer = conv(**config)
        weights = random_weights(layer, (5, 6, 3), rng)
        x, dy = rng.normal(size=(3, 5, 6, 3)), rng.normal(size=(3, 5, 6, 4))
        results = []
        for budget in [1 << 30, 1, 3 * 6 * (27 + 4) * 8]:  # one chunk; one row; three rows
            monkeypatch.setattr(conv_module, "CHUNK_BYTES", budget)
            grads = {k: np.zeros_like(v) for k, v in weights.items()}
            y, cache = layer.forward(weights, [x], training=True)
            (dx,) = layer.backward(weights, grads, cache, dy)
            results.append((y, dx, grads["kernel"], grads["bias"]))
        for other in results[1:]:
            for a, b in zip(results[0], other):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --- (b) forward against the references -----------------------------------------------------------

FORWARD_CASES = [  # (input shape, config)
    ((7, 6, 3), dict(filters=4, kernel_size=3)),
    ((7, 6, 3), dict(filters=4, kernel_size=3, padding="same", activation="relu")),
    ((7, 7, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),  # odd size, stride 2
    ((6, 6, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),  # pad 1: all after
    ((5, 6, 2), dict(filters=3, kernel_size=2, padding="same", activation="tanh")),  # even kernel
    ((5, 7, 2), dict(filters=3, kernel_size=[4, 2], strides=[2, 3], padding="same")),
    ((5, 7, 2), dict(filters=3, kernel_size=[4, 2], strides=[2, 3], padding="valid")),
    ((6, 5, 3), dict(filters=2, kernel_size=1, use_bias=False)),
    ((7, 5, 3), dict(filters=2, kernel_size=1, strides=2, padding="same", activation="relu")),
    ((3, 3, 2), dict(filters=2, kernel_size=3, padding="same")),  # kernel as large as the input
    ((7, 8, 2), dict(filters=3, kernel_size=3, dilation_rate=2)),
    ((7, 8, 2), dict(filters=3, kernel_size=[2, 3], padding="same", dilation_rate=[3, 2], activation="relu")),
    ((5, 8, 2), dict(filters=2, kernel_size=[1, 3], padding="same", dilation_rate=[1, 4])),  # span 9 > 8
    ((6, 7, 4), dict(filters=6, kernel_size=3, strides=2, padding="same", groups=2)),
    ((6, 7, 4), dict(filters=4, kernel_size=2, groups=4, use_bias=False, activation="tanh")),  # depthwise
    ((6, 7, 6), dict(filters=6, kernel_size=1, strides=[2, 1], groups=3)),  # pointwise, grouped
    ((6, 7, 16), dict(filters=12, kernel_size=3, padding="same", groups=2)),  # the Winograd shape, grouped
    ((6, 7, 16), dict(filters=12, kernel_size=3, padding="same", dilation_rate=2)),  # ... dilated
]


@pytest.mark.parametrize("shape,config", FORWARD_CASES, ids=str)
def test_conv_forward_matches_reference(shape, config, path):
    rng = np.random.default_rng(2)
    layer = conv(**config)
    weights = random_weights(layer, shape, rng)
    x = rng.normal(size=(2, *shape))
    y, _ = layer.forward(weights, [x], training=False)
    expected = conv_reference(x, weights["kernel"], weights.get("bias"), layer.strides, layer.padding,
                              layer.activation, layer.dilation_rate, layer.groups)
    assert y.shape == expected.shape == (2, *layer.output_shape([shape]))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


POOL_CASES = [
    ((6, 6, 2), dict()),
    ((7, 7, 2), dict()),  # the last row and column are dropped
    ((7, 7, 2), dict(padding="same")),
    ((5, 6, 3), dict(pool_size=3, strides=1, padding="same")),
    ((6, 7, 2), dict(pool_size=3, strides=2, padding="same")),
    ((5, 7, 2), dict(pool_size=[2, 4], strides=[3, 1], padding="same")),
    ((5, 7, 2), dict(pool_size=[2, 3], strides=[3, 2], padding="valid")),
]


@pytest.mark.parametrize("shape,config", POOL_CASES, ids=str)
def test_pool_forward_matches_reference(shape, config):
    layer = pool(**config)
    x = np.random.default_rng(3).normal(size=(2, *shape)) - 5  # all negative: a padding zero would win
    y, _ = layer.forward({}, [x], training=False)
    expected = pool_reference(x, layer.pool_size, layer.strides, layer.padding)
    assert y.shape == expected.shape == (2, *layer.output_shape([shape]))
    np.testing.assert_array_equal(y, expected)


def test_same_padding_is_placed_as_tensorflow_does():
    """Hand-computed: total padding max((out - 1) * s + k - n, 0), half before (rounded down)."""
    x = np.arange(1.0, 6.0).reshape(1, 1, 5, 1)  # one row: 1 2 3 4 5
    ones = {"kernel": np.ones((1, 4, 1, 1))}
    y, _ = conv(filters=1, kernel_size=[1, 4], padding="same", use_bias=False).forward(ones, [x], False)
    np.testing.assert_array_equal(y.ravel(), [6, 10, 14, 12, 9])  # padding: 1 before, 2 after
    y, _ = conv(filters=1, kernel_size=[1, 4], strides=2, padding="same",
                use_bias=False).forward(ones, [x], False)
    np.testing.assert_array_equal(y.ravel(), [6, 14, 9])
    y, _ = pool(pool_size=[1, 2], strides=2, padding="same").forward({}, [-x], False)
    np.testing.assert_array_equal(y.ravel(), [-1, -3, -5])  # padding (after) is never the max


def test_float32_stays_float32():
    rng = np.random.default_rng(4)
    layer = conv(filters=4, kernel_size=3, padding="same", activation="relu")
    weights = random_weights(layer, (6, 5, 3), rng)
    x, dy = rng.normal(size=(2, 6, 5, 3)), rng.normal(size=(2, 6, 5, 4))
    w32 = {k: v.astype(np.float32) for k, v in weights.items()}
    y, cache = layer.forward(w32, [x.astype(np.float32)], training=True)
    grads = {k: np.zeros_like(v) for k, v in w32.items()}
    (dx,) = layer.backward(w32, grads, cache, dy.astype(np.float32))
    assert y.dtype == dx.dtype == grads["kernel"].dtype == np.float32
    y64, cache64 = layer.forward(weights, [x], training=True)
    grads64 = {k: np.zeros_like(v) for k, v in weights.items()}
    (dx64,) = layer.backward(weights, grads64, cache64, dy)
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads["kernel"], grads64["kernel"], rtol=1e-4, atol=1e-4)
    p, cache = pool(pool_size=3, strides=1, padding="same").forward({}, [y], training=True)
    assert p.dtype == np.float32


# --- (c) shapes --------------------------------------------------------------------------------------

def test_shapes_of_the_guides_models():
    shape = (27, 27, 1)
    for layer, expected in [(conv(filters=64, kernel_size=3, activation="relu"), (25, 25, 64)),
                            (conv(filters=64, kernel_size=3, activation="relu"), (23, 23, 64)),
                            (pool(pool_size=2), (11, 11, 64))]:
        shape = layer.output_shape([shape])
        assert shape == expected
    assert conv(filters=64, kernel_size=3, padding="same").output_shape([(256, 256, 3)]) == (256, 256, 64)
    assert conv(filters=64, kernel_size=5, padding="same").output_shape([(256, 256, 64)]) == (256, 256, 64)
    assert pool(pool_size=3, strides=1, padding="same").output_shape([(256, 256, 64)]) == (256, 256, 64)
    assert conv(filters=8, kernel_size=3, strides=2, padding="same").output_shape([(7, 8, 1)]) == (4, 4, 8)
    assert conv(filters=8, kernel_size=3, strides=2).output_shape([(7, 8, 1)]) == (3, 3, 8)


@pytest.mark.parametrize("layer,shape", [
    (conv(filters=2, kernel_size=[3, 2], strides=[2, 1]), (8, 5, 1)),
    (conv(filters=2, kernel_size=4, strides=3, padding="same"), (8, 5, 1)),
    (conv(filters=2, kernel_size=1, strides=[3, 2]), (8, 5, 1)),
    (pool(pool_size=[3, 2], strides=[2, 1]), (8, 5, 1)),
    (pool(pool_size=3, padding="same"), (8, 5, 1)),
], ids=str)
def test_output_shape_matches_forward(layer, shape):
    rng = np.random.default_rng(5)
    y, _ = layer.forward(random_weights(layer, shape, rng), [rng.normal(size=(2, *shape))], training=False)
    assert y.shape[1:] == layer.output_shape([shape])


def test_shape_errors_say_what_to_do():
    with pytest.raises(ShapeError, match=r"\(height, width, channels\).*shape \[28, 28, 1\]"):
        conv(filters=4, kernel_size=3).output_shape([(28, 28)])
    with pytest.raises(ShapeError, match="needs images"):
        pool().output_shape([(784,)])
    with pytest.raises(ShapeError, match="kernel_size 5x5 is larger than its input .*padding: same"):
        conv(filters=4, kernel_size=5).output_shape([(4, 9, 3)])
    with pytest.raises(ShapeError, match="pool_size 3x3 is larger"):
        pool(pool_size=3).output_shape([(2, 9, 3)])
    assert conv(filters=4, kernel_size=5, padding="same").output_shape([(4, 9, 3)]) == (4, 9, 4)
    with pytest.raises(ShapeError, match=r"kernel_size 3x2 \(dilated, it spans 5x3\) is larger"):
        conv(filters=4, kernel_size=[3, 2], dilation_rate=2).output_shape([(4, 9, 3)])
    with pytest.raises(ShapeError, match="groups 2 does not divide its 3 input channels"):
        conv(filters=4, kernel_size=3, groups=2).output_shape([(9, 9, 3)])
    with pytest.raises(ShapeError, match="groups 2 does not divide its 5 filters"):
        conv(filters=5, kernel_size=3, groups=2).output_shape([(9, 9, 4)])
    with pytest.raises(ShapeError, match=r"strides \[1, 2\] with dilation_rate 2: .* set one of them to 1"):
        conv(filters=4, kernel_size=3, strides=[1, 2], dilation_rate=2).output_shape([(9, 9, 3)])
    assert conv(filters=4, kernel_size=3, dilation_rate=[2, 1]).output_shape([(5, 9, 3)]) == (1, 7, 4)
    assert conv(filters=4, kernel_size=3, dilation_rate=3, padding="same").output_shape([(5, 9, 3)]) == (5, 9, 4)


# --- (d) weights and configuration -----------------------------------------------------------------

def test_weights_are_named_and_shaped_as_keras():
    layer = conv(filters=64, kernel_size=3)
    shapes = layer.weight_shapes([(27, 27, 1)])
    assert shapes == {"kernel": (3, 3, 1, 64), "bias": (64,)}
    assert sum(math.prod(s) for s in shapes.values()) == 640
    assert conv(filters=8, kernel_size=[1, 5], use_bias=False).weight_shapes([(9, 9, 3)]) == {
        "kernel": (1, 5, 3, 8)}
    assert conv(filters=8, kernel_size=3, groups=4).weight_shapes([(9, 9, 12)]) == {
        "kernel": (3, 3, 3, 8), "bias": (8,)}
    assert pool().weight_shapes([(8, 8, 3)]) == {}
    kernel = layer.init_weights(shapes, np.random.default_rng(0))["kernel"]
    limit = math.sqrt(6 / (9 * 1 + 9 * 64))  # glorot_uniform: fan_in = kh*kw*in, fan_out = kh*kw*filters
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


def test_configuration_is_validated():
    assert {"Conv2D", "MaxPooling2D"} <= set(LAYERS)
    assert conv(filters=2, kernel_size=[3, 5], strides=[1, 2]).kernel_size == [3, 5]
    for bad in [dict(kernel_size=[3]), dict(kernel_size=[3, 3, 3]), dict(kernel_size=0),
                dict(kernel_size=3.0), dict(kernel_size=[3, 0]), dict(kernel_size=3, strides=0),
                dict(kernel_size=3, padding="full"), dict(kernel_size=3, activation="relux"),
                dict(kernel_size=3, padding="causal"), dict(kernel_size=3, dilation_rate=0),
                dict(kernel_size=3, dilation_rate=[2]), dict(kernel_size=3, groups=0)]:
        with pytest.raises(ValidationError):
            conv(filters=2, **bad)
    with pytest.raises(ValidationError):
        conv(filters=2.0, kernel_size=3)
    with pytest.raises(ValidationError):
        pool(pool_size=[2, 2, 2])
    assert pool(pool_size=3).output_shape([(9, 9, 1)]) == (3, 3, 1)  # strides default to pool_size


# --- optional: Keras itself ----------------------------------------------------------------------------

def test_forward_matches_keras():
    """Runs where Keras and one of its backends are installed."""
    from support import import_keras
    keras = import_keras()
    rng = np.random.default_rng(6)
    for shape, config in FORWARD_CASES[:7] + FORWARD_CASES[-8:-2]:
        layer = conv(**config)
        weights = random_weights(layer, shape, rng)
        x = rng.normal(size=(2, *shape)).astype(np.float32)
        theirs = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                     padding=layer.padding, activation=layer.activation,
                                     use_bias=layer.use_bias, dilation_rate=layer.dilation_rate,
                                     groups=layer.groups)
        theirs.build((None, *shape))
        theirs.set_weights([weights[k].astype(np.float32) for k in ("kernel", "bias") if k in weights])
        ours, _ = layer.forward(weights, [x.astype(np.float64)], training=False)
        np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-4, atol=1e-4)
    for shape, config in POOL_CASES:
        layer = pool(**config)
        x = rng.normal(size=(2, *shape)).astype(np.float32) - 5
        theirs = keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding)
        np.testing.assert_array_equal(layer.forward({}, [x], training=False)[0], keras.ops.convert_to_numpy(theirs(x)))
