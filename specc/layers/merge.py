"""Layers that join several tensors into one: Concatenate; Add and Subtract of one shape; Multiply, Average,
Maximum and Minimum, which broadcast as Keras does; Dot."""
from __future__ import annotations

from typing import Callable, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import Field

from .base import LAYERS, Layer, Shape, ShapeError, show_shape


def all_masks(masks: list) -> Optional[np.ndarray]:
    """Keras' mask of an element-wise merge: a step counts where it counts in every input that has a mask."""
    given = [m for m in masks if m is not None]
    if not given:
        return None
    joined = given[0]
    for mask in given[1:]:
        joined = joined & mask
    return joined


@LAYERS.register()
class Concatenate(Layer):
    """Joins its inputs along one axis (counted with the batch axis, as in Keras; default the last)."""
    type: Literal["Concatenate"]
    axis: int = -1
    arity = None

    def _axis(self, rank: int) -> int:
        """The axis as an index into a shape without the batch dimension."""
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if not 1 <= axis <= rank:
            raise ShapeError(f"axis {self.axis} is out of range for inputs of rank {rank + 1} "
                             "(axis 0 is the batch)")
        return axis - 1

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in input_shapes}
        shown = " and ".join(show_shape(s) for s in input_shapes)
        if len(ranks) != 1:
            raise ShapeError(f"cannot concatenate tensors of different ranks: {shown}")
        axis = self._axis(ranks.pop())
        rest = {s[:axis] + s[axis + 1:] for s in input_shapes}
        if len(rest) != 1:
            raise ShapeError(f"cannot concatenate {shown} on axis {self.axis}: "
                             "every other axis must match")
        out = list(input_shapes[0])
        out[axis] = sum(s[axis] for s in input_shapes)
        return tuple(out)

    def forward(self, weights, xs, training):
        axis = self._axis(xs[0].ndim - 1) + 1
        return np.concatenate(xs, axis=axis), (axis, [x.shape[axis] for x in xs])

    def backward(self, weights, grads, cache, dy, need_dx=True):
        axis, sizes = cache
        return np.split(dy, np.cumsum(sizes)[:-1], axis=axis)


@LAYERS.register()
class Add(Layer):
    """Element-wise sum of inputs of one shape."""
    type: Literal["Add"]
    arity = None
    supports_masking = True

    def compute_mask(self, xs, masks):
        return all_masks(masks)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(set(input_shapes)) != 1:
            shown = " and ".join(show_shape(s) for s in input_shapes)
            raise ShapeError(f"cannot add tensors of different shapes: {shown}")
        return input_shapes[0]

    def forward(self, weights, xs, training):
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y, len(xs)

    def backward(self, weights, grads, count, dy, need_dx=True):
        return [dy] * count


@LAYERS.register()
class Subtract(Layer):
    """Element-wise difference of two inputs of one shape: inputs [a, b] give a - b."""
    type: Literal["Subtract"]
    arity = 2
    supports_masking = True

    def compute_mask(self, xs, masks):
        return all_masks(masks)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if input_shapes[0] != input_shapes[1]:
            raise ShapeError(f"cannot subtract tensors of different shapes: "
                             f"{show_shape(input_shapes[0])} and {show_shape(input_shapes[1])}")
        return input_shapes[0]

    def forward(self, weights, xs, training):
        return xs[0] - xs[1], None

    def backward(self, weights, grads, cache, dy, need_dx=True):
        return [dy, -dy]


# -- element-wise merges that broadcast -----------------------------------------------------------------

def broadcast_shape(what: str, input_shapes: list[Shape]) -> Shape:
    """Keras' rule: shapes (without the batch axis) aligned at their last axis; sizes equal, or 1 (a smaller
    rank's missing axes count as 1)."""
    try:
        return tuple(np.broadcast_shapes(*input_shapes))
    except ValueError:
        shown = " and ".join(show_shape(s) for s in input_shapes)
        raise ShapeError(f"cannot {what} tensors of shapes {shown}: each axis, counted from the last, must have "
                         "one size or size 1") from None


def aligned(xs: list[np.ndarray]) -> list[np.ndarray]:
    """Views of a batch of each input with axes of size 1 inserted after the batch axis, up to the largest
    rank, so that numpy broadcasts them as Keras does."""
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in xs]


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """The gradient of an input of `shape` (with its batch axis) that was broadcast to grad's shape: summed
    over the axes it was broadcast along."""
    lead = grad.ndim - len(shape)
    summed = tuple(i for i in range(1, grad.ndim) if i <= lead or (shape[i - lead] == 1 and grad.shape[i] != 1))
    if summed:
        grad = grad.sum(axis=summed, keepdims=True)
    return grad.reshape(shape)


class ElementWiseMerge(Layer):
    """Two or more inputs combined cell by cell, broadcast as Keras does (see broadcast_shape)."""
    arity = None
    supports_masking = True
    verb: ClassVar[str] = "merge"  # as said in a shape error: "cannot multiply tensors..."

    def compute_mask(self, xs, masks):
        return all_masks(masks)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return broadcast_shape(self.verb, input_shapes)


@LAYERS.register()
class Multiply(ElementWiseMerge):
    """Element-wise product of its inputs."""
    type: Literal["Multiply"]
    verb = "multiply"

    def forward(self, weights, xs, training):
        xs = aligned(xs)
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        return y, xs

    def backward(self, weights, grads, xs, dy, need_dx=True):
        dxs = []
        for i, x in enumerate(xs):
            dx = dy
            for j, other in enumerate(xs):
                if j != i:
                    dx = dx * other
            dxs.append(unbroadcast(dx, x.shape))
        return dxs


@LAYERS.register()
class Average(ElementWiseMerge):
    """Element-wise mean of its inputs."""
    type: Literal["Average"]
    verb = "average"

    def forward(self, weights, xs, training):
        xs = aligned(xs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        y /= len(xs)
        return y, [x.shape for x in xs]

    def backward(self, weights, grads, shapes, dy, need_dx=True):
        share = dy / len(shapes)
        return [unbroadcast(share, shape) for shape in shapes]


class Extremum(ElementWiseMerge):
    """Maximum or Minimum: each output cell is one input's, whose gradient it gets (the first on ties)."""
    pick: ClassVar[Callable] = staticmethod(np.maximum)

    def forward(self, weights, xs, training):
        xs = aligned(xs)
        y = self.pick(xs[0], xs[1])
        for x in xs[2:]:
            self.pick(y, x, out=y)
        return y, (xs, y)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        xs, y = cache
        unclaimed = np.ones(y.shape, dtype=bool)  # cells whose gradient no earlier input took
        dxs = []
        for x in xs:
            mine = unclaimed & (x == y)
            unclaimed &= ~mine
            dxs.append(unbroadcast(np.where(mine, dy, 0).astype(dy.dtype, copy=False), x.shape))
        return dxs


@LAYERS.register()
class Maximum(Extremum):
    """Element-wise maximum of its inputs."""
    type: Literal["Maximum"]
    verb = "take the maximum of"
    pick = staticmethod(np.maximum)


@LAYERS.register()
class Minimum(Extremum):
    """Element-wise minimum of its inputs."""
    type: Literal["Minimum"]
    verb = "take the minimum of"
    pick = staticmethod(np.minimum)


# -- Dot ------------------------------------------------------------------------------------------------

NORMALIZE_EPSILON = 1e-7  # Keras' backend epsilon: l2 norms below it count as it


def l2_normalized(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(x / max(||x||, epsilon) along axis, and that 1 / max(||x||, epsilon)), as keras.ops.normalize."""
    inverse = 1 / np.maximum(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), x.dtype.type(NORMALIZE_EPSILON))
    return x * inverse, inverse


def l2_normalized_grad(dn: np.ndarray, n: np.ndarray, inverse: np.ndarray, axis: int) -> np.ndarray:
    """d/dx of n = x / ||x||: (dn - n * sum(dn * n)) / ||x||; dn / epsilon where the norm was clipped."""
    clipped = inverse >= 1 / NORMALIZE_EPSILON
    return inverse * (dn - np.where(clipped, 0, n * np.sum(dn * n, axis=axis, keepdims=True)))


@LAYERS.register()
class Dot(Layer):
    """Dot product of two inputs sample by sample along one axis of each (Keras' batch_dot): [a, b] with
    shapes (None, 3, 4) and (None, 5, 4) and axes 2 give (None, 3, 5); (None, 4) and (None, 4), (None, 1)."""
    type: Literal["Dot"]
    axes: Union[int, list[int]] = Field(description="The axis summed over (counted with the batch as axis 0), "
                                                    "or [axis of a, axis of b].")
    normalize: bool = Field(False, description="L2-normalize both inputs along their axis first: the output is "
                                               "then the cosine similarity.")
    arity = 2

    def _axes(self, ranks: tuple[int, int]) -> tuple[int, int]:
        """The two axes as indices into each input with its batch axis, checked."""
        if isinstance(self.axes, int):
            given = (self.axes, self.axes)
        elif len(self.axes) != 2:
            raise ShapeError(f"axes {self.axes} must be one axis, or two: [axis of the first input, "
                             "axis of the second]")
        else:
            given = (self.axes[0], self.axes[1])
        axes = []
        for axis, rank in zip(given, ranks):
            index = axis % rank if -rank <= axis < rank else None
            if index is None or index == 0:
                raise ShapeError(f"axes {self.axes}: axis {axis} is not an axis of an input of rank {rank} "
                                 "besides the batch (axis 0 is the batch)")
            axes.append(index)
        return axes[0], axes[1]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        a, b = input_shapes
        ia, ib = self._axes((len(a) + 1, len(b) + 1))
        if a[ia - 1] != b[ib - 1]:
            raise ShapeError(f"cannot take the dot product of {show_shape(a)} and {show_shape(b)} along axes "
                             f"{ia} and {ib}: their sizes {a[ia - 1]} and {b[ib - 1]} differ")
        shape = a[:ia - 1] + a[ia:] + b[:ib - 1] + b[ib:]
        return shape or (1,)

    def forward(self, weights, xs, training):
        a, b = xs
        ia, ib = self._axes((a.ndim, b.ndim))
        normalized = None
        if self.normalize:
            (a, inverse_a), (b, inverse_b) = l2_normalized(a, ia), l2_normalized(b, ib)
            normalized = (a, b, inverse_a, inverse_b)
        # one batched product: (batch, rest of a, k) @ (batch, k, rest of b)
        a_moved, b_moved = np.moveaxis(a, ia, -1), np.moveaxis(b, ib, 1)
        a3 = a_moved.reshape(len(a), -1, a.shape[ia])
        b3 = b_moved.reshape(len(b), b.shape[ib], -1)
        y = np.matmul(a3, b3)
        shape = (*a_moved.shape[1:-1], *b_moved.shape[2:]) or (1,)
        return y.reshape(len(y), *shape), (a3, b3, a_moved.shape, b_moved.shape, (ia, ib), normalized)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        a3, b3, a_moved, b_moved, (ia, ib), normalized = cache
        dy3 = dy.reshape(len(dy), a3.shape[1], b3.shape[2])
        da = np.moveaxis((dy3 @ b3.transpose(0, 2, 1)).reshape(a_moved), -1, ia)
        db = np.moveaxis((a3.transpose(0, 2, 1) @ dy3).reshape(b_moved), 1, ib)
        if normalized is not None:
            a, b, inverse_a, inverse_b = normalized
            da, db = l2_normalized_grad(da, a, inverse_a, ia), l2_normalized_grad(db, b, inverse_b, ib)
        return [da, db]
