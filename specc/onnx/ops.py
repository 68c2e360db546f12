"""Every layer type as ONNX operators: one small function per type, in OPS by the type's name.

A function gets the builder, the layer's config and a Call (its input value names, their shapes and its
outputs', without the batch axis; its weights) and returns the name of its output value (a list of them
for a call that makes several). Values keep specc's layouts: channels-last images and sequences (a window
op transposes to ONNX's channels-first around itself; onnxruntime cancels the transposes between
consecutive ones), batch-major sequences (a recurrent op transposes to time-major around itself).
Weights become initializers named by the layer's weight keys, made once and shared by every call."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from ..layers import Layer, Shape
from ..layers.conv import pair
from ..layers.merge import NORMALIZE_EPSILON
from ..layers.normalization import UNIT_EPSILON, kept_axes
from ..layers.reshape import sides, sides_2d
from .activations import apply_activation
from .builder import FLOAT, GraphBuilder
from .errors import ExportError


@dataclass
class Call:
    inputs: list[str]
    input_shapes: list[Shape]
    output_shapes: list[Shape]
    key: str                                    # the layer's weight prefix: names its initializers
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    masks: list[Optional[str]] = field(default_factory=list)  # each input's mask (bool, batch x steps), if any

    @property
    def mask(self) -> Optional[str]:
        """The first input's mask; None without one."""
        return self.masks[0] if self.masks else None

    @property
    def output_shape(self) -> Shape:
        """The shape of a single-output call's output."""
        (shape,) = self.output_shapes
        return shape

    def weight(self, g: GraphBuilder, name: str, make: Callable[[np.ndarray], np.ndarray] = np.asarray,
               form: str = "") -> str:
        """The initializer of weight `name`, as `make` lays it out (`form` tells that layout's apart)."""
        return g.weight(f"{self.key}/{name}{':' + form if form else ''}", make=lambda: make(self.weights[name]))


Op = Callable[[GraphBuilder, Layer, Call], Union[str, list[str]]]  # the output, or each of several
OPS: dict[str, Op] = {}
# a wrapper's function also gets `inner(xs, input_shapes, output_shape)`, which adds what it wraps
WrapperOp = Callable[[GraphBuilder, Layer, Call, Callable[[list[str], list[Shape], Shape], str]], str]
WRAPPERS: dict[str, WrapperOp] = {}
# the mask a layer that makes masks gives its output (bool, batch x steps)
MaskOp = Callable[[GraphBuilder, Layer, Call], str]
MASK_MAKERS: dict[str, MaskOp] = {}
# the types whose function computes what Keras does with a mask on their input (the others are refused one)
MASK_READERS = {"LSTM", "GRU", "SimpleRNN", "GlobalAveragePooling1D"}


def op(*type_names: str):
    def register(function: Op) -> Op:
        for name in type_names:
            OPS[name] = function
        return function
    return register


def wrapper(type_name: str):
    def register(function: WrapperOp) -> WrapperOp:
        WRAPPERS[type_name] = function
        return function
    return register


def mask_maker(type_name: str):
    def register(function: MaskOp) -> MaskOp:
        MASK_MAKERS[type_name] = function
        return function
    return register


def with_bias_and_activation(g: GraphBuilder, y: str, layer, call: Call) -> str:
    """activation(y + bias) for a layer with `use_bias` and `activation`; the bias adds along the last axis."""
    if getattr(layer, "use_bias", False):
        y = g.op("Add", [y, call.weight(g, "bias")])
    return apply_activation(g, y, layer.activation)


# -- core ---------------------------------------------------------------------------------------------

@op("Dense")
def dense(g, layer, call):
    return with_bias_and_activation(g, g.op("MatMul", [call.inputs[0], call.weight(g, "kernel")]), layer, call)


@op("Embedding")
def embedding(g, layer, call):
    ids = g.op("Cast", [call.inputs[0]], to=7)  # int64 (float ids hold whole numbers, as specc checks)
    return g.op("Gather", [call.weight(g, "embeddings"), ids], axis=0)


@mask_maker("Embedding")
def embedding_mask(g, layer, call):
    """mask_zero: id 0 is padding."""
    return g.op("Not", [g.op("Equal", [g.op("Cast", [call.inputs[0]], to=7), g.const(0, np.int64)])])


@op("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout")
def identity_at_inference(g, layer, call):
    """Noise is drawn in training only."""
    return call.inputs[0]


@wrapper("TimeDistributed")
def time_distributed(g, layer, call, inner):
    """The steps folded into the batch, what it wraps applied once, the steps unfolded."""
    (shape,), out = call.input_shapes, call.output_shape
    y = inner([g.reshape(call.inputs[0], [-1, *shape[1:]])], [tuple(shape[1:])], tuple(out[1:]))
    return g.reshape(y, [-1, shape[0], *out[1:]])


# -- activations --------------------------------------------------------------------------------------

@op("Activation")
def activation_layer(g, layer, call):
    return apply_activation(g, call.inputs[0], layer.activation)


@op("ReLU")
def relu(g, layer, call):
    x = call.inputs[0]
    if layer.negative_slope == 0 and layer.threshold == 0:
        y = g.op("Relu", [x])
    else:  # x above the threshold, negative_slope * (x - threshold) below
        below = g.op("Mul", [g.op("Sub", [x, g.const(layer.threshold)]), g.const(layer.negative_slope)])
        y = g.op("Where", [g.op("Greater", [x, g.const(layer.threshold)]), x, below])
    return y if layer.max_value is None else g.op("Min", [y, g.const(layer.max_value)])


@op("LeakyReLU")
def leaky_relu(g, layer, call):
    return g.op("LeakyRelu", [call.inputs[0]], alpha=layer.negative_slope)


@op("PReLU")
def prelu(g, layer, call):
    return g.op("PRelu", [call.inputs[0], call.weight(g, "alpha")])  # alpha broadcasts over the batch


@op("ELU")
def elu(g, layer, call):
    return g.op("Elu", [call.inputs[0]], alpha=layer.alpha)


@op("Softmax")
def softmax(g, layer, call):
    x, rank = call.inputs[0], len(call.input_shapes[0]) + 1
    axes = layer._axes(rank)
    if len(axes) == 1:
        return g.op("Softmax", [x], axis=axes[0])
    e = g.op("Exp", [g.op("Sub", [x, g.op("ReduceMax", [x], axes=list(axes), keepdims=1)])])
    return g.op("Div", [e, g.op("ReduceSum", [e, g.ints(axes)], keepdims=1)])


# -- merges -------------------------------------------------------------------------------------------

def aligned(g: GraphBuilder, call: Call) -> list[str]:
    """The inputs with axes of size 1 inserted after the batch up to the largest rank: Keras broadcasts
    shapes aligned at their last axis, the batch apart."""
    rank = max(map(len, call.input_shapes))
    return [x if len(shape) == rank else g.op("Unsqueeze", [x, g.ints(range(1, 1 + rank - len(shape)))])
            for x, shape in zip(call.inputs, call.input_shapes)]


def chained(g: GraphBuilder, op_type: str, xs: list[str]) -> str:
    """xs[0] op xs[1] op ..., left to right as specc computes it."""
    y = xs[0]
    for x in xs[1:]:
        y = g.op(op_type, [y, x])
    return y


@op("Add")
def add(g, layer, call):
    return chained(g, "Add", call.inputs)


@op("Subtract")
def subtract(g, layer, call):
    return g.op("Sub", call.inputs)


@op("Multiply")
def multiply(g, layer, call):
    return chained(g, "Mul", aligned(g, call))


@op("Average")
def average(g, layer, call):
    return g.op("Div", [chained(g, "Add", aligned(g, call)), g.const(len(call.inputs))])


@op("Maximum")
def maximum(g, layer, call):
    return g.op("Max", aligned(g, call))


@op("Minimum")
def minimum(g, layer, call):
    return g.op("Min", aligned(g, call))


@op("Concatenate")
def concatenate(g, layer, call):
    return g.op("Concat", call.inputs, axis=layer._axis(len(call.input_shapes[0])) + 1)


def l2_normalized(g: GraphBuilder, x: str, axis: int, epsilon: float) -> str:
    """x / max(|x|, epsilon) along `axis` (with the batch)."""
    norm = g.op("Sqrt", [g.op("ReduceSumSquare", [x], axes=[axis], keepdims=1)])
    return g.op("Div", [x, g.op("Max", [norm, g.const(epsilon)])])


@op("Dot")
def dot(g, layer, call):
    """One batched product (batch, rest of a, k) @ (batch, k, rest of b), as specc computes it."""
    (a, b), (shape_a, shape_b) = call.inputs, call.input_shapes
    ia, ib = layer._axes((len(shape_a) + 1, len(shape_b) + 1))
    if layer.normalize:
        a, b = l2_normalized(g, a, ia, NORMALIZE_EPSILON), l2_normalized(g, b, ib, NORMALIZE_EPSILON)
    perm_a = [0, *(i for i in range(1, len(shape_a) + 1) if i != ia), ia]
    perm_b = [0, ib, *(i for i in range(1, len(shape_b) + 1) if i != ib)]
    k = shape_a[ia - 1]
    a3 = g.reshape(g.transpose(a, perm_a), [0, -1, k])
    b3 = g.reshape(g.transpose(b, perm_b), [0, k, -1])
    return g.reshape(g.op("MatMul", [a3, b3]), [0, *call.output_shape])


# -- reshaping ----------------------------------------------------------------------------------------

@op("Flatten", "Reshape")
def reshape(g, layer, call):
    return g.reshape(call.inputs[0], [0, *call.output_shape])


@op("Permute")
def permute(g, layer, call):
    return g.transpose(call.inputs[0], [0, *layer.dims])


@op("RepeatVector")
def repeat_vector(g, layer, call):
    return g.op("Tile", [g.op("Unsqueeze", [call.inputs[0], g.ints([1])]), g.ints([1, layer.n, 1])])


def resize(g: GraphBuilder, x: str, factors: list[int], interpolation: str) -> str:
    """Resize by whole factors along axes 1, 2, ... (batch and channels kept): nearest repeats each cell,
    bilinear samples at half-pixel centres clamped at the edges, as jax.image.resize."""
    scales = g.const([1.0, *factors, 1.0])
    if interpolation == "nearest":
        return g.op("Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")
    return g.op("Resize", [x, "", scales], mode="linear", coordinate_transformation_mode="half_pixel")


@op("UpSampling1D")
def upsampling_1d(g, layer, call):
    return resize(g, call.inputs[0], [layer.size], "nearest")


@op("UpSampling2D")
def upsampling_2d(g, layer, call):
    return resize(g, call.inputs[0], list(pair(layer.size)), layer.interpolation)


def pad(g: GraphBuilder, x: str, rank: int, before: list[int], after: list[int], value: float = 0.0) -> str:
    """x with `value` cells added before and after its axes 1, 2, ... (`rank` axes with the batch)."""
    rest = [0] * (rank - 1 - len(before))
    pads = [0, *before, *rest, 0, *after, *rest]
    return g.op("Pad", [x, g.ints(pads), g.const(value)])


def crop(g: GraphBuilder, x: str, shape: Shape, before: list[int], after: list[int]) -> str:
    """x without `before` and `after` cells on its axes 1, 2, ... (`shape` without the batch)."""
    axes = list(range(1, len(before) + 1))
    ends = [size - a for size, a in zip(shape, after)]
    return g.op("Slice", [x, g.ints(before), g.ints(ends), g.ints(axes)])


@op("ZeroPadding1D")
def zero_padding_1d(g, layer, call):
    start, end = sides(layer.padding)
    return pad(g, call.inputs[0], 3, [start], [end])


@op("ZeroPadding2D")
def zero_padding_2d(g, layer, call):
    (top, bottom), (left, right) = sides_2d(layer.padding)
    return pad(g, call.inputs[0], 4, [top, left], [bottom, right])


@op("Cropping1D")
def cropping_1d(g, layer, call):
    start, end = sides(layer.cropping)
    return crop(g, call.inputs[0], call.input_shapes[0], [start], [end])


@op("Cropping2D")
def cropping_2d(g, layer, call):
    (top, bottom), (left, right) = sides_2d(layer.cropping)
    return crop(g, call.inputs[0], call.input_shapes[0], [top, left], [bottom, right])


# -- normalization ------------------------------------------------------------------------------------

def along(values: np.ndarray, shape: Shape, axes: tuple[int, ...]) -> np.ndarray:
    """Per-position values of the `axes` (of a shape without the batch) shaped to broadcast over a batch."""
    return np.asarray(values, FLOAT).reshape([size if i in axes else 1 for i, size in enumerate(shape)])


@op("BatchNormalization")
def batch_normalization(g, layer, call):
    """Inference form, folded into one scale and shift per channel: x * scale + shift."""
    (shape,) = call.input_shapes
    axes = kept_axes(layer.axis, len(shape))
    w = {name: value.astype(np.float64) for name, value in call.weights.items()}
    channels = w["moving_mean"].shape
    scale = w.get("gamma", np.ones(channels)) / np.sqrt(w["moving_variance"] + layer.epsilon)
    shift = w.get("beta", np.zeros(channels)) - w["moving_mean"] * scale
    scaled = g.op("Mul", [call.inputs[0], g.weight(f"{call.key}/scale", along(scale, shape, axes))])
    return g.op("Add", [scaled, g.weight(f"{call.key}/shift", along(shift, shape, axes))])


@op("LayerNormalization")
def layer_normalization(g, layer, call):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta, the statistics over the axes of each sample."""
    x, (shape,) = call.inputs[0], call.input_shapes
    kept = kept_axes(layer.axis, len(shape))
    axes = [a + 1 for a in kept]
    centred = g.op("Sub", [x, g.op("ReduceMean", [x], axes=axes, keepdims=1)])
    variance = g.op("ReduceMean", [g.op("Mul", [centred, centred])], axes=axes, keepdims=1)
    y = g.op("Div", [centred, g.op("Sqrt", [g.op("Add", [variance, g.const(layer.epsilon)])])])
    if layer.scale:
        y = g.op("Mul", [y, call.weight(g, "gamma", lambda w: along(w, shape, kept))])
    if layer.center:
        y = g.op("Add", [y, call.weight(g, "beta", lambda w: along(w, shape, kept))])
    return y


@op("UnitNormalization")
def unit_normalization(g, layer, call):
    axes = [a + 1 for a in kept_axes(layer.axis, len(call.input_shapes[0]))]
    x = call.inputs[0]
    squares = g.op("ReduceSumSquare", [x], axes=axes, keepdims=1)
    return g.op("Div", [x, g.op("Sqrt", [g.op("Max", [squares, g.const(UNIT_EPSILON ** 2)])])])


@op("Rescaling")
def rescaling(g, layer, call):
    return g.op("Add", [g.op("Mul", [call.inputs[0], g.const(layer.scale)]), g.const(layer.offset)])


@op("Normalization")
def normalization(g, layer, call):
    """(x - mean) / std, or mean + x * std with invert; std = max(sqrt(variance), epsilon)."""
    shape = call.input_shapes[0]
    mean, std = layer._broadcastable(call.weights, np.zeros((1, *shape), FLOAT))
    mean, std = g.weight(f"{call.key}/mean:broadcast", mean), g.weight(f"{call.key}/std", std)
    x = call.inputs[0]
    if layer.invert:
        return g.op("Add", [g.op("Mul", [x, std]), mean])
    return g.op("Div", [g.op("Sub", [x, mean]), std])


# -- windows: convolutions and pooling ----------------------------------------------------------------

def to_nchw(g: GraphBuilder, x: str, shape: Shape) -> str:
    """A channels-last sequence (steps, channels) or image as ONNX's (batch, channels, height, width);
    a sequence is an image one row high."""
    if len(shape) == 2:
        x = g.reshape(x, [0, 1, *shape])
    return g.transpose(x, [0, 3, 1, 2])


def from_nchw(g: GraphBuilder, y: str, shape: Shape) -> str:
    """The inverse of to_nchw, for an output of `shape` (without the batch)."""
    y = g.transpose(y, [0, 2, 3, 1])
    return g.reshape(y, [0, *shape]) if len(shape) == 2 else y


def image_of(shape: Shape) -> Shape:
    return (1, *shape) if len(shape) == 2 else tuple(shape)


def window_pads(image: Shape, window: tuple[int, int], strides: tuple[int, int], before: tuple[int, int],
                out: tuple[int, int]) -> list[int]:
    """ONNX pads [top, left, bottom, right]: `before` as the layer places it, after it what the last
    window needs beyond the input (none where the windows stop short of its end)."""
    after = [max(0, (o - 1) * s + w - size - b) for size, w, s, b, o in zip(image, window, strides, before, out)]
    return [*before, *after]


def convolution(g: GraphBuilder, layer, call: Call, kernel: str, groups: int) -> str:
    """The layer's convolution in NCHW, from its own geometry on the image view (no bias, no activation)."""
    image = image_of(call.input_shapes[0])
    kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = layer._geometry(image)
    pads = window_pads(image, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), (sh, sw), (pt, pl), (oh, ow))
    return g.op("Conv", [to_nchw(g, call.inputs[0], call.input_shapes[0]), kernel], kernel_shape=[kh, kw],
                strides=[sh, sw], dilations=[dh, dw], pads=pads, group=groups)


def oihw(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel (height, width, in / groups, out), or (steps, in / groups, out), as ONNX's (out,
    in / groups, height, width)."""
    image = kernel.reshape(1, *kernel.shape) if kernel.ndim == 3 else kernel
    return np.ascontiguousarray(image.transpose(3, 2, 0, 1))


@op("Conv1D", "Conv2D")
def conv(g, layer, call):
    y = convolution(g, layer, call, call.weight(g, "kernel", oihw, "oihw"), layer.groups)
    return with_bias_and_activation(g, from_nchw(g, y, call.output_shape), layer, call)


def depthwise_oihw(kernel: np.ndarray) -> np.ndarray:
    """A depthwise kernel (height, width, channels, multiplier) as ONNX's grouped (channels * multiplier, 1,
    height, width): output channel c * multiplier + m."""
    image = kernel.reshape(1, *kernel.shape) if kernel.ndim == 3 else kernel
    kh, kw, channels, multiplier = image.shape
    return np.ascontiguousarray(image.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw))


@op("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise_conv(g, layer, call):
    kernel = call.weight(g, "kernel", depthwise_oihw, "oihw")
    y = convolution(g, layer, call, kernel, groups=call.input_shapes[0][-1])
    return with_bias_and_activation(g, from_nchw(g, y, call.output_shape), layer, call)


@op("SeparableConv1D", "SeparableConv2D")
def separable_conv(g, layer, call):
    """The depthwise convolution, then the pointwise one as a product over channels."""
    depthwise = call.weight(g, "depthwise_kernel", depthwise_oihw, "oihw")
    y = convolution(g, layer, call, depthwise, groups=call.input_shapes[0][-1])
    y = from_nchw(g, y, (*call.output_shape[:-1], call.input_shapes[0][-1] * layer.depth_multiplier))
    pointwise = call.weight(g, "pointwise_kernel", lambda k: k.reshape(-1, k.shape[-1]), "matrix")
    return with_bias_and_activation(g, g.op("MatMul", [y, pointwise]), layer, call)


@op("Conv1DTranspose", "Conv2DTranspose")
def conv_transpose(g, layer, call):
    """Input cell i and tap t add into output cell i * stride + t * dilation - crop (ONNX's ConvTranspose
    without padding), the output then cut to the layer's size: cropped before, and after cropped or padded
    with zeros (output padding), bias and activation last."""
    image = image_of(call.input_shapes[0])
    (kh, kw, sh, sw, dh, dw, crop_h, crop_w, *_), (oh, ow) = layer._transposed_geometry(image)
    kernel = call.weight(g, "kernel", lambda k: np.ascontiguousarray(
        (k.reshape(1, *k.shape) if k.ndim == 3 else k).transpose(3, 2, 0, 1)), "iohw")
    y = g.op("ConvTranspose", [to_nchw(g, call.inputs[0], call.input_shapes[0]), kernel], kernel_shape=[kh, kw],
             strides=[sh, sw], dilations=[dh, dw])
    full = [(size - 1) * s + (k - 1) * d + 1 for size, k, s, d in zip(image, (kh, kw), (sh, sw), (dh, dw))]
    ends = [min(crop + out, size) for crop, out, size in zip((crop_h, crop_w), (oh, ow), full)]
    y = g.op("Slice", [y, g.ints([crop_h, crop_w]), g.ints(ends), g.ints([2, 3])])
    missing = [crop + out - end for crop, out, end in zip((crop_h, crop_w), (oh, ow), ends)]
    if any(missing):
        y = g.op("Pad", [y, g.ints([0, 0, 0, 0, 0, 0, *missing])])
    return with_bias_and_activation(g, from_nchw(g, y, call.output_shape), layer, call)


def pooling(g: GraphBuilder, layer, call: Call, op_type: str) -> str:
    """Max or average pooling in NCHW on the image view; padding cells are not counted (a max ignores them,
    an average divides by the inside cells only), as Keras."""
    image = image_of(call.input_shapes[0])
    ph, pw, sh, sw, pt, pl, oh, ow = layer._geometry(image)
    pads = window_pads(image, (ph, pw), (sh, sw), (pt, pl), (oh, ow))
    y = g.op(op_type, [to_nchw(g, call.inputs[0], call.input_shapes[0])], kernel_shape=[ph, pw],
             strides=[sh, sw], pads=pads)
    return from_nchw(g, y, call.output_shape)


@op("MaxPooling2D")
def max_pooling_2d(g, layer, call):
    return pooling(g, layer, call, "MaxPool")


@op("AveragePooling2D")
def average_pooling_2d(g, layer, call):
    return pooling(g, layer, call, "AveragePool")


@op("MaxPooling1D")
def max_pooling_1d(g, layer, call):
    return pooling(g, layer._pooling_2d(), call, "MaxPool")


@op("AveragePooling1D")
def average_pooling_1d(g, layer, call):
    return pooling(g, layer._pooling_2d(), call, "AveragePool")


@op("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D")
def global_pooling(g, layer, call):
    if call.mask is not None:  # GlobalAveragePooling1D: the mean of the unmasked steps
        kept = g.op("Cast", [call.mask], to=1)
        share = g.op("Unsqueeze", [g.op("Div", [kept, g.op("ReduceSum", [kept, g.ints([1])], keepdims=1)]),
                                   g.ints([-1])])
        return g.op("ReduceSum", [g.op("Mul", [call.inputs[0], share]), g.ints([1])], keepdims=int(layer.keepdims))
    reduce = "ReduceMax" if "Max" in layer.type else "ReduceMean"
    axes = list(range(1, len(call.input_shapes[0])))
    return g.op(reduce, [call.inputs[0]], axes=axes, keepdims=int(layer.keepdims))


# -- recurrent ----------------------------------------------------------------------------------------

# activations ONNX's recurrent operators compute: Keras' name -> (ONNX's, its alpha and beta, or None)
RECURRENT_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None), "tanh": ("Tanh", None), "relu": ("Relu", None), "softsign": ("Softsign", None),
    "softplus": ("Softplus", None), "elu": ("Elu", (1.0, 0.0)), "hard_sigmoid": ("HardSigmoid", (1 / 6, 0.5)),
    "linear": ("Affine", (1.0, 0.0)),
}


def recurrent_activations(names: list[str], layer_type: str) -> dict:
    """The attributes `activations`, and `activation_alpha` / `activation_beta` when one takes them."""
    unknown = [name for name in names if name not in RECURRENT_ACTIVATIONS]
    if unknown:
        raise ExportError(f"{layer_type} with activation '{unknown[0]}' has no ONNX form: ONNX's recurrent "
                          f"operators take {', '.join(RECURRENT_ACTIVATIONS)}")
    chosen = [RECURRENT_ACTIVATIONS[name] for name in names]
    attributes: dict = {"activations": [onnx_name for onnx_name, _ in chosen]}
    parameters = [p for _, p in chosen if p is not None]
    if parameters:  # consumed in order by the activations that take them
        attributes["activation_alpha"] = [alpha for alpha, _ in parameters]
        attributes["activation_beta"] = [beta for _, beta in parameters]
    return attributes


def gate_rows(weight: np.ndarray, order: list[int], gates: int) -> np.ndarray:
    """Keras' (in, gates * units) kernel or (gates * units) bias as ONNX's rows (gates * units, ...), the
    gate blocks in ONNX's order."""
    blocks = np.split(weight.T, gates, axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


LSTM_GATES = [0, 3, 1, 2]  # ONNX's i, o, f, c from Keras' i, f, c, o


def recurrence(g: GraphBuilder, op_type: str, layer, call: Call, gate_order: list[int], input_bias: np.ndarray,
               recurrent_bias: np.ndarray, activations: list[str], **attributes) -> list[str]:
    """ONNX's LSTM, GRU or RNN operator over the time-major sequence, read last to first with go_backwards
    (reversed before, so a returned sequence comes in that order too, as Keras'), from the initial states
    when given (the node's inputs after the sequence); its outputs as Keras': the output, then the final
    states with return_state."""
    gates, units = len(gate_order), layer.units
    W = call.weight(g, "kernel", lambda k: gate_rows(k, gate_order, gates)[None], "onnx")
    R = call.weight(g, "recurrent_kernel", lambda k: gate_rows(k, gate_order, gates)[None], "onnx")
    B = g.weight(f"{call.key}/bias:onnx", np.concatenate([gate_rows(input_bias, gate_order, gates),
                                                          gate_rows(recurrent_bias, gate_order, gates)])[None])
    x, lengths = call.inputs[0], ""
    if layer.go_backwards:
        x = reversed_steps(g, x)
    if call.mask is not None:
        if layer.return_sequences:
            raise ExportError(f"{type(layer).__name__} with return_sequences on a masked sequence has no ONNX form "
                              "yet")
        x, lengths = compacted(g, x, reversed_steps(g, call.mask) if layer.go_backwards else call.mask,
                               call.input_shapes[0])
    states = [g.op("Unsqueeze", [state, g.ints([0])]) for state in call.inputs[1:]]
    count = 1 + layer.state_count
    every, *finals = g.op_outputs(op_type, [g.transpose(x, [1, 0, 2]), W, R, B, lengths, *states], count,
                                  hidden_size=units,
                                  **recurrent_activations(activations, type(layer).__name__), **attributes)
    finals = [g.op("Squeeze", [state, g.ints([0])]) for state in finals]  # (1, batch, units)
    if layer.return_sequences:  # (steps, 1, batch, units) -> (batch, steps, units)
        output = g.transpose(g.op("Squeeze", [every, g.ints([1])]), [1, 0, 2])
    else:
        output = finals[0]
    return [output, *finals] if layer.return_state else [output]


def reversed_steps(g: GraphBuilder, x: str) -> str:
    """x with its axis 1 (the steps) last to first."""
    return g.op("Slice", [x, g.ints([-1]), g.ints([-2 ** 63]), g.ints([1]), g.ints([-1])])


def compacted(g: GraphBuilder, x: str, keep: str, shape: Shape) -> tuple[str, str]:
    """A masked sequence as ONNX's recurrent operators take one: each row's kept steps first, in order, and
    how many there are (sequence_lens). Keras carries the state over a masked step, so the final state is
    the one after the last kept step either way."""
    steps = shape[0]
    dropped = g.op("Sub", [g.const(1, np.int64), g.op("Cast", [keep], to=7)])
    order = g.op("Add", [g.const(np.arange(steps), np.int64), g.op("Mul", [dropped, g.const(steps, np.int64)])])
    _, index = g.op_outputs("TopK", [order, g.ints([steps])], 2, axis=1, largest=0, sorted=1)
    index = g.op("Expand", [g.op("Unsqueeze", [index, g.ints([2])]), g.ints([1, 1, shape[1]])])
    lengths = g.op("Cast", [g.op("ReduceSum", [g.op("Cast", [keep], to=7), g.ints([1])], keepdims=0)], to=6)
    return g.op("GatherElements", [x, index], axis=1), lengths


def biases(call: Call, gates: int) -> tuple[np.ndarray, np.ndarray]:
    """(input bias, recurrent bias): Keras' bias, or its two rows (GRU's reset_after); zeros where none."""
    bias = call.weights.get("bias")
    zeros = np.zeros(gates * call.weights["recurrent_kernel"].shape[0], FLOAT)
    if bias is None:
        return zeros, zeros
    return (bias[0], bias[1]) if bias.ndim == 2 else (bias, zeros)


@op("LSTM")
def lstm(g, layer, call):
    """Keras' gates i, f, c, o reordered to ONNX's i, o, f, c."""
    names = [layer.recurrent_activation, layer.activation, layer.activation]
    return recurrence(g, "LSTM", layer, call, LSTM_GATES, *biases(call, 4), names)


@op("GRU")
def gru(g, layer, call):
    """Keras' and ONNX's gates are both z, r, h; reset_after is ONNX's linear_before_reset."""
    names = [layer.recurrent_activation, layer.activation]
    return recurrence(g, "GRU", layer, call, [0, 1, 2], *biases(call, 3), names,
                      linear_before_reset=int(layer.reset_after))


@op("SimpleRNN")
def simple_rnn(g, layer, call):
    return recurrence(g, "RNN", layer, call, [0], *biases(call, 1), [layer.activation])


@op("Bidirectional")
def bidirectional(g, layer, call):
    """The recurrent layer forward and its copy backward, each from its own weights (forward_NAME/...,
    backward_NAME/...); the backward sequence put back in time order; merged, then the final states."""
    runs = []
    for level, rnn in layer.directions:
        weights = {key.removeprefix(level): value for key, value in call.weights.items() if key.startswith(level)}
        inner = Call(call.inputs, call.input_shapes, [], f"{call.key}/{level.rstrip('/')}", weights)
        runs.append(OPS[type(rnn).__name__](g, rnn, inner))
    (y, *forward_states), (y_rev, *backward_states) = runs
    if layer.rnn.return_sequences:
        y_rev = reversed_steps(g, y_rev)
    merge = layer.merge_mode
    if merge == "concat":
        merged = [g.op("Concat", [y, y_rev], axis=-1)]
    elif merge in ("sum", "ave"):
        merged = [g.op("Add", [y, y_rev])]
        if merge == "ave":
            merged = [g.op("Div", merged + [g.const(2.0)])]
    elif merge == "mul":
        merged = [g.op("Mul", [y, y_rev])]
    else:
        merged = [y, y_rev]
    return [*merged, *forward_states, *backward_states]


@mask_maker("Masking")
def masking_mask(g, layer, call):
    """A step is kept where any of its features differs from mask_value."""
    differs = g.op("Cast", [g.op("Not", [g.op("Equal", [call.inputs[0], g.const(layer.mask_value)])])], to=1)
    return g.op("Cast", [g.op("ReduceMax", [differs], axes=[-1], keepdims=0)], to=9)  # bool


@op("Masking")
def masking(g, layer, call):
    """The input with its masked steps set to zero."""
    kept = g.op("Cast", [masking_mask(g, layer, call)], to=1)
    return g.op("Mul", [call.inputs[0], g.op("Unsqueeze", [kept, g.ints([-1])])])


# -- attention ----------------------------------------------------------------------------------------

def attend(g: GraphBuilder, scores: str, value: str, causal: bool, steps: tuple[int, int]) -> str:
    """softmax(scores) @ value over the last axis of scores (..., query steps, key steps); with `causal`,
    query step i sees the key steps j <= i only (-inf added to the others)."""
    if causal:
        query_steps, key_steps = steps
        hidden = np.triu(np.full((query_steps, key_steps), -np.inf, FLOAT), k=1)
        scores = g.op("Add", [scores, g.const(hidden, hint="causal_mask")])
    return g.op("MatMul", [g.op("Softmax", [scores], axis=-1), value])


def query_value_key(call: Call) -> tuple[list[str], list[Shape]]:
    """[query, value, key] and their shapes; the key is the value when not given."""
    inputs, shapes = list(call.inputs), list(call.input_shapes)
    if len(inputs) == 2:
        inputs.append(inputs[1])
        shapes.append(shapes[1])
    return inputs, shapes


@op("MultiHeadAttention")
def multi_head_attention(g, layer, call):
    """Each of query, key and value projected into (batch, heads, steps, size), the query scaled by
    1 / sqrt(key_dim); the heads' outputs joined and projected."""
    (query, value, key), shapes = query_value_key(call)
    heads = layer.num_heads

    def project(x: str, part: str) -> str:
        features, _, size = call.weights[f"{part}/kernel"].shape
        y = g.op("MatMul", [x, call.weight(g, f"{part}/kernel", lambda k: k.reshape(features, -1), "matrix")])
        if layer.use_bias:
            y = g.op("Add", [y, call.weight(g, f"{part}/bias", lambda b: b.reshape(-1), "flat")])
        return g.transpose(g.reshape(y, [0, 0, heads, size]), [0, 2, 1, 3])

    q = g.op("Mul", [project(query, "query"), g.const(1 / np.sqrt(layer.key_dim))])
    k, v = project(key, "key"), project(value, "value")
    scores = g.op("MatMul", [q, g.transpose(k, [0, 1, 3, 2])])
    heads_out = attend(g, scores, v, layer.use_causal_mask, (shapes[0][0], shapes[2][0]))
    joined = g.reshape(g.transpose(heads_out, [0, 2, 1, 3]), [0, 0, -1])
    kernel = call.weights["attention_output/kernel"]
    y = g.op("MatMul", [joined, call.weight(g, "attention_output/kernel",
                                            lambda k: k.reshape(kernel.shape[0] * kernel.shape[1], -1), "matrix")])
    if layer.use_bias:
        y = g.op("Add", [y, call.weight(g, "attention_output/bias", lambda b: b.reshape(-1), "flat")])
    return g.reshape(y, [0, *call.output_shape])


def tanh_scores(g: GraphBuilder, query: str, key: str, w: str, inner: str | None) -> str:
    """scores[b, i, j] = sum over features d of w[d] * tanh(inner * (query[b, i, d] + key[b, j, d]))."""
    pairs = g.op("Add", [g.op("Unsqueeze", [query, g.ints([2])]), g.op("Unsqueeze", [key, g.ints([1])])])
    if inner is not None:
        pairs = g.op("Mul", [pairs, inner])
    return g.op("MatMul", [g.op("Tanh", [pairs]), w])


@op("Attention")
def attention(g, layer, call):
    """Scores query . key (times `scale`), or concat_score_weight * sum of tanh(scale * (query + key))."""
    (query, value, key), shapes = query_value_key(call)
    scale = call.weight(g, "scale") if layer.use_scale else None
    if layer.score_mode == "dot":
        scores = g.op("MatMul", [query, g.transpose(key, [0, 2, 1])])
        if scale is not None:
            scores = g.op("Mul", [scores, scale])
    else:
        ones = g.const(np.ones(shapes[0][-1]))
        scores = g.op("Mul", [tanh_scores(g, query, key, ones, scale), call.weight(g, "concat_score_weight")])
    return attend(g, scores, value, layer.use_causal_mask, (shapes[0][0], shapes[2][0]))


@op("AdditiveAttention")
def additive_attention(g, layer, call):
    """Scores: sum over features of scale * tanh(query + key), `scale` ones without use_scale."""
    (query, value, key), shapes = query_value_key(call)
    w = call.weight(g, "scale") if layer.use_scale else g.const(np.ones(shapes[0][-1]))
    return attend(g, tanh_scores(g, query, key, w, None), value, layer.use_causal_mask, (shapes[0][0], shapes[2][0]))


@op("PositionEmbedding")
def position_embedding(g, layer, call):
    """The first `steps` rows of the embeddings, broadcast to the input's shape."""
    steps = call.input_shapes[0][-2]
    positions = call.weight(g, "embeddings", lambda e: e[:steps], f"first_{steps}")
    return g.op("Expand", [positions, g.op("Shape", [call.inputs[0]])])
