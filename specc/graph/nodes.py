"""What a graph calls: a layer, a sub-model or a wrapper, each defined once and called at one or more nodes.

The three kinds share one interface, so the compiler, the executor, `summary` and `plot` never ask which
kind they hold:

    output_count()                                 how many tensors one call makes (NAME.0, NAME.1, ... when
                                                   several)
    output_shape_for(input_shapes, input_dtypes)   [the shape of each output of one call]; CallError when it
                                                   cannot
    forward(params, xs, training)                  -> (y, cache); y a tuple of arrays when several outputs
    forward_masked(params, xs, training, masks)    -> (y, cache, [mask of each output]); masks: one per input
    makes_masks()                                  whether a call can make a mask from unmasked inputs
    backward(params, cache, dy, need_dx)           -> [dx for each input]; weight gradients into params; dy a
                                                   list when several outputs, None for an output that gets no
                                                   gradient
    children()                                     the layers and models it applies (traversal)
    learns(), count_params(), values_kept(output_size), id_limits(position), type_name

`params` is the executor's weight store: `params.weights(layer)` and `params.gradients(layer)` give a
layer's arrays by weight name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from ..errors import KeyPath
from ..layers import InputsError, Layer, Shape, ShapeError, Training, TrainingFlag, Wrapper, show_shape
from ..layers.regularizers import Regularizer, regularizer

if TYPE_CHECKING:
    from .graph import Graph


class CallError(Exception):
    """A call that cannot be made; `key` is where under the calling entry the problem lies (() or ("inputs",))."""

    def __init__(self, message: str, key: KeyPath = ()):
        super().__init__(message)
        self.message, self.key = message, key


def tensor_names(name: str, count: int) -> list[str]:
    """The tensors a call of entry `name` makes: itself, or NAME.0, NAME.1, ... when several."""
    return [name] if count == 1 else [f"{name}.{k}" for k in range(count)]


@dataclass(eq=False)
class Node:
    """One call of a layer: which tensors went in, which came out, and their shapes."""
    layer: "GraphLayer"
    index: int                 # 0, 1, 2 ... in the order the spec calls the layer
    inputs: list[str]          # the entry's inputs, then the tensors of its call arguments (initial_state)
    outputs: list[str]         # [NAME], or [NAME.0, NAME.1, ...] for a layer with several outputs
    input_shapes: list[Shape]
    output_shapes: list[Shape]
    path: KeyPath              # the spec entry that makes this call

    @property
    def output(self) -> str:
        """The one tensor a single-output call makes."""
        (output,) = self.outputs
        return output

    @property
    def output_shape(self) -> Union[Shape, list[Shape]]:
        """Its output's shape; the list of them when it makes several (as Keras' output_shape)."""
        return self.output_shapes[0] if len(self.output_shapes) == 1 else list(self.output_shapes)

    def output_values(self) -> int:
        """How many values one row of its outputs holds."""
        return sum(math.prod(shape) for shape in self.output_shapes)


@dataclass(eq=False)
class GraphLayer:
    """A layer, model or wrapper as defined once in a spec; called at one or more nodes, with one set of weights."""
    name: str
    key: str                   # prefix of its weights in a weights file: "dense_1", "vision_model/conv_1"
    path: KeyPath
    trainable: bool = True
    nodes: list[Node] = field(default_factory=list)
    former_key: Optional[str] = None  # an inline wrapped layer's key before wrappers kept its level: still loads

    @property
    def type_name(self) -> str:
        raise NotImplementedError

    def children(self) -> list["GraphLayer"]:
        return []

    def count_params(self) -> int:
        return sum(child.count_params() for child in self.children())

    def learns(self) -> bool:
        """Whether it holds weights that training changes."""
        return self.trainable and any(child.learns() for child in self.children())

    def values_kept(self, output_size: int) -> int:
        """About how many values its calls keep from forward until backward, for `output_size` output
        values in all: the output, and as much again for its cache (inputs, activations, gates...)."""
        return 2 * output_size

    def id_limits(self, position: int) -> list[int]:
        """Id ranges its input at `position` must respect (Embedding's input_dim, inside sub-models too)."""
        return []

    def output_count(self) -> int:
        """How many tensors each call makes: referred to as NAME.0, NAME.1, ... when several."""
        return 1

    def output_shape_for(self, input_shapes: list[Shape], input_dtypes: list[Optional[str]]) -> list[Shape]:
        raise NotImplementedError

    def call(self, inputs: list[str], outputs: list[str], input_shapes: list[Shape],
             input_dtypes: list[Optional[str]], path: KeyPath, call_tensors: int = 0) -> Node:
        """A new node of this layer; raises CallError when the inputs do not fit. The last `call_tensors`
        inputs are the tensors of call arguments (an RNN's initial_state), not of `inputs:`."""
        output_shapes = self.output_shape_for(list(input_shapes), list(input_dtypes))
        node = Node(self, len(self.nodes), list(inputs), list(outputs), list(input_shapes), output_shapes, path)
        self.nodes.append(node)
        return node

    def forward(self, params, xs: list[np.ndarray], training: TrainingFlag):
        raise NotImplementedError

    def makes_masks(self) -> bool:
        return False

    def forward_masked(self, params, xs: list[np.ndarray], training: TrainingFlag, masks: list):
        """forward, in a graph that carries masks; by default what it makes has none."""
        y, cache = self.forward(params, xs, training)
        return y, cache, [None] * self.output_count()

    def training_inside(self, training: TrainingFlag) -> TrainingFlag:
        """What the layers it holds see: frozen inside a frozen model or wrapper."""
        if not training or self.trainable:
            return training
        return (Training() if training is True else training).freeze()

    def backward(self, params, cache, dy: Any, need_dx: bool) -> list:
        raise NotImplementedError

    # -- shapes per node, as the guide's layer-node API has them ------------------------------------------
    def get_input_shape_at(self, index: int) -> Union[Shape, list[Shape]]:
        shapes = self._node(index).input_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    def get_output_shape_at(self, index: int) -> Union[Shape, list[Shape]]:
        return self._node(index).output_shape

    @property
    def input_shape(self) -> Union[Shape, list[Shape]]:
        return self._agreed("input_shape", self.get_input_shape_at)

    @property
    def output_shape(self) -> Union[Shape, list[Shape]]:
        return self._agreed("output_shape", self.get_output_shape_at)

    def _node(self, index: int) -> Node:
        if not 0 <= index < len(self.nodes):
            raise IndexError(f"layer '{self.name}' has {len(self.nodes)} node(s); there is no node {index}")
        return self.nodes[index]

    def _agreed(self, what: str, at):
        shapes = [at(i) for i in range(len(self.nodes))]
        if not shapes:
            raise AttributeError(f"layer '{self.name}' is never called, so it has no {what}")
        if any(s != shapes[0] for s in shapes):
            listed = ", ".join(f"node {i}: {_show(s)}" for i, s in enumerate(shapes))
            getter = "get_input_shape_at" if what == "input_shape" else "get_output_shape_at"
            raise AttributeError(f"layer '{self.name}' has several {what}s ({listed}); "
                                 f"ask for one node with {getter}(i)")
        return shapes[0]


def _show(shape) -> str:
    return ", ".join(map(show_shape, shape)) if isinstance(shape, list) else show_shape(shape)


@dataclass(eq=False, kw_only=True)
class LayerCall(GraphLayer):
    """A plain layer: its config computes; its weights are built by its first call."""
    config: Layer
    weight_shapes: dict[str, Shape] = field(default_factory=dict)

    @property
    def type_name(self) -> str:
        return type(self.config).__name__

    def count_params(self) -> int:
        return sum(math.prod(s) for s in self.weight_shapes.values())

    def learns(self) -> bool:
        return self.trainable and bool(set(self.weight_shapes) - self.config.state_weights)

    def id_limits(self, position: int) -> list[int]:
        limit = self.config.id_limit()
        return [] if limit is None else [limit]

    def output_count(self) -> int:
        return self.config.output_count()

    def output_shape_for(self, input_shapes, input_dtypes):
        config, type_name = self.config, self.type_name
        try:
            shape = config.output_shape(input_shapes)
            output_shapes = [tuple(s) for s in shape] if config.output_count() > 1 else [tuple(shape)]
            weights = {k: tuple(v) for k, v in config.weight_shapes(input_shapes).items()}
            config.check_weight_arguments(weights)
        except InputsError as e:
            raise CallError(str(e), ("inputs",)) from None
        except ShapeError as e:
            shown = " and ".join(map(show_shape, input_shapes))
            said = str(e)  # the layer type and the input shapes are said once, whether or not the layer says them
            on = "" if shown in said else f" on {shown}"
            raise CallError(said if said.startswith(type_name) and not on else f"{type_name}{on}: {said}") from None
        if self.nodes and weights != self.weight_shapes:
            first = " and ".join(map(show_shape, self.nodes[0].input_shapes))
            shown = " and ".join(map(show_shape, input_shapes))
            raise CallError(f"layer '{self.name}' was built for {first} at node 0; its weights do not fit {shown}",
                            ("inputs",))
        self.weight_shapes = weights
        return output_shapes

    def call(self, inputs, outputs, input_shapes, input_dtypes, path, call_tensors=0):
        """Checks how many inputs it is given and their dtypes first: those problems lie in `inputs:`."""
        arity, given, type_name = self.config.arity, len(inputs) - call_tensors, self.type_name
        if arity is not None and given != arity:
            raise CallError(f"{type_name} takes {arity} input{'' if arity == 1 else 's'}, got {given}", ("inputs",))
        if arity is None and given < 2:
            raise CallError(f"{type_name} joins two or more inputs, got {given}", ("inputs",))
        for tensor, dtype in zip(inputs, input_dtypes):
            if dtype is not None and dtype.startswith("int") and not self.config.accepts_integers:
                raise CallError(f"{type_name} takes float inputs, but input '{tensor}' is {dtype}; declare it "
                                "float32, or feed it to an Embedding first", ("inputs",))
        return super().call(inputs, outputs, input_shapes, input_dtypes, path, call_tensors)

    def makes_masks(self) -> bool:
        return self.config.makes_masks()

    def forward_masked(self, params, xs, training, masks):
        config = self.config
        y, cache = self.forward(params, xs, training, masks if config.reads_masks else None)
        out = config.compute_mask(xs, masks)
        return y, cache, out if isinstance(out, list) else [out]

    def forward(self, params, xs, training, masks=None):
        if masks is None:
            y, cache = self.config.forward(params.weights(self), xs, self.training_inside(training))
        else:
            y, cache = self.config.forward(params.weights(self), xs, self.training_inside(training), masks=masks)
        activity = self.config.weight_argument("activity", "regularizer") if training else None
        if activity is None:
            return y, cache
        rule = regularizer(activity)
        for output in (y if isinstance(y, tuple) else (y,)):  # Keras penalizes every output of the call
            training.losses.append(rule.penalty(output) / len(output))
        return y, _Penalized(cache, y, rule)

    def backward(self, params, cache, dy, need_dx):
        if isinstance(cache, _Penalized):
            if isinstance(cache.y, tuple):
                dy = [_penalized(d, y, cache.rule) for d, y in zip(dy, cache.y)]
            else:
                dy = _penalized(dy, cache.y, cache.rule)
            cache = cache.cache
        return self.config.backward(params.weights(self), params.gradients(self), cache, dy, need_dx)


def _penalized(dy: Optional[np.ndarray], y: np.ndarray, rule: Regularizer) -> np.ndarray:
    """An output's gradient with its activity penalty's added (the penalty's alone when nothing else reaches it)."""
    penalty = rule.gradient(y) / len(y)
    return penalty.astype(y.dtype) if dy is None else dy + penalty.astype(dy.dtype)


@dataclass
class _Penalized:
    """The cache of a call whose output carries an activity regularizer: the penalty's gradient joins dy."""
    cache: Any
    y: Union[np.ndarray, tuple[np.ndarray, ...]]
    rule: Regularizer


@dataclass(eq=False, kw_only=True)
class ModelCall(GraphLayer):
    """A sub-model called like a layer: its own graph runs at every call, with one set of weights."""
    graph: "Graph"

    @property
    def type_name(self) -> str:
        return "Model"

    def children(self):
        return list(self.graph.layers.values())

    def count_params(self) -> int:
        return self.graph.count_params()

    def values_kept(self, output_size):
        """What its graph keeps, once per call (output_size holds several outputs when a wrapper folds steps
        into the batch); its output is one of its graph's values, counted there."""
        graph = self.graph
        calls = output_size // max(1, math.prod(graph.shapes[graph.outputs[0]]))
        return calls * graph.values_kept_per_row()

    def id_limits(self, position):
        return self.graph.id_limits(list(self.graph.inputs)[position])

    def output_shape_for(self, input_shapes, input_dtypes):
        graph = self.graph
        expected = list(graph.inputs.values())
        if len(input_shapes) != len(expected):
            raise CallError(f"model '{self.name}' takes {len(expected)} input(s), got {len(input_shapes)}",
                            ("inputs",))
        if input_shapes != expected:
            raise CallError(f"model '{self.name}' expects {' and '.join(map(show_shape, expected))}, got "
                            f"{' and '.join(map(show_shape, input_shapes))}", ("inputs",))
        if len(graph.outputs) != 1:
            raise CallError(f"model '{self.name}' has {len(graph.outputs)} outputs; only single-output models "
                            "can be called")
        return [graph.shapes[graph.outputs[0]]]

    def forward(self, params, xs, training):
        graph = self.graph
        values, tape = graph.forward(params, dict(zip(graph.inputs, xs)), self.training_inside(training))
        return values[graph.outputs[0]], tape

    def backward(self, params, cache, dy, need_dx):
        graph = self.graph
        return graph.backward(params, cache, {graph.outputs[0]: dy}, (need_dx,) * len(graph.inputs))


def wrapped_by(layer: GraphLayer) -> Optional[GraphLayer]:
    """What a wrapper applies (None while unresolved); None for anything else."""
    return layer.inner if isinstance(layer, WrapperCall) else None


@dataclass(eq=False, kw_only=True)
class WrapperCall(GraphLayer):
    """A wrapper (TimeDistributed, ...) around the layer or model it applies; the config says how."""
    config: Wrapper
    inner: Optional[GraphLayer] = None  # None until resolved (or when it names nothing)

    @property
    def type_name(self) -> str:
        inner = "?" if self.inner is None else self.inner.type_name
        return f"{type(self.config).__name__}({inner})"

    def children(self):
        return [] if self.inner is None else [self.inner]

    def values_kept(self, output_size):
        """What it applies keeps; its output is that one's, reshaped."""
        return 0 if self.inner is None else self.inner.values_kept(output_size)

    def id_limits(self, position):
        return [] if self.inner is None else self.inner.id_limits(position)

    def output_count(self) -> int:
        return 1 if self.inner is None else self.config.outer_output_count(self.inner.output_count())

    def output_shape_for(self, input_shapes, input_dtypes):
        raise NotImplementedError  # a wrapper's call makes a node of what it wraps too: see call()

    def call(self, inputs, outputs, input_shapes, input_dtypes, path, call_tensors=0):
        try:
            inner_shapes = self.config.inner_input_shapes(list(input_shapes))
        except InputsError as e:
            raise CallError(str(e), ("inputs",)) from None
        base = outputs[0].partition(".")[0]
        inner = self.inner.call(inputs, tensor_names(base, self.inner.output_count()), inner_shapes, input_dtypes,
                                path, call_tensors)
        try:
            shape = self.config.outer_output_shape(list(input_shapes), inner.output_shape)
        except InputsError as e:
            raise CallError(str(e), ("layer",)) from None
        output_shapes = [tuple(s) for s in shape] if len(outputs) > 1 else [tuple(shape)]
        node = Node(self, len(self.nodes), list(inputs), list(outputs), list(input_shapes), output_shapes, path)
        self.nodes.append(node)
        return node

    def forward(self, params, xs, training):
        return self.config.forward_around(lambda ys, t: self.inner.forward(params, ys, t), xs,
                                          self.training_inside(training))

    def backward(self, params, cache, dy, need_dx):
        return self.config.backward_around(lambda c, d, n: self.inner.backward(params, c, d, n), cache, dy, need_dx)
