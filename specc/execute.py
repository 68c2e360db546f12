"""Running a compiled graph: weights in flat buffers, forward over the nodes in order, backward in reverse."""
from __future__ import annotations

import numpy as np

from .errors import Problem, SpecError
from .graph import Graph, GraphLayer


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
        for short, key in wanted.items():
            if short not in arrays:
                if not partial:
                    problems.append(f"has no array '{short}'")
                continue
            array = arrays[short]
            if tuple(array.shape) != self.shapes[key]:
                problems.append(f"array '{short}' has shape {tuple(array.shape)}, the model needs "
                                f"{self.shapes[key]}")
        extra = sorted(set(arrays) - set(wanted))
        if extra and not partial:
            problems.append(f"has arrays the model does not use: {', '.join(extra[:5])}"
                            + (" ..." if len(extra) > 5 else ""))
        if problems:
            raise SpecError([Problem(f"weights file {p}", file=source) for p in problems])
        by_key = {f"{layer.key}/{name}": view for layer in self._layers for name, view in self.weights(layer).items()}
        for short, key in wanted.items():
            if short in arrays:
                by_key[key][...] = arrays[short]


def forward(graph: Graph, params: Parameters, inputs: dict[str, np.ndarray], training: bool):
    """Every tensor's value, and the tape backward() needs."""
    values = dict(inputs)
    tape = []
    for node in graph.nodes:
        xs = [values[t] for t in node.inputs]
        if node.layer.is_model:
            inner: Graph = node.layer.config
            inner_values, inner_tape = forward(inner, params, dict(zip(inner.inputs, xs)), training)
            y, cache = inner_values[inner.outputs[0]], inner_tape
        else:
            y, cache = node.layer.config.forward(params.weights(node.layer), xs, training)
        values[node.output] = y
        tape.append(cache)
    return values, tape


def backward(graph: Graph, params: Parameters, tape: list, output_grads: dict[str, np.ndarray]) -> list:
    """Add every weight's gradient into params.grads; return the gradient of each graph input (or None)."""
    grads = dict(output_grads)
    for node, cache in zip(reversed(graph.nodes), reversed(tape)):
        dy = grads.pop(node.output, None)
        if dy is None:
            continue  # nothing downstream of this node reaches a loss
        if node.layer.is_model:
            dxs = backward(node.layer.config, params, cache, {node.layer.config.outputs[0]: dy})
        else:
            dxs = node.layer.config.backward(params.weights(node.layer), params.gradients(node.layer), cache, dy)
        for tensor, dx in zip(node.inputs, dxs):
            if dx is not None:
                # never in place: a backward may hand the same array to several inputs (Add)
                grads[tensor] = grads[tensor] + dx if tensor in grads else dx
    return [grads.get(name) for name in graph.inputs]
