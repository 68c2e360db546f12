"""Wrappers: layers that apply another layer (or model) in their own way, with that layer's weights.

A wrapper names what it applies under `layer:`: a layer or model defined elsewhere in the spec (its weights
are shared), or an inline layer config, named after its type (`dense`) unless it has `name:`: a level of
the weight keys, as in Keras (`td/dense/kernel`). The graph compiler resolves it; the wrapper only says how
shapes and values pass through:

    inner_input_shapes(input_shapes)                 what the wrapped layer is called on (InputsError if unfit)
    outer_output_count(inner_count)                  how many outputs it makes from the wrapped layer's count
    outer_output_shape(input_shapes, inner_shape)    the wrapper's output from the wrapped layer's (a list of
                                                     shapes for several); InputsError when it cannot wrap that
    forward_around(inner, xs, training)              inner(xs, training) -> (y, cache) runs the wrapped layer
    backward_around(inner, cache, dy, need_dx)       inner(cache, dy, need_dx) -> [dx ...]
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import Field, field_validator

from .base import LAYERS, InputsError, Layer, Shape, ShapeError, TrainingFlag, show_shape
from .recurrent import Recurrent

if TYPE_CHECKING:
    from ..spec.format import LayerConfig


class Wrapper(Layer):
    # the union of every layer type; resolved in spec.format, which knows them all
    layer: Union[str, "LayerConfig"] = Field(description="A layer or model name, or an inline layer config.")

    # a wrapper that builds layers of its own from `layer:` (Bidirectional's two copies, as Keras clones it)
    # is a plain layer to the graph, its copies' weights keyed below it
    builds_own_layers: ClassVar[bool] = False

    def inner_input_shapes(self, input_shapes: list[Shape]) -> list[Shape]:
        raise NotImplementedError

    def outer_output_count(self, inner_count: int) -> int:
        return 1

    def outer_output_shape(self, input_shapes: list[Shape], inner_shape) -> Shape:
        raise NotImplementedError

    def forward_around(self, inner, xs: list, training: TrainingFlag):
        raise NotImplementedError

    def backward_around(self, inner, cache, dy, need_dx: bool) -> list:
        raise NotImplementedError


@LAYERS.register()
class TimeDistributed(Wrapper):
    """Applies `layer` to each step along axis 1: (batch, steps, ...) -> (batch, steps, ...), one set of
    weights for every step: the steps are folded into the batch, the layer runs once, the result unfolds."""
    type: Literal["TimeDistributed"]

    def inner_input_shapes(self, input_shapes):
        if len(input_shapes) != 1 or len(input_shapes[0]) < 2:
            shown = " and ".join(map(show_shape, input_shapes))
            raise InputsError(f"TimeDistributed takes one input of shape (None, steps, ...), got {shown}")
        return [input_shapes[0][1:]]

    def outer_output_shape(self, input_shapes, inner_shape):
        if isinstance(inner_shape, list):
            raise InputsError("TimeDistributed applies layers with one output; this one makes "
                              f"{len(inner_shape)}")
        return (input_shapes[0][0], *inner_shape)

    def forward_around(self, inner, xs, training):
        x = xs[0]
        folded, cache = inner([x.reshape(-1, *x.shape[2:])], training)
        return folded.reshape(*x.shape[:2], *folded.shape[1:]), cache

    def backward_around(self, inner, cache, dy, need_dx):
        (dx,) = inner(cache, dy.reshape(-1, *dy.shape[2:]), need_dx)
        return [None if dx is None else dx.reshape(*dy.shape[:2], *dx.shape[1:])]


def keras_name(type_name: str) -> str:
    """Keras' default layer name stem: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, LSTM -> lstm."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _weights_below(weights: dict, level: str) -> dict:
    return {key.removeprefix(level): value for key, value in weights.items() if key.startswith(level)}


@LAYERS.register()
class Bidirectional(Wrapper):
    """Runs a recurrent layer over the sequence forward and a copy of it backward, and merges the two outputs:
    `concat` (last axis), `sum`, `mul`, `ave`, or null for both as outputs NAME.0 and NAME.1. With
    return_state the final states follow, the forward layer's then the backward one's. Weights as Keras'
    `forward_lstm/kernel`, `backward_lstm/kernel`, ... (the layer's name, default its type in snake case).
    The layer is inline (LSTM, GRU or SimpleRNN), as Keras takes a layer instance to copy.
    With return_sequences, the backward sequence is put back in time order, and masked steps output zeros
    (Keras' zero_output_for_mask)."""
    type: Literal["Bidirectional"]
    merge_mode: Optional[Literal["concat", "sum", "mul", "ave"]] = Field(
        "concat", description="How the two directions' outputs combine; null: both, as two outputs.")

    builds_own_layers: ClassVar[bool] = True
    supports_masking: ClassVar[bool] = True
    reads_masks: ClassVar[bool] = True

    @field_validator("layer")
    @classmethod
    def _recurrent(cls, layer):
        if isinstance(layer, str):
            raise ValueError("Bidirectional takes its recurrent layer inline (`layer: {type: LSTM, ...}`): it runs "
                             "a copy of it in each direction")
        if not isinstance(layer, Recurrent):
            known = ", ".join(sorted(t.__name__ for t in LAYERS.entries() if issubclass(t, Recurrent)))
            raise ValueError(f"Bidirectional wraps a recurrent layer ({known}), not {type(layer).__name__}")
        return layer

    @property
    def rnn(self) -> Recurrent:
        assert isinstance(self.layer, Recurrent)  # the validator's promise
        return self.layer

    @property
    def directions(self) -> list[tuple[str, Recurrent]]:
        """(weight-key level, layer) forward, then backward."""
        inner = self.rnn
        name = inner.name or keras_name(type(inner).__name__)
        backward = inner.model_copy(update={"go_backwards": not inner.go_backwards})
        return [(f"forward_{name}/", inner), (f"backward_{name}/", backward)]

    def output_count(self) -> int:
        inner = self.rnn
        return (1 if self.merge_mode else 2) + (2 * inner.state_count if inner.return_state else 0)

    def output_shape(self, input_shapes: list[Shape]):
        inner = self.rnn
        if inner.initial_state is not None:
            raise ShapeError("Bidirectional does not take an initial_state; its layers start from zeros")
        shapes = inner.output_shape(input_shapes)
        output, states = (shapes[0], shapes[1:]) if inner.return_state else (shapes, [])
        if self.merge_mode == "concat":
            output = (*output[:-1], 2 * output[-1])
        outputs = [output] if self.merge_mode else [output, output]
        return outputs[0] if len(outputs) + 2 * len(states) == 1 else [*outputs, *states, *states]

    def compute_mask(self, xs: list, masks: list) -> Any:
        inner = self.rnn
        mask = masks[0] if inner.return_sequences else None
        outputs = [mask] if self.merge_mode else [mask, mask]
        states = [None] * (2 * inner.state_count if inner.return_state else 0)
        return outputs[0] if len(outputs) + len(states) == 1 else [*outputs, *states]

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        return {level + name: shape for level, layer in self.directions
                for name, shape in layer.weight_shapes(input_shapes).items()}

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {level + name: value for level, layer in self.directions
                for name, value in layer.init_weights(_weights_below(shapes, level), rng).items()}

    def check_weight_arguments(self, shapes: dict[str, Shape]):
        for level, layer in self.directions:
            layer.check_weight_arguments(_weights_below(shapes, level))

    def forward(self, weights, xs, training, masks=None):
        inner = self.rnn
        mask = None if masks is None else masks[0]
        runs = []
        for index, (level, layer) in enumerate(self.directions):
            ys, cache = layer.forward(_weights_below(weights, level), xs, training and training.at(index), masks)
            runs.append(((ys if inner.return_state else (ys,)), cache))
        (y, *forward_states), (y_rev, *backward_states) = (ys for ys, _ in runs)
        if inner.return_sequences:
            y_rev = y_rev[:, ::-1]
            if mask is not None:
                y, y_rev = y * mask[:, :, None], y_rev * mask[:, :, None]
        merged = self._merge(y, y_rev)
        outputs = [*merged, *forward_states, *backward_states]
        return (outputs[0] if len(outputs) == 1 else tuple(outputs)), ([c for _, c in runs], y, y_rev, mask)

    def _merge(self, y: np.ndarray, y_rev: np.ndarray) -> list[np.ndarray]:
        if self.merge_mode == "concat":
            return [np.concatenate([y, y_rev], axis=-1)]
        if self.merge_mode == "sum":
            return [y + y_rev]
        if self.merge_mode == "ave":
            return [(y + y_rev) / 2]
        if self.merge_mode == "mul":
            return [y * y_rev]
        return [np.ascontiguousarray(y), np.ascontiguousarray(y_rev)]

    def _unmerge(self, dys: list, y: np.ndarray, y_rev: np.ndarray) -> tuple:
        """d y and d y_rev from the merged outputs' gradients (None where none reaches)."""
        if self.merge_mode is None:
            return dys[0], dys[1]
        d = dys[0]
        if d is None:
            return None, None
        if self.merge_mode == "concat":
            u = y.shape[-1]
            return d[..., :u], d[..., u:]
        if self.merge_mode == "sum":
            return d, d
        if self.merge_mode == "ave":
            return d / 2, d / 2
        return d * y_rev, d * y

    def backward(self, weights, grads, cache, dy, need_dx=True):
        inner = self.rnn
        caches, y, y_rev, mask = cache
        dys = dy if isinstance(dy, list) else [dy]
        merged = 1 if self.merge_mode else 2
        d_y, d_rev = self._unmerge(dys[:merged], y, y_rev)
        states = (len(dys) - merged) // 2
        d_forward_states, d_backward_states = dys[merged:merged + states], dys[merged + states:]
        if inner.return_sequences:
            if mask is not None:
                d_y = None if d_y is None else d_y * mask[:, :, None]
                d_rev = None if d_rev is None else d_rev * mask[:, :, None]
            d_rev = None if d_rev is None else d_rev[:, ::-1]
        dx = None
        for (level, layer), layer_cache, d_output, d_states in zip(
                self.directions, caches, (d_y, d_rev), (d_forward_states, d_backward_states)):
            d = [d_output, *d_states] if inner.return_state else d_output
            if d_output is None and all(s is None for s in d_states):
                continue  # no loss reaches this direction
            (d_x, *_) = layer.backward(_weights_below(weights, level), _weights_below(grads, level), layer_cache, d,
                                       need_dx)
            if d_x is not None:
                dx = d_x if dx is None else dx + d_x
        return [dx]
