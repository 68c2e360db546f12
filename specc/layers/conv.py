"""Conv1D, Conv2D and MaxPooling2D over channels-last inputs, as in Keras.

Both convolutions compute on images (batch, height, width, channels): a sequence (batch, steps, channels)
is viewed as images one row high, its kernel as a one-row window (Convolution). Convolution runs as GEMM
on im2col patches (Im2colConv): a bounded buffer takes the patches of a slice of the batch at a time (whole
images, or some output rows of one), so memory stays flat however large the images are. Layers with few
filters convolve directly instead (DirectConv, see DIRECT_FILTERS), and 3x3 stride-1 layers with many
channels by Winograd's algorithm (WinogradConv, see WINOGRAD_CHANNELS); each is a forward and its backward,
and Convolution._algorithm_for picks one per call. Dilation and groups: the direct and im2col kernels take
both; Winograd's takes neither, so such layers go through im2col. All the work is split by images over a
few threads (specc.runtime.workers), each running its images end to end with single-threaded BLAS.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import Field, PositiveInt

from .. import kernels
from ..runtime import blas, workers
from ..runtime.heap import keep_freed_memory
from .activations import ACTIVATIONS, ActivationName, activate, activate_keeping_input, activation_grad, fused
from .base import LAYERS, ActivityArguments, BiasArguments, KernelArguments, Layer, Shape, ShapeError, show_shape

Pair = Union[PositiveInt, Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]]
Padding = Literal["valid", "same"]
Geometry = tuple[int, ...]  # kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w: a convolution's, on images

# Working-set budget of one chunk (its im2col rows plus its output rows): small enough to stay in the
# last-level cache next to the other threads' chunks, so the GEMM reads the patches, and the activation
# its output, at cache speed. Shared vision epochs: 2 MB 3.3-3.6 s per 2048 pairs, 4 MB 3.7-3.8 s,
# 8 MB 4.3-4.5 s; the inception convolutions take the same time with 2 or 4 MB.
CHUNK_BYTES = 2 << 20

# Layers with at most this many filters convolve directly (conv_direct_*), without im2col and BLAS
# (residual spec, Conv2D(3) on 8x256x256x3: forward 3.8 ms, kernel gradient 6.4 ms, against 45 and 63 ms
# through im2col); the kernel gradient sums blocks of this many output lines, then the blocks in order.
DIRECT_FILTERS = 8
DIRECT_BLOCK_LINES = 16

# 3x3, stride-1 layers with at least this many input channels (and more filters than DIRECT_FILTERS)
# convolve by Winograd's F(2x2, 3x3) (kernels.winograd): 2.25x fewer multiply-adds than im2col, in 16
# GEMMs as wide as the layer's channels. Shared vision's Conv2D(64) on 25x25x64 images, forward + backward
# of 16 images on one core: 14.4 ms, against 22.3 ms through im2col. With few channels the GEMMs are
# too thin for BLAS to gain.
WINOGRAD_CHANNELS = 16
# A Winograd chunk's transformed input and output: 1 MB (128 tiles at 64 channels and filters) stays in a
# core's L2 cache. That layer, forward + backward of 16 images on one thread: 64 tiles 13.1 ms, 128 tiles
# 12.1 ms, 256 tiles 14.4 ms, 512 tiles 14.7 ms.
WINOGRAD_CHUNK_BYTES = 1 << 20
# Winograd's kernel transform G, 4x3: U = G g G^T for each (channel, filter) of a 3x3 kernel g.
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def chunk_rows(row_elements: int, rows_per_group: int, dtype) -> int:
    """How many groups of rows (output lines, or single rows) one chunk takes: at least one."""
    return max(1, CHUNK_BYTES // (row_elements * rows_per_group * np.dtype(dtype).itemsize))


def image_split(images: int):
    """(groups, matmul): the image groups workers.run splits `images` into, and the matrix product for
    tasks over them: with one group, blas.matmul, which picks each product's BLAS threads; with several,
    numpy's, on the one BLAS thread each task has."""
    groups = workers.image_groups(images)
    return groups, blas.matmul if len(groups) == 1 else np.matmul


def chunks(first: int, stop: int, step: int):
    """(start, stop) of consecutive slices of range(first, stop), `step` long but the last."""
    for start in range(first, stop, step):
        yield start, min(start + step, stop)


def chunked_activation_grad(activation: str, dy: np.ndarray, y: np.ndarray):
    """grad(a, b): d(loss)/d(pre-activation) of rows [a, b) of the (rows, channels) arrays dy and y.

    Computed chunk by chunk into one reused buffer, valid until the next call."""
    if activation == "linear":
        return lambda a, b: dy[a:b]
    k = kernels.activations
    code = ACTIVATIONS[activation]
    buffer: list[np.ndarray] = []  # at most one array, grown when a longer chunk comes

    def grad(a, b):
        if not buffer or len(buffer[0]) < b - a:
            buffer[:] = [np.empty((b - a, dy.shape[1]), dtype=dy.dtype)]
        dz = buffer[0][:b - a]
        k.activation_backward(dy[a:b], y[a:b], code, dz)
        return dz
    return grad


def pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def window_geometry(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) along one axis, exactly as Keras/TensorFlow place them.

    valid: floor((size - window) / stride) + 1 outputs, no padding (the caller checks size >= window).
    same: ceil(size / stride) outputs; the padding needed, max((out - 1) * stride + window - size, 0),
    goes half before (rounded down) and the rest after."""
    if padding == "valid":
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + window - size, 0) // 2


def check_image(layer: str, shape: Shape) -> None:
    if len(shape) != 3:
        hint = (f"; give the input a channels axis, e.g. shape [{', '.join(map(str, shape))}, 1]"
                if len(shape) == 2 else "")
        raise ShapeError(f"{layer} needs images shaped (height, width, channels), "
                         f"got {show_shape(shape)}{hint}")


def check_window(layer: str, what: str, window: tuple, shape: Shape, padding: str) -> None:
    if padding == "valid" and (window[0] > shape[0] or window[1] > shape[1]):
        raise ShapeError(f"{layer} {what} {window[0]}x{window[1]} is larger than its input "
                         f"{show_shape(shape)} with padding 'valid'; use a smaller {what} or padding: same")


def span(window: int, dilation: int) -> int:
    """How many input cells a window of `window` taps, `dilation` apart, covers."""
    return (window - 1) * dilation + 1


class Convolution(Layer):
    """What Conv1D and Conv2D share. Both compute on images: a sequence (steps, channels) is an image one row
    high, (1, steps, channels), and a Conv1D kernel (k, in, filters) a (1, k, in, filters) one, both views.

    Each type gives its fields, in Keras' order, and `_window` and `_geometry` on that image view."""
    rank: ClassVar[int]  # how many axes a window slides along: 1 (Conv1D) or 2 (Conv2D)

    if TYPE_CHECKING:  # fields of both types, declared by each
        filters: int
        strides: Any
        padding: str
        dilation_rate: Any
        groups: int
        activation: str
        use_bias: bool

    def _window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, strides, dilation), each as (height, width) on the image view."""
        raise NotImplementedError

    def _geometry(self, image_shape: Shape) -> Geometry:
        raise NotImplementedError

    def _as_image(self, x: np.ndarray) -> np.ndarray:
        """The image view of a contiguous batch of inputs: (batch, 1, steps, channels) for sequences."""
        return x.reshape(len(x), *(1,) * (2 - self.rank), *x.shape[1:])

    def _as_image_kernel(self, kernel: np.ndarray) -> np.ndarray:
        """The image view of a kernel, or of its gradient (a view, so sums added into it land in it)."""
        return kernel[(np.newaxis,) * (2 - self.rank)]

    def _check_arguments(self, channels: int) -> None:
        """What Keras refuses too (messages without the type's name: the caller says it, and the shape)."""
        strides, dilation = self._window()[1:]
        if max(strides) > 1 and max(dilation) > 1:
            raise ShapeError(f"strides {self.strides} with dilation_rate {self.dilation_rate}: a convolution "
                             f"cannot be both strided and dilated; set one of them to 1")
        for count, what in [(channels, "input channels"), (self.filters, "filters")]:
            if count % self.groups:
                raise ShapeError(f"groups {self.groups} does not divide its {count} {what}: each group convolves "
                                 f"an equal share of the channels into an equal share of the filters")

    def _check_fits(self, shape: Shape) -> None:
        """With padding 'valid', the (dilated) kernel must fit inside the input."""
        kernel, _, dilation = (axes[2 - self.rank:] for axes in self._window())  # the input's axes
        spans = [span(k, d) for k, d in zip(kernel, dilation)]
        if self.padding == "valid" and any(s > size for s, size in zip(spans, shape)):
            dilated = f" (dilated, it spans {'x'.join(map(str, spans))})" if max(dilation) > 1 else ""
            raise ShapeError(f"{type(self).__name__} kernel_size {'x'.join(map(str, kernel))}{dilated} is larger "
                             f"than its input {show_shape(shape)} with padding 'valid'; use a smaller kernel_size "
                             f"or padding: same")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        self._check_arguments(shape[-1])
        self._check_fits(shape)
        *_, oh, ow = self._geometry((1,) * (2 - self.rank) + tuple(shape))
        return (oh, ow, self.filters)[2 - self.rank:]

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        kernel = self._window()[0][2 - self.rank:]
        shapes: dict[str, Shape] = {"kernel": (*kernel, input_shapes[0][-1] // self.groups, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def _pointwise(self) -> bool:
        """A 1x1 kernel needs no im2col: it is a matmul on the (strided) pixels; its 'same' padding is 0."""
        return self._window()[0] == (1, 1)

    def _direct(self, channels: int) -> bool:
        """Few filters: the GEMM would be only `filters` columns wide, where BLAS runs at a fraction of its
        speed and the layer is bound by memory traffic; the direct kernels read the input once instead."""
        return self.filters <= DIRECT_FILTERS and not self._pointwise()

    def _winograd(self, channels: int) -> bool:
        """Winograd's F(2x2, 3x3) exists for 3x3 windows at stride 1, undilated and ungrouped; see
        WINOGRAD_CHANNELS for the rest."""
        return (self._window() == ((3, 3), (1, 1), (1, 1)) and self.groups == 1
                and channels >= WINOGRAD_CHANNELS and self.filters > DIRECT_FILTERS)

    def _algorithm_for(self, input_shape: Shape) -> ConvAlgorithm:
        """The algorithm that convolves inputs of `input_shape` (height, width, channels) of the image view."""
        if self._direct(input_shape[2]):
            return DirectConv(self, input_shape)
        if self._winograd(input_shape[2]):
            return WinogradConv(self, input_shape)
        return Im2colConv(self, input_shape)

    def forward(self, weights, xs, training):
        keep_freed_memory()
        x, kernel, bias = xs[0], weights["kernel"], weights.get("bias")
        dtype = np.result_type(x.dtype, kernel.dtype) if np.issubdtype(x.dtype, np.floating) else kernel.dtype
        image = self._as_image(np.ascontiguousarray(x, dtype=dtype))
        kernel = self._as_image_kernel(np.ascontiguousarray(kernel, dtype=dtype))
        bias = None if bias is None else bias.astype(dtype, copy=False)
        z, x_read = self._algorithm_for(image.shape[1:]).forward(image, kernel, bias)
        # an activation the algorithm does not fuse (one that needs its input) is applied after, keeping z
        y = z if fused(self.activation) == self.activation else activate_keeping_input(z, None, self.activation)
        return y.reshape(len(y), *y.shape[3 - self.rank:]), (x_read, image.shape, z, y)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, image_shape, z, y = cache  # x: the input, or for a strided 1x1 kernel the pixels it reads
        dy = np.ascontiguousarray(dy, dtype=y.dtype).reshape(-1, self.filters)
        if z is not y:  # through the activation the algorithm did not fuse
            dy = activation_grad(dy, y.reshape(dy.shape), self.activation, z.reshape(dy.shape))
        kernel = self._as_image_kernel(weights["kernel"]).astype(y.dtype, copy=False)
        image_grads = {**grads, "kernel": self._as_image_kernel(grads["kernel"])}
        dx = self._algorithm_for(image_shape[1:]).backward(x, kernel, image_grads, dy, z, need_dx)
        return [None if dx is None else dx.reshape(len(dx), *image_shape[3 - self.rank:])]


@LAYERS.register()
class Conv1D(KernelArguments, BiasArguments, ActivityArguments, Convolution):
    """1-D convolution over channels-last sequences (batch, steps, channels): activation(conv(x, kernel) + bias)."""
    type: Literal["Conv1D"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: PositiveInt = Field(description="Window length, in steps.")
    strides: PositiveInt = Field(1, description="Step between windows.")
    padding: Literal["valid", "same", "causal"] = Field(
        "valid", description="valid: windows stay inside the sequence, which shrinks; same: zero padding keeps "
                             "length ceil(steps / strides); causal: zero padding before the sequence only, so "
                             "output t sees no input after t.")
    dilation_rate: PositiveInt = Field(1, description="Spacing of the window's taps: d reads every d-th step.")
    groups: PositiveInt = Field(1, description="Channel groups convolved separately: group g maps its "
                                               "channels / groups inputs to filters / groups outputs.")
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 1

    def _window(self):
        return (1, self.kernel_size), (1, self.strides), (1, self.dilation_rate)

    def _geometry(self, image_shape: Shape) -> Geometry:
        k, s, d = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "causal":  # as Keras: padded before by the dilated window's span - 1, then valid
            out, before = (image_shape[1] - 1) // s + 1, span(k, d) - 1
        else:
            out, before = window_geometry(image_shape[1], span(k, d), s, self.padding)
        return 1, k, 1, s, 1, d, 0, before, 1, out

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 2:
            hint = f"; give the input a channels axis, e.g. shape [{shape[0]}, 1]" if len(shape) == 1 else ""
            raise ShapeError(f"Conv1D needs sequences shaped (steps, channels), got {show_shape(shape)}{hint}")
        return super().output_shape(input_shapes)


@LAYERS.register()
class Conv2D(KernelArguments, BiasArguments, ActivityArguments, Convolution):
    """2-D convolution over channels-last images: activation(conv(x, kernel) + bias)."""
    type: Literal["Conv2D"]
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Window height and width: one number for a square, or [h, w].")
    strides: Pair = Field(1, description="Step between windows: one number for both axes, or [h, w].")
    padding: Padding = Field("valid", description="valid: windows stay inside the image, which shrinks; "
                                                  "same: zero padding keeps size ceil(input / stride).")
    dilation_rate: Pair = Field(1, description="Spacing of the window's taps: one number for both axes, or "
                                               "[h, w]; d reads every d-th row (column).")
    groups: PositiveInt = Field(1, description="Channel groups convolved separately: group g maps its "
                                               "channels / groups inputs to filters / groups outputs.")
    activation: ActivationName = "linear"
    use_bias: bool = True

    rank: ClassVar[int] = 2

    def _window(self):
        return pair(self.kernel_size), pair(self.strides), pair(self.dilation_rate)

    def _geometry(self, image_shape: Shape) -> Geometry:
        (kh, kw), (sh, sw), (dh, dw) = self._window()
        oh, pt = window_geometry(image_shape[0], span(kh, dh), sh, self.padding)
        ow, pl = window_geometry(image_shape[1], span(kw, dw), sw, self.padding)
        return kh, kw, sh, sw, dh, dw, pt, pl, oh, ow

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        check_image("Conv2D", input_shapes[0])
        return super().output_shape(input_shapes)


class ConvAlgorithm:
    """One way to compute a convolution over inputs of one shape (height, width, channels): a forward pass
    and its backward pass.

    forward(x, kernel, bias)                    -> (y, the input as backward reads it); x and the kernel are
                                                   contiguous, all three in y's dtype, bias may be None
    backward(x, kernel, grads, dy, y, need_dx)  -> dx, None unless need_dx; adds the kernel and bias
                                                   gradients into grads. dy is (pixels, filters), contiguous.
    """

    def __init__(self, conv: Convolution, input_shape: Shape):
        self.conv, self.input_shape = conv, input_shape
        self.activation = fused(conv.activation)  # the one it applies as it writes its output
        self.geometry = conv._geometry(input_shape)  # kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow


class DirectConv(ConvAlgorithm):
    """Without im2col and BLAS (kernels.conv.conv_direct_*), for few filters: see DIRECT_FILTERS."""

    def forward(self, x, kernel, bias):
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        activation = self.activation
        y = np.empty((x.shape[0], oh, ow, self.conv.filters), dtype=x.dtype)
        bias = np.empty(0, x.dtype) if bias is None else bias

        def images(first, stop):
            kernels.conv.conv_direct_forward(x, kernel, bias, sh, sw, dh, dw, pt, pl, first, stop, y)
            if activation != "linear":
                activate(y[first:stop], None, activation)
        workers.run(images, workers.image_groups(x.shape[0]))
        return y, x

    def backward(self, x, kernel, grads, dy, y, need_dx):
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        use_bias = self.conv.use_bias
        dz = np.ascontiguousarray(activation_grad(dy, y.reshape(-1, self.conv.filters), self.activation))

        def images(first, stop):
            dk = np.empty(grads["kernel"].shape, dtype=y.dtype)
            db = np.empty(self.conv.filters if use_bias else 0, dtype=y.dtype)
            kernels.conv.conv_direct_kernel_grad(x, dz.reshape(y.shape), sh, sw, dh, dw, pt, pl, first, stop,
                                                 DIRECT_BLOCK_LINES, dk, db)
            return dk, db
        dks, dbs = zip(*workers.run(images, workers.image_groups(x.shape[0])))
        workers.add_in_thread_order(grads["kernel"], dks)
        if use_bias:
            workers.add_in_thread_order(grads["bias"], dbs)
        if not need_dx:
            return None
        # the input gradient (rarely needed: a first layer's is not) as im2col computes it, from dz
        return Im2colConv(self.conv, self.input_shape).gradients(x, kernel, dz, y, activation="linear",
                                                                 grads=None, need_dx=True)


class Im2colConv(ConvAlgorithm):
    """GEMM on im2col patches, a chunk of lines at a time (see _Im2colMatrix and CHUNK_BYTES). A grouped
    convolution is a GEMM per group and chunk: the group's patches by its columns of the kernel."""

    def __init__(self, conv: Convolution, input_shape: Shape):
        super().__init__(conv, input_shape)
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        self.pointwise = conv._pointwise()
        # a strided 1x1 kernel reads only the pixels at its strides: a 1x1 convolution of those
        self.strided_pixels = self.pointwise and (sh, sw) != (1, 1)
        self.line_pixels = 1 if self.pointwise else ow
        self.lines_per_image = oh * ow if self.pointwise else oh
        per_group = conv.filters // conv.groups
        self.group_filters = [slice(g * per_group, (g + 1) * per_group) for g in range(conv.groups)]

    def _chunk_lines(self, depth: int, dtype) -> int:
        """How many lines a chunk takes: its patches (`depth` wide) and products fill CHUNK_BYTES."""
        return chunk_rows(depth + self.conv.filters, self.line_pixels, dtype)

    def forward(self, x, kernel, bias):
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        n, filters, activation = x.shape[0], self.conv.filters, self.activation
        if self.strided_pixels:
            x = np.ascontiguousarray(x[:, ::sh, ::sw])
        w2 = kernel.reshape(-1, filters)
        step = self._chunk_lines(w2.shape[0], x.dtype)
        z = np.empty((n * oh * ow, filters), dtype=x.dtype)
        groups, matmul = image_split(n)

        def images(first, stop):
            matrix = _Im2colMatrix(self, x, first, stop, step)
            for a, b in chunks(first * self.lines_per_image, stop * self.lines_per_image, step):
                zc = z[a * self.line_pixels:b * self.line_pixels]
                for group, columns in enumerate(self.group_filters):
                    matmul(matrix.rows(a, b, group), w2[:, columns], out=zc[:, columns])
                activate(zc, bias, activation)  # while the chunk is still in cache
        workers.run(images, groups)
        return z.reshape(n, oh, ow, filters), x

    def backward(self, x, kernel, grads, dy, y, need_dx):
        return self.gradients(x, kernel, dy, y, activation=self.activation, grads=grads, need_dx=need_dx)

    def gradients(self, x, kernel, dy, y, *, activation: str, grads: dict | None, need_dx: bool):
        """backward, through the given activation: dx (None unless need_dx), and the kernel and bias
        gradients added into grads (skipped when grads is None)."""
        n, filters, dtype = x.shape[0], self.conv.filters, y.dtype
        y = y.reshape(-1, filters)
        w2t = np.ascontiguousarray(kernel.reshape(-1, filters).T)
        depth = w2t.shape[1]
        step = self._chunk_lines(depth, dtype)
        sums = grads is not None  # the kernel and bias gradients, or only dx
        use_bias = sums and self.conv.use_bias
        dx = np.empty(x.shape, dtype=dtype) if need_dx else None
        groups, matmul = image_split(n)

        def images(first, stop):
            """Gradients of images [first, stop): their part of the kernel and bias gradients, and dx."""
            dz_of = chunked_activation_grad(activation, dy, y)
            matrix = _Im2colMatrix(self, x, first, stop, step, dx)
            dkernel = np.zeros((depth, filters), dtype=dtype) if sums else None
            part = np.empty((depth, filters), dtype=dtype) if sums else None
            db = np.zeros(filters, dtype=dtype) if use_bias else None
            for a, b in chunks(first * self.lines_per_image, stop * self.lines_per_image, step):
                dz = dz_of(a * self.line_pixels, b * self.line_pixels)
                if db is not None:
                    db += dz.sum(axis=0)
                for group, columns in enumerate(self.group_filters):
                    if part is not None:
                        matmul(matrix.rows(a, b, group).T, dz[:, columns], out=part[:, columns])
                    if dx is not None:
                        matrix.add_to_dx(dz[:, columns], w2t[columns], a, b, group, matmul)
                if dkernel is not None:
                    dkernel += part
            return dkernel, db

        dks, dbs = zip(*workers.run(images, groups))
        if grads is not None:
            grads["kernel"] += workers.add_in_thread_order(dks[0], dks[1:]).reshape(grads["kernel"].shape)
            if use_bias:
                grads["bias"] += workers.add_in_thread_order(dbs[0], dbs[1:])
        if dx is not None and self.strided_pixels:
            sh, sw = self.geometry[2:4]
            full = np.zeros((n, *self.input_shape), dtype=dtype)
            full[:, ::sh, ::sw] = dx
            dx = full
        return dx


class _Im2colMatrix:
    """One thread's im2col matrix, a chunk of lines at a time: a row per output pixel, holding the input
    patch under it (over one group's channels). A line is an output row, whose patches are unfolded into a
    buffer of the thread's own; for a 1x1 kernel, one pixel, whose patch is the (strided) pixel itself,
    read in place."""

    def __init__(self, im2col: Im2colConv, x, first: int, stop: int, step: int, dx=None):
        """For images [first, stop) of x, `step` lines a chunk; dx: the input gradient, if wanted."""
        self.geometry, self.pointwise, self.line_pixels = im2col.geometry, im2col.pointwise, im2col.line_pixels
        self.x, self.dx = x, dx
        self.chans = x.shape[3] // len(im2col.group_filters)  # of each group
        if self.pointwise:
            self.pixels = x.reshape(-1, x.shape[3])
            self.dpixels = None if dx is None else dx.reshape(self.pixels.shape)
            return
        kh, kw = self.geometry[:2]
        if dx is not None:
            dx[first:stop] = 0  # col2im adds into it
        lines = min(step, (stop - first) * im2col.lines_per_image)
        self.cols = np.empty((lines * self.line_pixels, kh * kw * self.chans), dtype=x.dtype)

    def _channels(self, group: int) -> slice:
        return slice(group * self.chans, (group + 1) * self.chans)

    def rows(self, a: int, b: int, group: int) -> np.ndarray:
        """The rows of lines [a, b): the patches of their output pixels, over the group's channels."""
        if self.pointwise:
            return self.pixels[a:b, self._channels(group)]
        chunk = self.cols[:(b - a) * self.line_pixels]
        kernels.conv.im2col_rows(self.x, group * self.chans, self.chans, a, b, *self.geometry, chunk)
        return chunk

    def add_to_dx(self, dz: np.ndarray, w2t: np.ndarray, a: int, b: int, group: int, matmul) -> None:
        """Adds the gradient of the group's rows of lines [a, b), dz @ w2t, into dx where each was read."""
        if self.pointwise:  # each pixel is read by one output pixel: its gradient is written whole
            assert self.dpixels is not None, "add_to_dx needs the dx given to the constructor"
            matmul(dz, w2t, out=self.dpixels[a:b, self._channels(group)])
            return
        chunk = self.cols[:(b - a) * self.line_pixels]
        matmul(dz, w2t, out=chunk)
        kernels.conv.col2im_rows_add(chunk, group * self.chans, self.chans, a, b, *self.geometry, self.dx)


def winograd_geometry(oh: int, ow: int, channels: int, filters: int, dtype):
    """(tile rows, tile columns, tiles per chunk): a chunk's transformed input and output fill
    WINOGRAD_CHUNK_BYTES."""
    per_tile = 16 * (channels + filters) * np.dtype(dtype).itemsize
    return -(-oh // 2), -(-ow // 2), max(1, WINOGRAD_CHUNK_BYTES // per_tile)


def winograd_kernel(kernel: np.ndarray) -> np.ndarray:
    """U = G g G^T of a (3, 3, C, F) kernel, as (16, C, F)."""
    g = WINOGRAD_G.astype(kernel.dtype)
    rows = (g @ kernel.reshape(3, -1)).reshape(4, 3, -1)
    return np.matmul(g, rows).reshape(16, *kernel.shape[2:])


def winograd_kernel_grad(du: np.ndarray) -> np.ndarray:
    """The (3, 3, C, F) kernel gradient from the gradient of U, (16, C, F): G^T dU G."""
    g = WINOGRAD_G.astype(du.dtype)
    rows = (g.T @ du.reshape(4, -1)).reshape(3, 4, -1)
    return np.matmul(g.T, rows).reshape(3, 3, *du.shape[1:])


def _chunk_buffers(step: int, *widths: int, dtype):
    """For each width, a function giving a contiguous (16, tiles, width) view of one reused buffer."""
    def view_of(buffer, width):
        return lambda tiles: buffer[:16 * tiles * width].reshape(16, tiles, width)
    return [view_of(np.empty(16 * step * width, dtype=dtype), width) for width in widths]


class WinogradConv(ConvAlgorithm):
    """Winograd's F(2x2, 3x3) (kernels.winograd), for 3x3 kernels at stride 1: see WINOGRAD_CHANNELS."""

    def forward(self, x, kernel, bias):
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        k = kernels.winograd
        n, channels, filters, activation = x.shape[0], x.shape[3], self.conv.filters, self.activation
        u = winograd_kernel(kernel)
        tiles_h, tiles_w, step = winograd_geometry(oh, ow, channels, filters, x.dtype)
        per_image = tiles_h * tiles_w
        y = np.empty((n, oh, ow, filters), dtype=x.dtype)
        groups, matmul = image_split(n)

        def images(first, stop):
            v_of, m_of = _chunk_buffers(min(step, (stop - first) * per_image), channels, filters, dtype=x.dtype)
            for a, b in chunks(first * per_image, stop * per_image, step):
                v, m = v_of(b - a), m_of(b - a)
                k.winograd_input(x, pt, pl, tiles_h, tiles_w, a, b, v)
                matmul(v, u, out=m)
                k.winograd_output(m, tiles_h, tiles_w, a, b, y)
            activate(y[first:stop], bias, activation)
        workers.run(images, groups)
        return y, x

    def backward(self, x, kernel, grads, dy, y, need_dx):
        """The transformed input is recomputed chunk by chunk rather than kept from the forward pass, as
        im2col's patches are (keeping those measured slower than recomputing them into the cache)."""
        kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = self.geometry
        k = kernels.winograd
        n, channels, filters, activation = x.shape[0], x.shape[3], self.conv.filters, self.activation
        u_t = np.ascontiguousarray(winograd_kernel(kernel).transpose(0, 2, 1))
        tiles_h, tiles_w, step = winograd_geometry(oh, ow, channels, filters, x.dtype)
        per_image = tiles_h * tiles_w
        dy = dy.reshape(y.shape)
        dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
        groups, matmul = image_split(n)

        def images(first, stop):
            if dx is not None:
                dx[first:stop] = 0
            dz = np.ascontiguousarray(activation_grad(dy[first:stop], y[first:stop], activation))
            v_of, m_of = _chunk_buffers(min(step, (stop - first) * per_image), channels, filters, dtype=x.dtype)
            du = np.zeros((16, channels, filters), dtype=x.dtype)
            part = np.empty_like(du)
            for a, b in chunks(first * per_image, stop * per_image, step):
                v, dm = v_of(b - a), m_of(b - a)
                k.winograd_output_grad(dz, tiles_h, tiles_w, a - first * per_image, b - first * per_image, dm)
                k.winograd_input(x, pt, pl, tiles_h, tiles_w, a, b, v)
                matmul(v.transpose(0, 2, 1), dm, out=part)
                du += part
                if dx is not None:
                    matmul(dm, u_t, out=v)
                    k.winograd_input_grad_add(v, pt, pl, tiles_h, tiles_w, a, b, dx)
            return du, dz.reshape(-1, filters).sum(axis=0)

        dus, dbs = zip(*workers.run(images, groups))
        grads["kernel"] += winograd_kernel_grad(workers.add_in_thread_order(dus[0], dus[1:]))
        if self.conv.use_bias:
            grads["bias"] += workers.add_in_thread_order(dbs[0], dbs[1:])
        return dx


class Pooling2D(Layer):
    """What MaxPooling2D and AveragePooling2D share: their windows over channels-last images and the output
    shape. Each type gives its fields (defaults and words of its own)."""
    if TYPE_CHECKING:  # fields of both types, declared by each
        type: str
        pool_size: Any
        strides: Any
        padding: str

    def _geometry(self, shape: Shape):
        ph, pw = pair(self.pool_size)
        sh, sw = pair(self.pool_size if self.strides is None else self.strides)
        oh, pt = window_geometry(shape[0], ph, sh, self.padding)
        ow, pl = window_geometry(shape[1], pw, sw, self.padding)
        return ph, pw, sh, sw, pt, pl, oh, ow

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        check_image(self.type, shape)
        check_window(self.type, "pool_size", pair(self.pool_size), shape, self.padding)
        *_, oh, ow = self._geometry(shape)
        return (oh, ow, shape[2])


@LAYERS.register()
class MaxPooling2D(Pooling2D):
    """Maximum over each window of channels-last images, channel by channel."""
    type: Literal["MaxPooling2D"]
    pool_size: Pair = Field(2, description="Window height and width: one number for a square, or [h, w].")
    strides: Optional[Pair] = Field(None, description="Step between windows: one number, or [h, w]; "
                                                      "default: the pool_size.")
    padding: Padding = Field("valid", description="valid: windows stay inside the image; same: output size "
                                                  "ceil(input / stride), edge windows see only inside cells.")

    def forward(self, weights, xs, training):
        x = np.ascontiguousarray(xs[0])
        ph, pw, sh, sw, pt, pl, oh, ow = self._geometry(x.shape[1:])
        y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
        # where each maximum came from, as a flat index within its image
        keep_freed_memory()
        argmax = np.empty(y.shape, dtype=np.int32 if x[:1].size < 2 ** 31 else np.int64)
        workers.run(lambda first, stop: kernels.conv.maxpool_forward(x, ph, pw, sh, sw, pt, pl, first, stop,
                                                                     y, argmax),
                    workers.image_groups(x.shape[0]))
        return y, (x.shape, argmax)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x_shape, argmax = cache
        dy = np.ascontiguousarray(dy)
        dx = np.empty(x_shape, dtype=dy.dtype)
        workers.run(lambda first, stop: kernels.conv.maxpool_backward(dy, argmax, first, stop, dx),
                    workers.image_groups(dy.shape[0]))
        return [dx]
