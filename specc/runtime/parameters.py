"""Every weight of a compiled graph in one flat buffer, and its gradient in another."""
from __future__ import annotations

import math

import numpy as np

from ..errors import Problem, SpecError
from ..graph import Graph, GraphLayer


class Parameters:
    """Every weight of a graph in one flat array (gradients in another), viewed per layer.

    Trainable weights come first, so an optimizer updates one contiguous slice in one kernel call.
    """

    def __init__(self, graph: Graph, dtype=np.float32):
        layers = graph.all_layers()
        keys = [(layer, name) for layer in layers for name in layer.weight_shapes]
        # stable: spec order kept within the trainable weights and within the others
        ordered = sorted(keys, key=lambda pair: not graph.learns(*pair))
        self.dtype = np.dtype(dtype)
        self.shapes: dict[str, tuple] = {}
        offsets: dict[str, int] = {}
        size = 0
        self.trainable_size = 0
        for layer, name in ordered:
            key = f"{layer.key}/{name}"
            if key in offsets:  # names are identifiers, so two layers can never make one key
                raise AssertionError(f"two weights share the key {key}")
            offsets[key], self.shapes[key] = size, layer.weight_shapes[name]
            size += math.prod(layer.weight_shapes[name])
            if graph.learns(layer, name):
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
                stop = start + math.prod(shape)
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

    @property
    def trainable_array_sizes(self) -> list[int]:
        """The sizes of the weight arrays `trainable` is made of, in order."""
        sizes, total = [], 0
        for shape in self.shapes.values():
            if total == self.trainable_size:
                break
            sizes.append(math.prod(shape))
            total += sizes[-1]
        return sizes

    def as_dict(self) -> dict[str, np.ndarray]:
        """{"layer/weight": array}, Keras names and layouts."""
        return {f"{layer.key}/{name}": view.copy()
                for layer in self._layers for name, view in self.weights(layer).items()}

    def assign(self, arrays: dict[str, np.ndarray], source: str, prefix: str = "", partial: bool = False):
        """Copy weights in by key; a missing key, unknown key or wrong shape is a SpecError naming `source`."""
        problems = []
        arrays = self._current_keys(arrays, prefix)
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


    def _current_keys(self, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        """The arrays with keys of earlier files renamed: an inline wrapped layer's weights were keyed without
        its level (`td/kernel`, now `td/dense/kernel`)."""
        renamed = {f"{layer.former_key}/{name}"[len(prefix):]: f"{layer.key}/{name}"[len(prefix):]
                   for layer in self._layers if layer.former_key is not None and layer.key.startswith(prefix)
                   for name in layer.weight_shapes}
        if not renamed:
            return arrays
        return {renamed[key] if key in renamed and renamed[key] not in arrays else key: array
                for key, array in arrays.items()}


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")

