"""Embedding: integer ids -> rows of a trainable table (Keras semantics)."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt

from .. import kernels
from .base import LAYERS, ConstraintArgument, InitializerArgument, Layer, RegularizerArgument, Shape


@LAYERS.register()
class Embedding(Layer):
    """Maps each integer id in [0, input_dim) to a trainable vector of size output_dim.

    The ids are not differentiable: backward returns [None] for them. Executor convention: a layer's
    backward returns None in place of the gradient of an input that has none (integer inputs); the
    executor must skip such entries rather than propagate them."""
    type: Literal["Embedding"]
    input_dim: PositiveInt = Field(description="Vocabulary size: ids must lie in [0, input_dim).")
    output_dim: PositiveInt = Field(description="Size of each embedding vector.")
    embeddings_initializer: InitializerArgument = "uniform"
    embeddings_regularizer: Optional[RegularizerArgument] = None
    embeddings_constraint: Optional[ConstraintArgument] = None
    mask_zero: bool = Field(False, description="Id 0 is padding: it masks its step for the layers after "
                                               "(RNNs skip it, losses ignore it).")

    accepts_integers: ClassVar[bool] = True

    def makes_masks(self) -> bool:
        return self.mask_zero

    def compute_mask(self, xs, masks):
        return np.asarray(xs[0]) != 0 if self.mask_zero else None

    def id_limit(self) -> int:
        return self.input_dim

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return (*input_shapes[0], self.output_dim)

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {"embeddings": (self.input_dim, self.output_dim)}

    def _ids(self, x: np.ndarray) -> np.ndarray:
        """The ids as an integer array, after checking each lies in [0, input_dim)."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            if not np.issubdtype(x.dtype, np.floating) or not np.all(np.mod(x, 1) == 0):
                raise ValueError(f"Embedding needs integer ids; got an array of {x.dtype} with non-integer values")
            x = x.astype(np.int64)
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            where = [int(i) for i in np.argwhere((x < 0) | (x >= self.input_dim))[0]]
            bad = x[tuple(where)]
            at = f"row {where[0]}" + ("" if len(where) == 1 else
                                      f", position {where[1] if len(where) == 2 else tuple(where[1:])}")
            raise ValueError(f"Embedding id {bad} at ({at}) is out of range: ids must lie in "
                             f"[0, {self.input_dim}) (input_dim {self.input_dim})")
        return x

    def forward(self, weights, xs, training):
        ids = self._ids(xs[0])
        return np.take(weights["embeddings"], ids, axis=0), ids

    def backward(self, weights, grads, ids, dy, need_dx=True):
        flat = np.ascontiguousarray(ids).reshape(-1)
        table = grads["embeddings"]
        dy = np.ascontiguousarray(dy, dtype=table.dtype).reshape(flat.size, self.output_dim)
        kernels.embedding.scatter_add_rows(flat, dy, table)
        return [None]
