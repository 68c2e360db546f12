"""Running a compiled graph: weights in flat buffers, forward over the nodes in order, backward in reverse."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import Problem, SpecError
from ..graph import Graph, GraphLayer


class Parameters:
    """Every weight of a graph in one flat array (gradients in another), viewed per layer.

    Trainable weights come first, so an optimizer updates one contiguous slice in one kernel call.
    """

    def __init__(self, graph: Graph, dtype=np.float32):
        layers = graph.all_layers()
        ordered = sorted(layers, key=lambda layer: not graph.is_trainable(layer))  # stable: spec order kept
        self.dtype = np.dtype(dtype)
        self.shapes: dict[str, tuple] = {}
        offsets: dict[str, int] = {}
        size = 0
        self.trainable_size = 0
        for layer in ordered:
            for name, shape in layer.weight_shapes.items():
                key = f"{layer.key}/{name}"
                offsets[key], self.shapes[key] = size, shape
                size += int(np.prod(shape))
            if graph.is_trainable(layer):
                self.trainable_size = size
        self.values = np.zeros(size, self.dtype)
        self.grads = np.zeros(size, self.dtype)
        self._layers = layers
        self._weights: dict[int, dict[str, np.ndarray]] = {}
        self._grads: dict[int, dict[str, np.ndarray]] = {}
        for layer in layers:
            self._weights[id(layer)] = {}
            self._grads[id(layer)] = {}
            for name, shape in layer.weight_shapes.items():
                start = offsets[f"{layer.key}/{name}"]
                stop = start + int(np.prod(shape))
                self._weights[id(layer)][name] = self.values[start:stop].reshape(shape)
                self._grads[id(layer)][name] = self.grads[start:stop].reshape(shape)

    def weights(self, layer: GraphLayer) -> dict[str, np.ndarray]:
        return self._weights[id(layer)]

    def gradients(self, layer: GraphLayer) -> dict[str, np.ndarray]:
        return self._grads[id(layer)]

    def initialize(self, seed: int):
        """Keras' default initializers, drawn in spec order from one seeded generator."""
        rng = np.random.default_rng(seed)
        for layer in self._layers:
            fresh = layer.config.init_weights(dict(layer.weight_shapes), rng)
            for name, view in self.weights(layer).items():
                view[...] = fresh[name]

    @property
    def trainable(self) -> np.ndarray:
        return self.values[:self.trainable_size]

    @property
    def trainable_grads(self) -> np.ndarray:
        return self.grads[:self.trainable_size]

    def as_dict(self) -> dict[str, np.ndarray]:
        """{"layer/weight": array}, Keras names and layouts."""
        return {f"{layer.key}/{name}": view.copy()
                for layer in self._layers for name, view in self.weights(layer).items()}

    def assign(self, arrays: dict[str, np.ndarray], source: str, prefix: str = "", partial: bool = False):
        """Copy weights in by key; a missing key, unknown key or wrong shape is a SpecError naming `source`."""
        problems = []
        wanted = {key[len(prefix):]: key for key in self.shapes if key.startswith(prefix)}
        missing = [short for short in wanted if short not in arrays]
        extra = sorted(set(arrays) - set(wanted))
        if not partial and wanted and len(missing) == len(wanted):
            problems.append(f"holds none of this model's weights (it has {_some(extra)}): "
                            f"is it another spec's? This model's are {_some(list(wanted))}")
        elif not partial:
            if missing:
                problems.append(f"has no array for {_some(missing)}")
            if extra:
                problems.append(f"has arrays the model does not use: {_some(extra)}")
        for short, key in wanted.items():
            if short in arrays and tuple(arrays[short].shape) != self.shapes[key]:
                problems.append(f"array '{short}' has shape {tuple(arrays[short].shape)}, the model needs "
                                f"{self.shapes[key]}")
        if problems:
            raise SpecError([Problem(f"weights file {p}", file=source) for p in problems])
        by_key = {f"{layer.key}/{name}": view for layer in self._layers for name, view in self.weights(layer).items()}
        for short, key in wanted.items():
            if short in arrays:
                by_key[key][...] = arrays[short]


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def forward(graph: Graph, params: Parameters, inputs: dict[str, np.ndarray], training: bool):
    """Every tensor's value, and the tape backward() needs."""
    values = dict(inputs)
    tape = []
    for node in graph.nodes:
        y, cache = layer_forward(node.layer, params, [values[t] for t in node.inputs], training)
        values[node.output] = y
        tape.append(cache)
    return values, tape


def backward(graph: Graph, params: Parameters, tape: list, output_grads: dict[str, np.ndarray],
             need_inputs: tuple[bool, ...] | None = None) -> list:
    """Add every weight's gradient into params.grads; return the gradient of each graph input (None where
    `need_inputs` says it is not wanted: the default for a top-level graph's inputs)."""
    plan = _gradient_plan(graph, need_inputs or (False,) * len(graph.inputs))
    grads = dict(output_grads)
    for node, cache, (run, need_dx) in zip(reversed(graph.nodes), reversed(tape), reversed(plan)):
        dy = grads.pop(node.output, None)
        if dy is None or not run:
            continue  # nothing downstream reaches a loss, or nothing upstream can learn from it
        for tensor, dx in zip(node.inputs, layer_backward(node.layer, params, cache, dy, need_dx)):
            if dx is not None:
                # never in place: a backward may hand the same array to several inputs (Add)
                grads[tensor] = grads[tensor] + dx if tensor in grads else dx
    return [grads.get(name) for name in graph.inputs]


@functools.lru_cache(maxsize=None)  # a compiled Graph never changes; it hashes by identity
def _gradient_plan(graph: Graph, need_inputs: tuple[bool, ...]) -> tuple[tuple[bool, bool], ...]:
    """For each node: (run its backward at all, does any of its inputs need a gradient)."""
    needed = {name for name, need in zip(graph.inputs, need_inputs) if need}
    plan = []
    for node in graph.nodes:
        need_dx = any(tensor in needed for tensor in node.inputs)
        learns = _learns(node.layer)
        if need_dx or learns:
            needed.add(node.output)
        plan.append((need_dx or learns, need_dx))
    return tuple(plan)


def _learns(layer: GraphLayer) -> bool:
    """Whether a layer holds weights that training changes."""
    if not layer.trainable:
        return False
    if layer.inner is not None:
        return _learns(layer.inner)
    if layer.is_model:
        return any(_learns(inner) for inner in layer.config.layers.values())
    return bool(layer.weight_shapes)


def layer_forward(layer: GraphLayer, params: Parameters, xs: list, training: bool):
    if layer.inner is not None:  # TimeDistributed: fold the steps into the batch
        x = xs[0]
        folded, cache = layer_forward(layer.inner, params, [x.reshape(-1, *x.shape[2:])], training)
        return folded.reshape(*x.shape[:2], *folded.shape[1:]), cache
    if layer.is_model:
        inner: Graph = layer.config
        values, tape = forward(inner, params, dict(zip(inner.inputs, xs)), training)
        return values[inner.outputs[0]], tape
    return layer.config.forward(params.weights(layer), xs, training)


def layer_backward(layer: GraphLayer, params: Parameters, cache, dy: np.ndarray, need_dx: bool) -> list:
    if layer.inner is not None:
        (dx,) = layer_backward(layer.inner, params, cache, dy.reshape(-1, *dy.shape[2:]), need_dx)
        return [None if dx is None else dx.reshape(*dy.shape[:2], *dx.shape[1:])]
    if layer.is_model:
        inner: Graph = layer.config
        return backward(inner, params, cache, {inner.outputs[0]: dy}, (need_dx,) * len(inner.inputs))
    return layer.config.backward(params.weights(layer), params.gradients(layer), cache, dy, need_dx)
