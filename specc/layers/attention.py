"""Attention over sequences, as Keras 3 computes it: MultiHeadAttention, Attention (dot-product or concat
scores), AdditiveAttention; and PositionEmbedding (Keras-Hub's learned positions).

Each query step i gets a softmax over the key steps j of its scores, optionally causal (j <= i only), and
returns the probability-weighted sum of the values; in training, dropout acts on the probabilities. Inputs
are (batch, steps, features), given in Keras' call order [query, value] or [query, value, key] (the key is
the value when not given). The products are GEMMs through runtime.blas; the softmax and tanh scores are
kernels.attention."""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import ConfigDict, Field, PositiveInt, field_validator

from .. import kernels
from ..registry import Config
from ..runtime.blas import matmul
from .base import (
    LAYERS,
    ActivityArguments,
    BiasArguments,
    InitializerArgument,
    InputsError,
    KernelArguments,
    Layer,
    Shape,
    ShapeError,
    Training,
    TrainingFlag,
    show_shape,
)
from .initializers import initializer
from .noise import dropout_mask, seed_field


def _query_value_key(type_name: str, input_shapes: list[Shape]) -> tuple[Shape, Shape, Shape]:
    """The shapes of query, value and key (the value's when no key is given), each (steps, features)."""
    if len(input_shapes) > 3:
        raise InputsError(f"{type_name} takes [query, value] or [query, value, key], got {len(input_shapes)} inputs")
    for role, shape in zip(("query", "value", "key"), input_shapes):
        if len(shape) != 2:
            raise ShapeError(f"the {role} must be a sequence of shape (None, steps, features), not "
                             f"{show_shape(shape)}")
    query, value = input_shapes[0], input_shapes[1]
    key = input_shapes[2] if len(input_shapes) == 3 else value
    if key[0] != value[0]:
        raise ShapeError(f"the key {show_shape(key)} and the value {show_shape(value)} must have the same number "
                         "of steps")
    return query, value, key


def kept_cells(causal: bool, query_mask: Optional[np.ndarray], key_masks: list[Optional[np.ndarray]],
               steps: tuple[int, int]) -> Optional[np.ndarray]:
    """Which key step j each query step i attends to, (B, T, S) bool, from the masks of the query (B, T) and
    of the keys (B, S) (Keras' masking; None where a tensor has none) and the causal rule j <= i; None when
    no tensor has a mask (the causal rule alone needs no array)."""
    masks = [m for m in (query_mask, *key_masks) if m is not None]
    if not masks:
        return None
    keep = np.ones((len(masks[0]), *steps), dtype=np.bool_)
    if query_mask is not None:
        keep &= query_mask[:, :, None]
    for mask in key_masks:
        if mask is not None:
            keep &= mask[:, None, :]
    if causal:
        keep &= np.tri(*steps, dtype=np.bool_)
    return keep


def softmax_attention(scores: np.ndarray, value: np.ndarray, causal: bool, rate: float, training: TrainingFlag,
                      seed: Optional[int], keep: Optional[np.ndarray] = None,
                      empty_keeps_all: bool = False) -> tuple[np.ndarray, Any]:
    """softmax(scores) @ value over stacked (N, T, S) scores and (N, S, V) values, with dropout of `rate` on the
    probabilities in training; the scores become the probabilities in place. Returns (N, T, V) and the cache
    of softmax_attention_grad. With `keep` (kept_cells), only its cells count; a query step that keeps none
    attends to every step with `empty_keeps_all`, to none (weights 0) otherwise."""
    probs = scores
    if keep is None:
        kernels.attention.shift_scores(probs, causal)
    else:
        kernels.attention.shift_masked_scores(probs, keep, empty_keeps_all)
    np.exp(probs, out=probs)
    kernels.attention.normalize_rows(probs, causal and keep is None)
    drop = dropout_mask(probs.shape, rate, training.rng(seed)) if isinstance(training, Training) and rate else None
    used = probs if drop is None else probs * drop
    return matmul(used, value), (probs, drop, used, value)


def softmax_attention_grad(cache, dout: np.ndarray, dprobs: Optional[np.ndarray] = None,
                           dused: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of softmax_attention's scores and value for its output's gradient dout, and for those
    of the probabilities when they are an output too: before dropout (dprobs) or after it (dused)."""
    probs, drop, used, value = cache
    dvalue = matmul(used.transpose(0, 2, 1), dout)
    dweights = matmul(dout, value.transpose(0, 2, 1))
    if dused is not None:
        dweights += dused
    if drop is not None:
        dweights *= drop
    if dprobs is not None:
        dweights += dprobs
    kernels.attention.softmax_grad(probs, dweights)
    return dweights, dvalue


def _split(dy, shape: tuple, dtype) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The gradients of the output (of `shape`) and of the probabilities when the call returns both (zeros
    for the output when only the probabilities get one), else of the output alone."""
    if not isinstance(dy, list):
        return dy, None
    doutput, dprobs = dy
    return (np.zeros(shape, dtype) if doutput is None else doutput), dprobs


class _CallArguments(Config):
    """The call arguments of every attention layer here, and Keras' masking: the output carries the query's
    mask (the probabilities none)."""
    use_causal_mask: bool = Field(False, description="Keras call argument: query step i attends to key steps "
                                                     "0..i only (a decoder's self-attention).")
    return_attention_scores: bool = Field(False, description="Keras call argument: a second output NAME.1, the "
                                                             "attention probabilities.")
    call_arguments: ClassVar[frozenset[str]] = frozenset({"use_causal_mask", "return_attention_scores"})
    supports_masking: ClassVar[bool] = True
    reads_masks: ClassVar[bool] = True

    def output_count(self) -> int:
        return 2 if self.return_attention_scores else 1

    def compute_mask(self, xs, masks):
        query_mask = masks[0] if masks else None
        return [query_mask, None] if self.return_attention_scores else query_mask


@LAYERS.register()
class MultiHeadAttention(_CallArguments, KernelArguments, BiasArguments, ActivityArguments, Layer):
    """num_heads attention heads, each over its own projections of query, key and value (sizes key_dim,
    key_dim, value_dim), scaled by 1 / sqrt(key_dim); the heads' outputs are projected together to the
    query's features (or `output_shape`). Weights as Keras': query/kernel (features, heads, key_dim),
    query/bias (heads, key_dim), key/..., value/..., attention_output/kernel (heads, value_dim, *out),
    attention_output/bias (*out)."""
    # the field `output_shape` is Keras' argument; the attribute keeps the name of the shape rule free
    model_config = ConfigDict(**{**Config.model_config, "populate_by_name": False})
    type: Literal["MultiHeadAttention"]
    num_heads: PositiveInt = Field(description="Number of attention heads.")
    key_dim: PositiveInt = Field(description="Size of each head's query and key projections.")
    value_dim: Optional[PositiveInt] = Field(None, description="Size of each head's value projection "
                                                                 "(default key_dim).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate on the attention probabilities in training.")
    use_bias: bool = True
    projected_shape: Optional[Union[PositiveInt, list[PositiveInt]]] = Field(
        None, alias="output_shape", description="Shape of the output's features (default: the query's).")
    attention_axes: Optional[Union[int, list[int]]] = Field(
        None, description="Only the default (null, or the steps axis: 1): attention over the steps.")
    seed: Optional[int] = seed_field()
    arity: ClassVar[Optional[int]] = None

    @field_validator("attention_axes")
    @classmethod
    def _steps_only(cls, axes: Optional[Union[int, list[int]]]) -> Optional[Union[int, list[int]]]:
        if axes is not None and axes not in (1, -2, [1], [-2]):
            raise ValueError("only attention over the steps axis is supported: leave attention_axes out (null)")
        return axes

    def weight_argument(self, weight: str, kind: str) -> Any:
        """query/kernel takes kernel_initializer, ..., as in Keras' inner projections."""
        return super().weight_argument(weight.rsplit("/", 1)[-1], kind)

    @property
    def _value_dim(self) -> int:
        return self.value_dim or self.key_dim

    def _out_features(self, query: Shape) -> tuple[int, ...]:
        shape = self.projected_shape
        if shape is None:
            return (query[-1],)
        return (shape,) if isinstance(shape, int) else tuple(shape)

    def output_shape(self, input_shapes: list[Shape]) -> Any:
        query, value, _ = _query_value_key("MultiHeadAttention", input_shapes)
        output = (query[0], *self._out_features(query))
        return [output, (self.num_heads, query[0], value[0])] if self.return_attention_scores else output

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        query, value, key = _query_value_key("MultiHeadAttention", input_shapes)
        heads, out = self.num_heads, self._out_features(query)
        sizes = {"query": (query[-1], self.key_dim), "key": (key[-1], self.key_dim),
                 "value": (value[-1], self._value_dim)}
        shapes: dict[str, Shape] = {}
        for part, (features, size) in sizes.items():
            shapes[f"{part}/kernel"] = (features, heads, size)
            if self.use_bias:
                shapes[f"{part}/bias"] = (heads, size)
        shapes["attention_output/kernel"] = (heads, self._value_dim, *out)
        if self.use_bias:
            shapes["attention_output/bias"] = out
        return shapes

    def _project(self, weights, part: str, x: np.ndarray) -> np.ndarray:
        """x (B, L, features) through part's kernel: (B * heads, L, size), one (L, size) matrix per head."""
        kernel = weights[f"{part}/kernel"]
        features, heads, size = kernel.shape
        y = matmul(x.reshape(-1, features), kernel.reshape(features, heads * size))
        if self.use_bias:
            y += weights[f"{part}/bias"].reshape(-1)
        batch, steps = x.shape[:2]
        return np.ascontiguousarray(y.reshape(batch, steps, heads, size).transpose(0, 2, 1, 3)).reshape(
            batch * heads, steps, size)

    def _project_grad(self, weights, grads, part: str, x: np.ndarray, dheads: np.ndarray, need_dx: bool):
        """Adds part's weight gradients for dheads (B * heads, L, size); returns dx, or None without need_dx."""
        kernel = weights[f"{part}/kernel"]
        features, heads, size = kernel.shape
        batch, steps = x.shape[:2]
        rows = np.ascontiguousarray(dheads.reshape(batch, heads, steps, size).transpose(0, 2, 1, 3)).reshape(
            batch * steps, heads * size)
        grads[f"{part}/kernel"] += matmul(x.reshape(-1, features).T, rows).reshape(kernel.shape)
        if self.use_bias:
            grads[f"{part}/bias"] += rows.sum(axis=0).reshape(heads, size)
        return matmul(rows, kernel.reshape(features, -1).T).reshape(x.shape) if need_dx else None

    def forward(self, weights, xs, training, masks=None):
        """With masks (Keras' masking), query step i attends to key step j when both are unmasked (the key's
        mask, when a key is given, as well as the value's): a masked query step attends to nothing."""
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value
        batch, steps = query.shape[:2]
        masks = masks or [None] * len(xs)
        keep = kept_cells(self.use_causal_mask, masks[0], list(masks[1:]), (steps, value.shape[1]))
        q = self._project(weights, "query", query)
        q *= q.dtype.type(1 / math.sqrt(self.key_dim))
        k = self._project(weights, "key", key)
        v = self._project(weights, "value", value)
        heads_out, attention = softmax_attention(matmul(q, k.transpose(0, 2, 1)), v, self.use_causal_mask,
                                                 self.dropout, training, self.seed, keep)
        kernel = weights["attention_output/kernel"]
        joined = np.ascontiguousarray(
            heads_out.reshape(batch, self.num_heads, steps, -1).transpose(0, 2, 1, 3)).reshape(batch * steps, -1)
        y = matmul(joined, kernel.reshape(joined.shape[1], -1))
        if self.use_bias:
            y += weights["attention_output/bias"].reshape(-1)
        y = y.reshape(batch, steps, *kernel.shape[2:])
        cache = (xs, q, k, v, attention, joined)
        if self.return_attention_scores:  # before dropout, as Keras' MultiHeadAttention returns them
            probs = attention[0]
            return (y, probs.reshape(batch, self.num_heads, *probs.shape[1:])), cache
        return y, cache

    def backward(self, weights, grads, cache, dy, need_dx=True):
        xs, q, k, v, attention, joined = cache
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value
        batch, steps = query.shape[:2]
        kernel = weights["attention_output/kernel"]
        dy, dprobs = _split(dy, (batch, steps, *kernel.shape[2:]), q.dtype)
        rows = dy.reshape(batch * steps, -1)
        grads["attention_output/kernel"] += matmul(joined.T, rows).reshape(kernel.shape)
        if self.use_bias:
            grads["attention_output/bias"] += rows.sum(axis=0).reshape(kernel.shape[2:])
        djoined = matmul(rows, kernel.reshape(joined.shape[1], -1).T)
        dscores_shape = attention[0].shape
        dheads_out = np.ascontiguousarray(
            djoined.reshape(batch, steps, self.num_heads, -1).transpose(0, 2, 1, 3)).reshape(v.shape[0], steps, -1)
        dscores, dv = softmax_attention_grad(attention, dheads_out,
                                             dprobs=None if dprobs is None else dprobs.reshape(dscores_shape))
        dq = matmul(dscores, k)
        dq *= dq.dtype.type(1 / math.sqrt(self.key_dim))
        dk = matmul(dscores.transpose(0, 2, 1), q)  # q is already scaled
        dxs = [self._project_grad(weights, grads, "query", query, dq, need_dx),
               self._project_grad(weights, grads, "value", value, dv, need_dx)]
        dkey = self._project_grad(weights, grads, "key", key, dk, need_dx)
        if len(xs) == 3:
            return [*dxs, dkey]
        return [dxs[0], None if dkey is None else dxs[1] + dkey]


def _query_key(xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return xs[0], xs[2] if len(xs) == 3 else xs[1]


class _ScoredAttention(_CallArguments, Layer):
    """Attention without projections: softmax(scores(query, key)) @ value, of shape (query steps, value
    features). Subclasses give the scores and their gradients."""
    arity: ClassVar[Optional[int]] = None
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate on the attention probabilities in training.")

    def output_shape(self, input_shapes: list[Shape]) -> Any:
        query, value, key = _query_value_key(type(self).__name__, input_shapes)
        if query[-1] != key[-1]:
            raise ShapeError(f"the query {show_shape(query)} and the key {show_shape(key)} must have as many "
                             "features: their scores compare them feature by feature")
        output = (query[0], value[-1])
        return [output, (query[0], key[0])] if self.return_attention_scores else output

    def _scores(self, weights, query: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _scores_grad(self, weights, grads, cache, dscores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def forward(self, weights, xs, training, masks=None):
        """With masks (Keras' masking): the value's mask removes key steps (a query step that keeps none
        attends to all: Keras lowers masked scores by 1e9, which then cancels), the query's zeroes output
        rows (the key's is not read, as in Keras)."""
        query, key = _query_key(xs)
        query_mask, value_mask = (masks[0], masks[1]) if masks else (None, None)
        keep = kept_cells(self.use_causal_mask, None, [value_mask], (query.shape[1], key.shape[1]))
        scores, scores_cache = self._scores(weights, query, key)
        y, attention = softmax_attention(scores, xs[1], self.use_causal_mask, self.dropout, training,
                                         getattr(self, "seed", None),  # AdditiveAttention takes no seed in Keras
                                         keep, empty_keeps_all=True)
        if query_mask is not None:
            y *= query_mask[:, :, None]
        cache = (len(xs), scores_cache, attention, query_mask)
        if self.return_attention_scores:  # after dropout, as Keras' Attention returns them
            return (y, attention[2]), cache
        return y, cache

    def backward(self, weights, grads, cache, dy, need_dx=True):
        count, scores_cache, attention, query_mask = cache
        probs, value = attention[0], attention[3]
        dy, dused = _split(dy, (*probs.shape[:2], value.shape[2]), probs.dtype)
        if query_mask is not None:
            dy = dy * query_mask[:, :, None]
        dscores, dvalue = softmax_attention_grad(attention, dy, dused=dused)
        dquery, dkey = self._scores_grad(weights, grads, scores_cache, dscores)
        if not need_dx:
            return [None] * count
        return [dquery, dvalue, dkey] if count == 3 else [dquery, dvalue + dkey]


def _tanh_scores(query, key, w, inner) -> np.ndarray:
    scores = np.empty((query.shape[0], query.shape[1], key.shape[1]), dtype=query.dtype)
    kernels.attention.additive_scores(query, key, w, inner, scores)
    return scores


def _tanh_scores_grad(query, key, w, inner, dscores) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    dquery, dkey, dw = np.zeros_like(query), np.zeros_like(key), np.zeros_like(w)
    dinner = kernels.attention.additive_scores_grad(query, key, w, inner, dscores, dquery, dkey, dw)
    return dquery, dkey, dw, dinner


@LAYERS.register()
class Attention(_ScoredAttention):
    """Luong-style attention: scores query . key ("dot", times the learned `scale` with use_scale), or
    concat_score_weight * sum over features of tanh(scale * (query + key)) ("concat"). Weights `scale` and
    `concat_score_weight` are scalars, initially 1."""
    type: Literal["Attention"]
    use_scale: bool = False
    score_mode: Literal["dot", "concat"] = "dot"
    seed: Optional[int] = seed_field()

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        if self.use_scale:
            shapes["scale"] = ()
        if self.score_mode == "concat":
            shapes["concat_score_weight"] = ()
        return shapes

    def init_weights(self, shapes, rng):
        return {name: np.ones(shape) for name, shape in shapes.items()}

    def _scores(self, weights, query, key):
        scale = weights["scale"] if self.use_scale else query.dtype.type(1)
        query, key = np.ascontiguousarray(query), np.ascontiguousarray(key)
        if self.score_mode == "dot":
            raw = matmul(query, key.transpose(0, 2, 1))
            return raw * scale, (query, key, raw)
        raw = _tanh_scores(query, key, np.ones(query.shape[-1], dtype=query.dtype), scale)
        return raw * weights["concat_score_weight"], (query, key, raw)

    def _scores_grad(self, weights, grads, cache, dscores):
        query, key, raw = cache
        scale = weights["scale"] if self.use_scale else query.dtype.type(1)
        if self.score_mode == "dot":
            if self.use_scale:
                grads["scale"] += np.vdot(dscores, raw)
            dscores *= scale
            return matmul(dscores, key), matmul(dscores.transpose(0, 2, 1), query)
        grads["concat_score_weight"] += np.vdot(dscores, raw)
        dscores *= weights["concat_score_weight"]
        dquery, dkey, _, dinner = _tanh_scores_grad(query, key, np.ones(query.shape[-1], dtype=query.dtype),
                                                    scale, dscores)
        if self.use_scale:
            grads["scale"] += dinner
        return dquery, dkey


@LAYERS.register()
class AdditiveAttention(_ScoredAttention):
    """Bahdanau-style attention: scores sum over features of scale * tanh(query + key), with `scale` a learned
    vector over the features (glorot-uniform initially) when use_scale, else ones."""
    type: Literal["AdditiveAttention"]
    use_scale: bool = True

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {"scale": (input_shapes[0][-1],)} if self.use_scale else {}

    def init_weights(self, shapes, rng):
        return {name: initializer("glorot_uniform")(shape, rng) for name, shape in shapes.items()}

    def _w(self, weights, query: np.ndarray) -> np.ndarray:
        return weights["scale"] if self.use_scale else np.ones(query.shape[-1], dtype=query.dtype)

    def _scores(self, weights, query, key):
        query, key = np.ascontiguousarray(query), np.ascontiguousarray(key)
        return _tanh_scores(query, key, self._w(weights, query), 1.0), (query, key)

    def _scores_grad(self, weights, grads, cache, dscores):
        query, key = cache
        dquery, dkey, dw, _ = _tanh_scores_grad(query, key, self._w(weights, query), 1.0, dscores)
        if self.use_scale:
            grads["scale"] += dw
        return dquery, dkey


@LAYERS.register()
class PositionEmbedding(Layer):
    """Keras-Hub's learned positions: the first `steps` rows of `embeddings` (sequence_length, features),
    broadcast over the input's batch (and any axes before its steps). Only the input's shape is read: add
    the result to the input (an `Add`) for a position-aware sequence."""
    type: Literal["PositionEmbedding"]
    sequence_length: PositiveInt = Field(description="Most steps an input may have.")
    initializer: InitializerArgument = "glorot_uniform"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) < 2:
            raise ShapeError("PositionEmbedding takes sequences of shape (None, steps, features)")
        if shape[-2] > self.sequence_length:
            raise ShapeError(f"an input of {shape[-2]} steps is longer than sequence_length {self.sequence_length}")
        return shape

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {"embeddings": (self.sequence_length, input_shapes[0][-1])}

    def init_weights(self, shapes, rng):
        return {"embeddings": initializer(self.initializer)(shapes["embeddings"], rng)}

    def forward(self, weights, xs, training):
        x = xs[0]
        positions = weights["embeddings"][:x.shape[-2]].astype(x.dtype, copy=False)
        return np.broadcast_to(positions, x.shape), x.shape

    def backward(self, weights, grads, cache, dy, need_dx=True):
        shape = cache
        grads["embeddings"][:shape[-2]] += dy.reshape(-1, *shape[-2:]).sum(axis=0)
        return [np.zeros(shape, dtype=dy.dtype) if need_dx else None]
