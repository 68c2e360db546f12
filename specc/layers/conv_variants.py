"""The other convolutions over channels-last inputs, as Keras 3 computes them: transposed (Conv2DTranspose,
Conv1DTranspose), depthwise (DepthwiseConv2D, DepthwiseConv1D) and separable (SeparableConv2D, SeparableConv1D).

All compute on images, as Conv1D does: a sequence (steps, channels) is an image one row high, and a 1-D
kernel a kernel one row high, both views. The work is split by images over a few threads
(specc.runtime.workers), each running its images a chunk of lines at a time, sized as Conv2D's
(specc.layers.conv.CHUNK_BYTES).

A transposed convolution is the input gradient of a convolution from its output back to its input: its
forward pass is a GEMM of the input pixels by the kernel, folded into the output by col2im, and its backward
pass that convolution's forward, im2col and GEMMs (kernels.conv). A depthwise convolution does too few
multiply-adds per value for a GEMM and runs directly (kernels.conv_variants). A separable convolution is a
depthwise one, then a 1x1 convolution (a GEMM over channels), fused chunk by chunk so the depthwise output
never leaves the cache (and is never stored whole: the backward pass recomputes it).

Measured against the same layers in PyTorch and in Keras on JAX on this 2-core machine, forward + backward
(benchmarks/conv_variants_gflops.py has the sizes): SeparableConv2D 8x45x45x256 -> 512 in 0.48-0.54 s against
0.77-0.87 s and 3.0-3.7 s, Conv2DTranspose(32, 3, strides 2) on 128x14x14x32 in 0.085-0.097 s against 0.26-0.40 s
and 0.72-0.93 s (a loaded machine: the ranges are of two runs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from .. import kernels
from ..registry import Config
from ..runtime import workers
from ..runtime.heap import keep_freed_memory
from .activations import ActivationName, activate, activate_keeping_input, activation_grad, needs_input
from .base import (
    LAYERS,
    ActivityArguments,
    BiasArguments,
    ConstraintArgument,
    InitializerArgument,
    KernelArguments,
    Layer,
    RegularizerArgument,
    Shape,
    ShapeError,
    show_shape,
)
from .conv import (
    Geometry,
    Padding,
    Pair,
    check_image,
    chunk_rows,
    chunked_activation_grad,
    chunks,
    image_split,
    pair,
    span,
    window_geometry,
)

OutputPadding = Union[NonNegativeInt, Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]]

PADDING = "valid: windows stay inside the input, which shrinks; same: zero padding keeps size ceil(input / stride)."
DEPTH_MULTIPLIER = "Output channels per input channel: each channel is convolved with this many filters."
DILATION_2D = "Spacing of the window's taps: one number for both axes, or [h, w]; d reads every d-th row (column)."
DILATION_1D = "Spacing of the window's taps: d reads every d-th step."


class Windowed(Layer):
    """What the types here share: a window sliding along `rank` axes of channels-last inputs, computed on the
    image view of the inputs (a sequence is an image one row high).

    Each type gives its fields, in Keras' order."""
    rank: ClassVar[int]  # how many axes the window slides along: 1 or 2

    if TYPE_CHECKING:  # fields of every type here, declared by each
        kernel_size: Any
        strides: Any
        padding: str
        dilation_rate: Any
        activation: str
        use_bias: bool

    def compute(self, weights: dict, xs: list) -> tuple:
        """The output, activation fused where the kernels can apply it as they write (see forward), and the cache."""
        raise NotImplementedError

    def compute_backward(self, weights: dict, grads: dict, cache, dy: np.ndarray, need_dx: bool) -> list:
        raise NotImplementedError

    def forward(self, weights, xs, training):
        """An activation whose derivative needs its input (gelu, silu...) is applied after the kernels, which
        then compute the linear output and keep it."""
        if not needs_input(self.activation):
            return self.compute(weights, xs)
        z, cache = self._linear().compute(weights, xs)
        y = activate_keeping_input(z, None, self.activation)
        return y, (cache, z, y)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        if not needs_input(self.activation):
            return self.compute_backward(weights, grads, cache, dy, need_dx)
        cache, z, y = cache
        dz = activation_grad(np.ascontiguousarray(dy, dtype=y.dtype), y, self.activation, z)
        return self._linear().compute_backward(weights, grads, cache, dz, need_dx)

    def _linear(self) -> "Windowed":
        return self.model_copy(update={"activation": "linear"})

    def _image_pair(self, value) -> tuple[int, int]:
        """An argument as (height, width) on the image view: a sequence's is one row high."""
        return (1, value) if self.rank == 1 else pair(value)

    def _window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, strides, dilation), each as (height, width) on the image view."""
        return (self._image_pair(self.kernel_size), self._image_pair(self.strides),
                self._image_pair(self.dilation_rate))

    def _image_shape(self, shape: Shape) -> Shape:
        """The shape of one input on the image view, after checking it has the axes the type needs."""
        name = type(self).__name__
        if self.rank == 2:
            check_image(name, shape)
            return tuple(shape)
        if len(shape) != 2:
            hint = f"; give the input a channels axis, e.g. shape [{shape[0]}, 1]" if len(shape) == 1 else ""
            raise ShapeError(f"{name} needs sequences shaped (steps, channels), got {show_shape(shape)}{hint}")
        return (1, *shape)

    def _as_image(self, array: np.ndarray, axes: int) -> np.ndarray:
        """The image view of a batch of inputs (axes=1) or of a kernel (axes=0): a view."""
        return array.reshape(*array.shape[:axes], *(1,) * (2 - self.rank), *array.shape[axes:])

    def _from_image(self, y: np.ndarray, images: int, height: int, width: int) -> np.ndarray:
        """A batch of outputs computed as (pixels, channels) rows, in the type's own shape."""
        return y.reshape(images, *(height, width)[2 - self.rank:], -1)

    def _operands(self, x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The input and a kernel as contiguous image views, in the dtype the layer computes in."""
        dtype = np.result_type(x.dtype, kernel.dtype) if np.issubdtype(x.dtype, np.floating) else kernel.dtype
        return (self._as_image(np.ascontiguousarray(x, dtype=dtype), 1),
                self._as_image(np.ascontiguousarray(kernel, dtype=dtype), 0))


# -- depthwise and separable -----------------------------------------------------------------------------

class DepthwiseArguments(Config):
    """Keras' arguments for the depthwise kernel (DepthwiseConv's `kernel`, SeparableConv's `depthwise_kernel`)."""
    depthwise_initializer: InitializerArgument = "glorot_uniform"
    depthwise_regularizer: Optional[RegularizerArgument] = None
    depthwise_constraint: Optional[ConstraintArgument] = None


class PointwiseArguments(Config):
    """Keras' arguments for SeparableConv's `pointwise_kernel`."""
    pointwise_initializer: InitializerArgument = "glorot_uniform"
    pointwise_regularizer: Optional[RegularizerArgument] = None
    pointwise_constraint: Optional[ConstraintArgument] = None


class DepthwiseWindowed(Windowed):
    """What the depthwise and separable types share: the depthwise convolution (kernels.conv_variants), each
    input channel convolved with its own depth_multiplier filters."""
    if TYPE_CHECKING:
        depth_multiplier: int

    def _geometry(self, image_shape: Shape) -> Geometry:
        (kh, kw), (sh, sw), (dh, dw) = self._window()
        oh, pt = window_geometry(image_shape[0], span(kh, dh), sh, self.padding)
        ow, pl = window_geometry(image_shape[1], span(kw, dw), sw, self.padding)
        return kh, kw, sh, sw, dh, dw, pt, pl, oh, ow

    def _output_image(self, shape: Shape) -> tuple[int, int]:
        """(out_h, out_w) on the image view, after checking the (dilated) kernel fits with padding 'valid'."""
        image = self._image_shape(shape)
        kernel, _, dilation = self._window()
        spans = [span(k, d) for k, d in zip(kernel, dilation)]
        if self.padding == "valid" and any(s > size for s, size in zip(spans, image)):
            dilated = f" (dilated, it spans {'x'.join(map(str, spans[2 - self.rank:]))})" if max(dilation) > 1 else ""
            raise ShapeError(f"{type(self).__name__} kernel_size {'x'.join(map(str, kernel[2 - self.rank:]))}"
                             f"{dilated} is larger than its input {show_shape(shape)} with padding 'valid'; use a "
                             f"smaller kernel_size or padding: same")
        *_, out_h, out_w = self._geometry(image)
        return out_h, out_w

    def _depthwise_shape(self, channels: int) -> Shape:
        return (*self._window()[0][2 - self.rank:], channels, self.depth_multiplier)


class DepthwiseConvolution(DepthwiseWindowed):
    """What DepthwiseConv2D and DepthwiseConv1D share: the depthwise convolution, plus bias and activation."""

    def weight_argument(self, weight, kind):
        """Keras names the depthwise kernel `kernel` here, but its arguments `depthwise_*`."""
        return super().weight_argument("depthwise_kernel" if weight == "kernel" else weight, kind)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        oh, ow = self._output_image(shape)
        return (oh, ow, shape[-1] * self.depth_multiplier)[2 - self.rank:]

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        channels = input_shapes[0][-1]
        shapes: dict[str, Shape] = {"kernel": self._depthwise_shape(channels)}
        if self.use_bias:
            shapes["bias"] = (channels * self.depth_multiplier,)
        return shapes

    def compute(self, weights, xs):
        keep_freed_memory()
        x, kernel = self._operands(xs[0], weights["kernel"])
        bias = weights.get("bias")
        bias = None if bias is None else bias.astype(x.dtype, copy=False)
        geometry = self._geometry(x.shape[1:])
        n, (oh, ow), width = len(x), geometry[-2:], kernel.shape[2] * kernel.shape[3]
        y = np.empty((n * oh * ow, width), dtype=x.dtype)
        step = chunk_rows(width, ow, x.dtype)

        def images(first, stop):
            for a, b in chunks(first * oh, stop * oh, step):
                rows = y[a * ow:b * ow]
                kernels.conv_variants.depthwise_forward(x, kernel, *geometry[2:], a, b, rows)
                activate(rows, bias, self.activation)  # while the chunk is still in cache
        workers.run(images, workers.image_groups(n))
        return self._from_image(y, n, oh, ow), (x, y, geometry)

    def compute_backward(self, weights, grads, cache, dy, need_dx):
        x, y, geometry = cache
        kernel = self._as_image(weights["kernel"], 0).astype(y.dtype, copy=False)
        dy = np.ascontiguousarray(dy, dtype=y.dtype).reshape(y.shape)
        oh, ow = geometry[-2:]
        step = chunk_rows(y.shape[1], ow, y.dtype)
        dx = np.zeros(x.shape, dtype=y.dtype) if need_dx else np.empty((0,) * 4, dtype=y.dtype)

        def images(first, stop):
            dz_of = chunked_activation_grad(self.activation, dy, y)
            dk = np.zeros(kernel.shape, dtype=y.dtype)
            db = np.zeros(y.shape[1], dtype=y.dtype) if self.use_bias else None
            for a, b in chunks(first * oh, stop * oh, step):
                dz = dz_of(a * ow, b * ow)
                if db is not None:
                    db += dz.sum(axis=0)
                kernels.conv_variants.depthwise_backward(x, kernel, dz, *geometry[2:], a, b, dk, dx)
            return dk, db

        dks, dbs = zip(*workers.run(images, workers.image_groups(len(x))))
        grads["kernel"] += workers.add_in_thread_order(dks[0], dks[1:]).reshape(grads["kernel"].shape)
        if self.use_bias:
            grads["bias"] += workers.add_in_thread_order(dbs[0], dbs[1:])
        return [dx.reshape(len(x), *x.shape[3 - self.rank:]) if need_dx else None]


@LAYERS.register()
class DepthwiseConv2D(DepthwiseArguments, BiasArguments, ActivityArguments, DepthwiseConvolution):
    """Depthwise 2-D convolution over channels-last images: each channel c convolved with its own
    depth_multiplier filters into output channels c * depth_multiplier + m; activation(that + bias)."""
    type: Literal["DepthwiseConv2D"]
    kernel_size: Pair = Field(description="Window height and width: one number for a square, or [h, w].")
    strides: Pair = Field(1, description="Step between windows: one number for both axes, or [h, w].")
    padding: Padding = Field("valid", description=PADDING)
    depth_multiplier: PositiveInt = Field(1, description=DEPTH_MULTIPLIER)
    dilation_rate: Pair = Field(1, description=DILATION_2D)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 2


@LAYERS.register()
class DepthwiseConv1D(DepthwiseArguments, BiasArguments, ActivityArguments, DepthwiseConvolution):
    """Depthwise 1-D convolution over channels-last sequences: each channel c convolved with its own
    depth_multiplier filters into output channels c * depth_multiplier + m; activation(that + bias)."""
    type: Literal["DepthwiseConv1D"]
    kernel_size: PositiveInt = Field(description="Window length, in steps.")
    strides: PositiveInt = Field(1, description="Step between windows.")
    padding: Padding = Field("valid", description=PADDING)
    depth_multiplier: PositiveInt = Field(1, description=DEPTH_MULTIPLIER)
    dilation_rate: PositiveInt = Field(1, description=DILATION_1D)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 1


class SeparableConvolution(DepthwiseWindowed):
    """What SeparableConv2D and SeparableConv1D share: the depthwise convolution, then a GEMM over channels
    (the pointwise kernel), plus bias and activation, a chunk of output lines at a time."""

    if TYPE_CHECKING:
        filters: int

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        oh, ow = self._output_image(input_shapes[0])
        return (oh, ow, self.filters)[2 - self.rank:]

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        channels = input_shapes[0][-1]
        shapes: dict[str, Shape] = {
            "depthwise_kernel": self._depthwise_shape(channels),
            "pointwise_kernel": (*(1,) * self.rank, channels * self.depth_multiplier, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute(self, weights, xs):
        keep_freed_memory()
        x, depthwise = self._operands(xs[0], weights["depthwise_kernel"])
        width = depthwise.shape[2] * depthwise.shape[3]
        pointwise = np.ascontiguousarray(weights["pointwise_kernel"], dtype=x.dtype).reshape(width, self.filters)
        bias = weights.get("bias")
        bias = None if bias is None else bias.astype(x.dtype, copy=False)
        geometry = self._geometry(x.shape[1:])
        n, (oh, ow) = len(x), geometry[-2:]
        y = np.empty((n * oh * ow, self.filters), dtype=x.dtype)
        step = chunk_rows(width + self.filters, ow, x.dtype)
        groups, matmul = image_split(n)

        def images(first, stop):
            buffer = np.empty((min(step, (stop - first) * oh) * ow, width), dtype=x.dtype)
            for a, b in chunks(first * oh, stop * oh, step):
                d, z = buffer[:(b - a) * ow], y[a * ow:b * ow]
                kernels.conv_variants.depthwise_forward(x, depthwise, *geometry[2:], a, b, d)
                matmul(d, pointwise, out=z)
                activate(z, bias, self.activation)
        workers.run(images, groups)
        return self._from_image(y, n, oh, ow), (x, y, geometry)

    def compute_backward(self, weights, grads, cache, dy, need_dx):
        """The depthwise output is recomputed chunk by chunk rather than kept from the forward pass: it is
        depth_multiplier times the input's size, and recomputing it costs kh*kw multiply-adds per value
        against the `filters` of the pointwise GEMMs."""
        x, y, geometry = cache
        dtype, filters = y.dtype, self.filters
        depthwise = self._as_image(weights["depthwise_kernel"], 0).astype(dtype, copy=False)
        width = depthwise.shape[2] * depthwise.shape[3]
        pointwise = weights["pointwise_kernel"].astype(dtype, copy=False).reshape(width, filters)
        pointwise_t = np.ascontiguousarray(pointwise.T)
        dy = np.ascontiguousarray(dy, dtype=dtype).reshape(y.shape)
        oh, ow = geometry[-2:]
        step = chunk_rows(2 * width + filters, ow, dtype)
        dx = np.zeros(x.shape, dtype=dtype) if need_dx else np.empty((0,) * 4, dtype=dtype)
        groups, matmul = image_split(len(x))

        def images(first, stop):
            dz_of = chunked_activation_grad(self.activation, dy, y)
            rows = min(step, (stop - first) * oh) * ow
            d_buffer, dd_buffer = np.empty((rows, width), dtype=dtype), np.empty((rows, width), dtype=dtype)
            ddepthwise = np.zeros(depthwise.shape, dtype=dtype)
            dpointwise, part = np.zeros((width, filters), dtype=dtype), np.empty((width, filters), dtype=dtype)
            db = np.zeros(filters, dtype=dtype) if self.use_bias else None
            for a, b in chunks(first * oh, stop * oh, step):
                dz, d, dd = dz_of(a * ow, b * ow), d_buffer[:(b - a) * ow], dd_buffer[:(b - a) * ow]
                if db is not None:
                    db += dz.sum(axis=0)
                kernels.conv_variants.depthwise_forward(x, depthwise, *geometry[2:], a, b, d)
                matmul(d.T, dz, out=part)
                dpointwise += part
                matmul(dz, pointwise_t, out=dd)
                kernels.conv_variants.depthwise_backward(x, depthwise, dd, *geometry[2:], a, b, ddepthwise, dx)
            return ddepthwise, dpointwise, db

        ddws, dpws, dbs = zip(*workers.run(images, groups))
        grads["depthwise_kernel"] += workers.add_in_thread_order(ddws[0], ddws[1:]).reshape(
            grads["depthwise_kernel"].shape)
        grads["pointwise_kernel"] += workers.add_in_thread_order(dpws[0], dpws[1:]).reshape(
            grads["pointwise_kernel"].shape)
        if self.use_bias:
            grads["bias"] += workers.add_in_thread_order(dbs[0], dbs[1:])
        return [dx.reshape(len(x), *x.shape[3 - self.rank:]) if need_dx else None]


@LAYERS.register()
class SeparableConv2D(DepthwiseArguments, PointwiseArguments, BiasArguments, ActivityArguments,
                      SeparableConvolution):
    """Separable 2-D convolution over channels-last images: a depthwise convolution (each channel with its own
    depth_multiplier filters), then a 1x1 convolution of those channels into `filters`; activation(that + bias)."""
    type: Literal["SeparableConv2D"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Depthwise window height and width: one number for a square, or [h, w].")
    strides: Pair = Field(1, description="Step between windows: one number for both axes, or [h, w].")
    padding: Padding = Field("valid", description=PADDING)
    dilation_rate: Pair = Field(1, description=DILATION_2D)
    depth_multiplier: PositiveInt = Field(1, description=DEPTH_MULTIPLIER)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 2


@LAYERS.register()
class SeparableConv1D(DepthwiseArguments, PointwiseArguments, BiasArguments, ActivityArguments,
                      SeparableConvolution):
    """Separable 1-D convolution over channels-last sequences: a depthwise convolution (each channel with its
    own depth_multiplier filters), then a 1x1 convolution of those channels into `filters`; activation(that +
    bias)."""
    type: Literal["SeparableConv1D"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: PositiveInt = Field(description="Depthwise window length, in steps.")
    strides: PositiveInt = Field(1, description="Step between windows.")
    padding: Padding = Field("valid", description=PADDING)
    dilation_rate: PositiveInt = Field(1, description=DILATION_1D)
    depth_multiplier: PositiveInt = Field(1, description=DEPTH_MULTIPLIER)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 1


# -- transposed ------------------------------------------------------------------------------------------

def transposed_axis(size: int, window: int, stride: int, padding: str,
                    output_padding: Optional[int]) -> tuple[int, int]:
    """(output size, crop) of a transposed convolution along one axis, as Keras 3 places them: input cell i
    and kernel tap t (of a window spanning `window` cells) add into output cell i * stride + t - crop, those
    landing outside [0, output size) are dropped.

    valid: (size - 1) * stride + window + output_padding cells (by default the output padding
    max(window, stride) - window), nothing cropped. same: size * stride cells, or with an output padding
    (size - 1) * stride + window % 2 + output_padding; Keras pads the stride-dilated input by `total` cells
    for a stride-1 convolution with the flipped kernel, ceil(total / 2) before (at most window - 1): what it
    leaves out of the window before is cropped here."""
    if padding == "valid":
        extra = max(window, stride) - window if output_padding is None else output_padding
        return (size - 1) * stride + window + extra, 0
    if output_padding is None:
        out, total = size * stride, stride + window - 2
    else:
        out, total = (size - 1) * stride + window % 2 + output_padding, window + window % 2 - 2 + output_padding
    return out, window - 1 - min((total + 1) // 2, window - 1)


class TransposedConvolution(Windowed):
    """What Conv2DTranspose and Conv1DTranspose share. The output y is computed as the input gradient of a
    convolution from y back to the input x (kernel (kh, kw, filters, channels), the Keras layout, strides
    and dilation as given, padding the crop): col2im of x's pixels times the kernel. Its gradients are that
    convolution's forward pass on dz = d(loss)/d(pre-activation): with P = im2col(dz), the kernel's is
    P^T times x's pixels, x's is P times the kernel."""

    if TYPE_CHECKING:
        filters: int
        output_padding: Any

    def _check_arguments(self) -> None:
        """What Keras refuses too (messages without the type's name: the caller says it, and the shape)."""
        _, strides, dilation = self._window()
        if max(strides) > 1 and max(dilation) > 1:
            raise ShapeError(f"strides {self.strides} with dilation_rate {self.dilation_rate}: a transposed "
                             f"convolution cannot be both strided and dilated; set one of them to 1")
        if self.output_padding is not None:
            given = self._image_pair(self.output_padding)
            if any(p >= s for p, s in zip(given[2 - self.rank:], strides[2 - self.rank:])):
                raise ShapeError(f"output_padding {self.output_padding} must be less than strides {self.strides} "
                                 f"along each axis: it only adds the cells a larger input would have reached")

    def _transposed_geometry(self, image_shape: Shape) -> tuple[Geometry, tuple[int, int]]:
        """(the geometry of the convolution from the output back to the input, the output's (height, width))."""
        kernel, strides, dilation = self._window()
        given = (None, None) if self.output_padding is None else self._image_pair(self.output_padding)
        # a sequence's one row (a 1-high window at stride 1) takes the default, which keeps it one row
        output_padding: tuple[Optional[int], Optional[int]] = (None, given[1]) if self.rank == 1 else given
        (out_h, crop_h), (out_w, crop_w) = [
            transposed_axis(size, span(k, d), s, self.padding, p)
            for size, k, s, d, p in zip(image_shape[:2], kernel, strides, dilation, output_padding)]
        return (*kernel, *strides, *dilation, crop_h, crop_w, *image_shape[:2]), (out_h, out_w)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        image = self._image_shape(shape)
        self._check_arguments()
        out_h, out_w = self._transposed_geometry(image)[1]
        if min(out_h, out_w) < 1:
            raise ShapeError(f"its output would be empty (kernel_size {self.kernel_size}, padding 'same' and "
                             f"output_padding {self.output_padding} on {show_shape(shape)}); leave output_padding "
                             f"out, or use an odd kernel_size")
        return (out_h, out_w, self.filters)[2 - self.rank:]

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        kernel = self._window()[0][2 - self.rank:]
        shapes: dict[str, Shape] = {"kernel": (*kernel, self.filters, input_shapes[0][-1])}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute(self, weights, xs):
        keep_freed_memory()
        x, kernel = self._operands(xs[0], weights["kernel"])
        bias = weights.get("bias")
        bias = None if bias is None else bias.astype(x.dtype, copy=False)
        geometry, (out_h, out_w) = self._transposed_geometry(x.shape[1:])
        n, in_h, in_w, channels = x.shape
        filters = self.filters
        kernel_t = np.ascontiguousarray(kernel.reshape(-1, channels).T)  # (channels, kh * kw * filters)
        pixels = x.reshape(-1, channels)
        y = np.empty((n, out_h, out_w, filters), dtype=x.dtype)
        step = chunk_rows(kernel_t.shape[1] + channels, in_w, x.dtype)
        groups, matmul = image_split(n)

        def images(first, stop):
            y[first:stop] = 0  # col2im adds into it
            cols = np.empty((min(step, (stop - first) * in_h) * in_w, kernel_t.shape[1]), dtype=x.dtype)
            for a, b in chunks(first * in_h, stop * in_h, step):
                chunk = cols[:(b - a) * in_w]
                matmul(pixels[a * in_w:b * in_w], kernel_t, out=chunk)
                kernels.conv.col2im_rows_add(chunk, 0, filters, a, b, *geometry, y)
            activate(y[first:stop], bias, self.activation)
        workers.run(images, groups)
        return self._from_image(y, n, out_h, out_w), (x, y, geometry)

    def compute_backward(self, weights, grads, cache, dy, need_dx):
        x, y, geometry = cache
        dtype, filters = y.dtype, self.filters
        n, in_h, in_w, channels = x.shape
        kernel = self._as_image(weights["kernel"], 0).astype(dtype, copy=False).reshape(-1, channels)
        dy = np.ascontiguousarray(dy, dtype=dtype).reshape(y.shape)
        pixels = x.reshape(-1, channels)
        dx = np.empty(pixels.shape, dtype=dtype) if need_dx else None
        step = chunk_rows(kernel.shape[0] + channels, in_w, dtype)
        groups, matmul = image_split(n)

        def images(first, stop):
            dz = np.ascontiguousarray(activation_grad(dy[first:stop], y[first:stop], self.activation))
            cols = np.empty((min(step, (stop - first) * in_h) * in_w, kernel.shape[0]), dtype=dtype)
            dk, part = np.zeros(kernel.shape, dtype=dtype), np.empty(kernel.shape, dtype=dtype)
            for a, b in chunks(first * in_h, stop * in_h, step):
                chunk = cols[:(b - a) * in_w]
                kernels.conv.im2col_rows(dz, 0, filters, a - first * in_h, b - first * in_h, *geometry, chunk)
                matmul(chunk.T, pixels[a * in_w:b * in_w], out=part)
                dk += part
                if dx is not None:
                    matmul(chunk, kernel, out=dx[a * in_w:b * in_w])
            return dk, dz.reshape(-1, filters).sum(axis=0) if self.use_bias else None

        dks, dbs = zip(*workers.run(images, groups))
        grads["kernel"] += workers.add_in_thread_order(dks[0], dks[1:]).reshape(grads["kernel"].shape)
        if self.use_bias:
            grads["bias"] += workers.add_in_thread_order(dbs[0], dbs[1:])
        return [None if dx is None else dx.reshape(n, *x.shape[3 - self.rank:])]


@LAYERS.register()
class Conv2DTranspose(KernelArguments, BiasArguments, ActivityArguments, TransposedConvolution):
    """Transposed 2-D convolution over channels-last images (the gradient of a Conv2D with respect to its
    input, as a layer): each input pixel adds its kernel-weighted window into the output, which grows by
    the strides; activation(that + bias)."""
    type: Literal["Conv2DTranspose"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Window height and width: one number for a square, or [h, w].")
    strides: Pair = Field(1, description="Output step between input pixels: one number for both axes, or [h, w].")
    padding: Padding = Field("valid", description="valid: every window lands whole, the output is (input - 1) * "
                                                  "strides + kernel_size; same: the output is input * strides.")
    output_padding: Optional[OutputPadding] = Field(
        None, description="Cells added after the output along each axis (less than the strides): one number, "
                          "or [h, w]; default: as padding sets the size.")
    dilation_rate: Pair = Field(1, description=DILATION_2D)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 2


@LAYERS.register()
class Conv1DTranspose(KernelArguments, BiasArguments, ActivityArguments, TransposedConvolution):
    """Transposed 1-D convolution over channels-last sequences (the gradient of a Conv1D with respect to its
    input, as a layer): each input step adds its kernel-weighted window into the output, which grows by the
    strides; activation(that + bias)."""
    type: Literal["Conv1DTranspose"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: PositiveInt = Field(description="Window length, in steps.")
    strides: PositiveInt = Field(1, description="Output step between input steps.")
    padding: Padding = Field("valid", description="valid: every window lands whole, the output is (steps - 1) * "
                                                  "strides + kernel_size; same: the output is steps * strides.")
    output_padding: Optional[NonNegativeInt] = Field(
        None, description="Steps added after the output (less than the strides); default: as padding sets the "
                          "length.")
    dilation_rate: PositiveInt = Field(1, description=DILATION_1D)
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 1
