"""Transposed, depthwise and separable convolutions: forward against explicit-loop references, gradients and
thread counts with many chunks per image, shapes at the keras.io models' sizes, and configuration and shape
errors reported by `specc validate` at the layer's entry."""
import math

import numpy as np
import pytest
from gradcheck import check_layer_gradients
from pydantic import ValidationError

from specc.layers import LAYERS
from specc.layers import conv as conv_module
from specc.runtime import workers
from support import run


def layer(type_name, **config):
    return LAYERS[type_name](type=type_name, **config)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


ACTS = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}


# --- slow, obviously correct references -------------------------------------------------------------

def conv_axis(size, window, stride, padding):
    """(output size, padding before) of a convolution along one axis, as TensorFlow documents it."""
    if padding == "valid":
        return math.floor((size - window) / stride) + 1, 0
    out = math.ceil(size / stride)
    return out, max((out - 1) * stride + window - size, 0) // 2


def deconv_length(size, window, stride, padding, output_padding):
    """A transposed convolution's output length, as TensorFlow's Keras stated it (deconv_output_length)."""
    if output_padding is None:
        return size * stride + (max(window - stride, 0) if padding == "valid" else 0)
    pad = window // 2 if padding == "same" else 0
    return (size - 1) * stride + window - 2 * pad + output_padding


def transposed_reference(x, kernel, bias, strides=1, padding="valid", output_padding=None, dilation_rate=1,
                         activation="linear"):
    """The input gradient of the Conv2D with the same window, strides, dilation and padding whose input has
    the transposed convolution's output size: each input pixel adds kernel[a, b] @ x into every output pixel
    that Conv2D tap (a, b) of it reads. kernel is (kh, kw, filters, channels).

    This holds where that Conv2D has as many outputs as the input has pixels; an even kernel with padding
    same and an output_padding gives fewer (Keras then crops by its own rule: the Keras comparison of the
    layer cases covers it)."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    (sh, sw), (dh, dw) = pair(strides), pair(dilation_rate)
    ph, pw = (None, None) if output_padding is None else pair(output_padding)
    out_h = deconv_length(h, (kh - 1) * dh + 1, sh, padding, ph)
    out_w = deconv_length(w, (kw - 1) * dw + 1, sw, padding, pw)
    top = conv_axis(out_h, (kh - 1) * dh + 1, sh, padding)[1]
    left = conv_axis(out_w, (kw - 1) * dw + 1, sw, padding)[1]
    y = np.zeros((n, out_h, out_w, filters))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    r, s = i * sh - top + a * dh, j * sw - left + b * dw
                    if 0 <= r < out_h and 0 <= s < out_w:
                        y[:, r, s, :] += x[:, i, j, :] @ kernel[a, b].T
    if bias is not None:
        y += bias
    return ACTS[activation](y)


def depthwise_reference(x, kernel, strides=1, padding="valid", dilation_rate=1):
    """Each channel c convolved with kernel[:, :, c, m] into output channel c * M + m (no bias)."""
    n, h, w, c = x.shape
    kh, kw, _, m = kernel.shape
    (sh, sw), (dh, dw) = pair(strides), pair(dilation_rate)
    oh, top = conv_axis(h, (kh - 1) * dh + 1, sh, padding)
    ow, left = conv_axis(w, (kw - 1) * dw + 1, sw, padding)
    y = np.zeros((n, oh, ow, c, m))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r, s = i * sh - top + a * dh, j * sw - left + b * dw
                    if 0 <= r < h and 0 <= s < w:
                        y[:, i, j] += x[:, r, s, :, None] * kernel[a, b]
    return y.reshape(n, oh, ow, c * m)


TRANSPOSED = [  # (input shape, config)
    ((5, 4, 3), dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu")),
    ((4, 5, 2), dict(filters=3, kernel_size=[4, 3], strides=[2, 3], padding="same", output_padding=[1, 0])),
    ((3, 4, 2), dict(filters=2, kernel_size=2, strides=3, use_bias=False)),
    ((4, 4, 3), dict(filters=5, kernel_size=3, strides=2, output_padding=1, activation="tanh")),
    ((5, 6, 2), dict(filters=3, kernel_size=3, dilation_rate=[2, 1], padding="same")),
    ((4, 4, 2), dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0)),
]

DEPTHWISE = [  # (input shape, config of the depthwise part)
    ((7, 6, 3), dict(kernel_size=3, padding="same")),
    ((8, 7, 2), dict(kernel_size=[3, 2], strides=2, depth_multiplier=3, activation="relu")),
    ((9, 8, 2), dict(kernel_size=3, dilation_rate=2, padding="same", depth_multiplier=2, use_bias=False)),
    ((9, 9, 4), dict(kernel_size=2, strides=[2, 1], padding="same", activation="tanh")),
]


@pytest.fixture(params=["whole", "line by line"])
def chunking(request, monkeypatch):
    """Chunks as sized for speed (whole images here), or one output (input) line each: the same numbers."""
    if request.param == "line by line":
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)
    return request.param


def weights_of(conv, shape, rng):
    return {name: rng.normal(size=s) for name, s in conv.weight_shapes([shape]).items()}


@pytest.mark.parametrize("shape, config", TRANSPOSED)
def test_transposed_forward_matches_reference(shape, config, chunking):
    rng = np.random.default_rng(0)
    conv = layer("Conv2DTranspose", **config)
    weights = weights_of(conv, shape, rng)
    x = rng.normal(size=(5, *shape))
    y, _ = conv.forward(weights, [x], False)
    settings = {k: v for k, v in config.items() if k not in ("filters", "kernel_size", "use_bias")}
    expected = transposed_reference(x, weights["kernel"], weights.get("bias"), **settings)
    assert y.shape == (5, *conv.output_shape([shape]))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, config", TRANSPOSED[:4])
def test_conv1d_transpose_is_conv2d_transpose_on_one_row(shape, config):
    """Conv1DTranspose on sequences = Conv2DTranspose on images one row high, with a 1-high kernel."""
    rng = np.random.default_rng(1)
    one_d = {k: (v[1] if isinstance(v, list) else v) for k, v in config.items()}
    two_d = {k: ([1, v] if k == "kernel_size" else [1, v] if k in ("strides", "dilation_rate") else
                 [0, v] if k == "output_padding" else v) for k, v in one_d.items()}
    conv1, conv2 = layer("Conv1DTranspose", **one_d), layer("Conv2DTranspose", **two_d)
    weights = weights_of(conv1, shape[1:], rng)
    x = rng.normal(size=(4, *shape[1:]))
    y1, _ = conv1.forward(weights, [x], False)
    y2, _ = conv2.forward({**weights, "kernel": weights["kernel"][None]}, [x[:, None]], False)
    np.testing.assert_allclose(y1, y2[:, 0], rtol=1e-12)


@pytest.mark.parametrize("shape, config", DEPTHWISE)
def test_depthwise_forward_matches_reference(shape, config, chunking):
    rng = np.random.default_rng(2)
    conv = layer("DepthwiseConv2D", **config)
    weights = weights_of(conv, shape, rng)
    x = rng.normal(size=(5, *shape))
    y, _ = conv.forward(weights, [x], False)
    settings = {k: config[k] for k in ("strides", "padding", "dilation_rate") if k in config}
    z = depthwise_reference(x, weights["kernel"], **settings) + weights.get("bias", 0)
    np.testing.assert_allclose(y, ACTS[config.get("activation", "linear")](z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, config", DEPTHWISE)
def test_separable_forward_matches_reference(shape, config, chunking):
    rng = np.random.default_rng(3)
    conv = layer("SeparableConv2D", filters=5, **config)
    weights = weights_of(conv, shape, rng)
    x = rng.normal(size=(5, *shape))
    y, _ = conv.forward(weights, [x], False)
    settings = {k: config[k] for k in ("strides", "padding", "dilation_rate") if k in config}
    z = depthwise_reference(x, weights["depthwise_kernel"], **settings) @ weights["pointwise_kernel"][0, 0]
    np.testing.assert_allclose(y, ACTS[config.get("activation", "linear")](z + weights.get("bias", 0)),
                               rtol=1e-10, atol=1e-10)


ALL = ([("Conv2DTranspose", shape, config) for shape, config in TRANSPOSED]
       + [("DepthwiseConv2D", shape, config) for shape, config in DEPTHWISE]
       + [("SeparableConv2D", shape, {"filters": 3, **config}) for shape, config in DEPTHWISE]
       + [("Conv1DTranspose", (7, 2), dict(filters=3, kernel_size=3, strides=2, padding="same")),
          ("DepthwiseConv1D", (9, 2), dict(kernel_size=3, depth_multiplier=2, dilation_rate=2)),
          ("SeparableConv1D", (9, 3), dict(filters=2, kernel_size=2, strides=2, activation="tanh"))])


@pytest.mark.parametrize("type_name, shape, config", ALL)
def test_gradients(type_name, shape, config, chunking):
    check_layer_gradients(layer(type_name, **config), [shape], batch=3)


@pytest.mark.parametrize("type_name, shape, config", ALL)
def test_threads_give_the_same_results(type_name, shape, config):
    """Images split over 1 or 2 threads: the same output and input gradient, the same weight gradients up
    to the order their per-thread sums are added in."""
    conv = layer(type_name, **config)
    rng = np.random.default_rng(4)
    weights = {k: v.astype(np.float32) for k, v in weights_of(conv, shape, rng).items()}
    x = rng.normal(size=(7, *shape)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with workers.split_over(threads):
            y, cache = conv.forward(weights, [x], True)
            grads = {k: np.zeros_like(v) for k, v in weights.items()}
            (dx,) = conv.backward(weights, grads, cache, np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32
        results.append((y, dx, grads))
    (y1, dx1, g1), (y2, dx2, g2) = results
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-5, atol=1e-5)


def test_without_the_input_gradient_the_weight_gradients_are_the_same():
    for type_name, shape, config in ALL:
        conv = layer(type_name, **config)
        rng = np.random.default_rng(5)
        weights = weights_of(conv, shape, rng)
        y, cache = conv.forward(weights, [rng.normal(size=(3, *shape))], True)
        dy = rng.normal(size=y.shape)
        both = [{k: np.zeros_like(v) for k, v in weights.items()} for _ in range(2)]
        assert conv.backward(weights, both[0], cache, dy, need_dx=False) == [None]
        conv.backward(weights, both[1], cache, dy, need_dx=True)
        for name in weights:
            np.testing.assert_allclose(both[0][name], both[1][name], rtol=1e-12, err_msg=type_name)


def test_shapes_of_the_keras_io_models():
    """The convolutional autoencoder's decoder and the mini-Xception's separable blocks, in Keras' layouts."""
    up = layer("Conv2DTranspose", filters=32, kernel_size=3, strides=2, padding="same", activation="relu")
    assert up.output_shape([(7, 7, 32)]) == (14, 14, 32)
    assert up.output_shape([(14, 14, 32)]) == (28, 28, 32)
    assert up.weight_shapes([(7, 7, 32)]) == {"kernel": (3, 3, 32, 32), "bias": (32,)}
    assert layer("Conv2DTranspose", filters=8, kernel_size=3, strides=2).output_shape([(7, 7, 3)]) == (15, 15, 8)
    assert layer("Conv2DTranspose", filters=8, kernel_size=[3, 4], strides=2, padding="same",
                 output_padding=0).output_shape([(7, 7, 3)]) == (13, 12, 8)
    sep = layer("SeparableConv2D", filters=256, kernel_size=3, padding="same")
    assert sep.output_shape([(90, 90, 128)]) == (90, 90, 256)
    assert sep.weight_shapes([(90, 90, 128)]) == {"depthwise_kernel": (3, 3, 128, 1),
                                                   "pointwise_kernel": (1, 1, 128, 256), "bias": (256,)}
    assert layer("DepthwiseConv2D", kernel_size=3, depth_multiplier=2, use_bias=False).weight_shapes(
        [(9, 9, 4)]) == {"kernel": (3, 3, 4, 2)}
    assert layer("DepthwiseConv1D", kernel_size=5, strides=2).output_shape([(20, 4)]) == (8, 4)
    assert layer("SeparableConv1D", filters=6, kernel_size=3, depth_multiplier=2).weight_shapes([(20, 4)]) == {
        "depthwise_kernel": (3, 4, 2), "pointwise_kernel": (1, 8, 6), "bias": (6,)}
    assert layer("Conv1DTranspose", filters=6, kernel_size=4, strides=3).weight_shapes([(20, 4)]) == {
        "kernel": (4, 6, 4), "bias": (6,)}


def test_configuration_is_validated():
    for type_name, bad in [("Conv2DTranspose", dict(filters=2, kernel_size=3, output_padding=-1)),
                           ("Conv2DTranspose", dict(filters=2, kernel_size=3, output_padding=[1])),
                           ("Conv2DTranspose", dict(filters=2, kernel_size=[3])),
                           ("Conv1DTranspose", dict(filters=2, kernel_size=3, padding="causal")),
                           ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=0)),
                           ("SeparableConv2D", dict(filters=0, kernel_size=3)),
                           ("SeparableConv1D", dict(filters=2, kernel_size=3, dilation_rate=0))]:
        with pytest.raises(ValidationError):
            layer(type_name, **bad)


SPEC = """\
specc: 1
inputs:
  x: {shape: [7, 7, 4]}
layers:
  conv: {type: Conv2DTranspose, filters: 4, kernel_size: 3, strides: 2, inputs: x}
outputs: [conv]
compile: {loss: mse}
"""


@pytest.mark.parametrize("edits, parts", [
    ([("strides: 2", "strides: 2, output_padding: 2")],
     ["Conv2DTranspose on (None, 7, 7, 4): output_padding 2 must be less than strides 2"]),
    ([("strides: 2", "strides: [2, 3], output_padding: [1, 3]")], ["output_padding [1, 3] must be less than strides"]),
    ([("strides: 2", "strides: 2, dilation_rate: 2")], ["strides 2 with dilation_rate 2", "set one of them to 1"]),
    ([("shape: [7, 7, 4]", "shape: [1, 7, 4]"),
      ("kernel_size: 3, strides: 2", "kernel_size: 2, padding: same, output_padding: 0")],
     ["Conv2DTranspose: its output would be empty (kernel_size 2, padding 'same' and output_padding 0 on "
      "(None, 1, 7, 4))", "leave output_padding out"]),
    ([("Conv2DTranspose, filters: 4, kernel_size: 3, strides: 2", "DepthwiseConv2D, kernel_size: 8")],
     ["DepthwiseConv2D kernel_size 8x8 is larger than its input (None, 7, 7, 4) with padding 'valid'",
      "padding: same"]),
    ([("Conv2DTranspose, filters: 4, kernel_size: 3, strides: 2",
       "SeparableConv2D, filters: 8, kernel_size: 3, dilation_rate: [1, 4]")],
     ["SeparableConv2D kernel_size 3x3 (dilated, it spans 3x9) is larger than its input"]),
    ([("Conv2DTranspose", "Conv1DTranspose")],
     ["Conv1DTranspose needs sequences shaped (steps, channels), got (None, 7, 7, 4)"]),
    ([("shape: [7, 7, 4]", "shape: [7, 4]")],
     ["Conv2DTranspose needs images shaped (height, width, channels)", "e.g. shape [7, 4, 1]"]),
], ids=["output-padding", "output-padding-pair", "strided-dilated", "empty", "depthwise-larger",
        "separable-dilated-larger", "1d-on-image", "2d-on-sequence"])
def test_validate_reports_errors_at_the_layer(tmp_path, edits, parts):
    assert run("validate", write(tmp_path, SPEC)).returncode == 0
    text = SPEC
    for old, new in edits:
        text = text.replace(old, new)
    path = write(tmp_path, text)
    result = run("validate", path)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert line.startswith(f"{path}:5:") and ": layers.conv: " in line, line  # the entry's line
    for part in parts:
        assert part in line, line


def test_validate_accepts_the_conv_autoencoder_and_a_1d_stack(tmp_path):
    spec = """\
specc: 1
inputs:
  image: {shape: [7, 7, 32]}
  series: {shape: [50, 3]}
layers:
  up_1: {type: Conv2DTranspose, filters: 32, kernel_size: 3, strides: 2, activation: relu, padding: same,
         inputs: image}
  up_2: {type: Conv2DTranspose, filters: 32, kernel_size: 3, strides: 2, activation: relu, padding: same,
         inputs: up_1}
  sep: {type: SeparableConv1D, filters: 8, kernel_size: 5, padding: same, inputs: series}
  dw: {type: DepthwiseConv1D, kernel_size: 3, depth_multiplier: 2, inputs: sep}
  up: {type: Conv1DTranspose, filters: 4, kernel_size: 3, strides: 2, output_padding: 1, inputs: dw}
outputs: [up_2, up]
compile: {loss: mse}
"""
    result = run("validate", write(tmp_path, spec))
    assert result.returncode == 0, result.stderr


def write(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path
