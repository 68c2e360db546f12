"""Adapting Normalization layers to the training data before a fresh run trains, as Keras' `adapt` does.

A Normalization without a given `mean` and `variance` holds them as non-trainable weights, with `count`, the
number of values they summarize; until adapted they hold count 0, mean 0 and variance 1. adapt() runs the
graph in inference mode over the training data, batch by batch, and gathers the statistics of what each such
layer receives, at every call of it, inside sub-models and wrappers too. Only the nodes that lead to one of
those layers run: a Normalization reading a graph input directly costs one pass over that input.

Statistics are merged batch by batch in float64 (Chan et al.'s parallel update of mean and sum of squared
deviations), so one pass gives what numpy's mean and var of all the data at once give. A Normalization
behind another unadapted one sees its input as that one leaves it before adaptation: unchanged.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np

from ..graph import Graph, GraphLayer, LayerCall, ModelCall, WrapperCall
from ..io.data import Dataset
from ..layers.normalization import Normalization
from ..runtime.parameters import Parameters

# Input values per batch of the pass (16 MB of float32 inputs)
BATCH_VALUES = 1 << 22


class Moments:
    """Count, mean and sum of squared deviations of the values seen, per position of the kept axes."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Union[float, np.ndarray] = 0.0
        self.squares: Union[float, np.ndarray] = 0.0

    def add(self, x: np.ndarray, kept: tuple[int, ...]):
        """Merges in x (with its batch axis), reduced over every axis but `kept` (indices without the batch)."""
        reduce = tuple(a for a in range(x.ndim) if a - 1 not in kept)
        count = math.prod(x.shape[a] for a in reduce)
        if count == 0:
            return
        x = x.astype(np.float64)
        mean = x.mean(axis=reduce, keepdims=True)
        squares = ((x - mean) ** 2).sum(axis=reduce)
        mean = mean.reshape(squares.shape)
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.squares = self.squares + squares + delta ** 2 * (self.count * count / total)
        self.count = total

    @property
    def variance(self) -> Union[float, np.ndarray]:
        """Biased, as Keras' adapt and numpy's var compute it."""
        return self.squares / self.count


def unadapted(graph: Graph, params: Parameters) -> list[LayerCall]:
    """The graph's Normalization layers whose statistics are still to be adapted (inside sub-models too): those
    holding their initial count 0, mean 0 and variance 1. (Keras' adapt leaves count at 0: statistics loaded
    from Keras are not adapted again.)"""
    def initial(weights: dict[str, np.ndarray]) -> bool:
        return weights["count"] == 0 and not weights["mean"].any() and bool((weights["variance"] == 1).all())
    return [layer for layer in graph.all_layers()
            if isinstance(layer.config, Normalization) and "count" in layer.weight_shapes
            and initial(params.weights(layer))]


def adapt(graph: Graph, params: Parameters, data: Dataset):
    """Writes the mean, variance and count of every unadapted Normalization layer from the inputs of `data`."""
    layers = unadapted(graph, params)
    if not layers or data.rows == 0:
        return
    gathering = _Gathering(params, layers)
    row_values = max(1, sum(math.prod(shape) for shape in graph.inputs.values()))
    step = max(1, BATCH_VALUES // row_values)
    for start in range(0, data.rows, step):
        batch = data.take(slice(start, start + step))
        gathering.run(graph, [batch.inputs[name] for name in graph.inputs], wanted=())
    for layer, moments in gathering.moments.items():
        if moments.count:
            weights = params.weights(layer)
            weights["mean"][...] = moments.mean
            weights["variance"][...] = moments.variance
            weights["count"][...] = moments.count


class _Gathering:
    """Runs graphs in inference mode, adding what each gathered layer receives to its Moments."""

    def __init__(self, params: Parameters, layers: list[LayerCall]):
        self.params = params
        self.moments = {layer: Moments() for layer in layers}
        self._holds: dict[GraphLayer, bool] = {}

    def holds(self, layer: GraphLayer) -> bool:
        """Whether the layer is, or applies somewhere inside it, a layer being gathered."""
        if layer not in self._holds:
            self._holds[layer] = layer in self.moments or any(self.holds(c) for c in layer.children())
        return self._holds[layer]

    def run(self, graph: Graph, xs: list[np.ndarray], wanted) -> dict[str, np.ndarray]:
        """The values of the tensors in `wanted` and of everything that leads to a gathered layer."""
        needed, nodes = set(wanted), []
        for node in reversed(graph.nodes):
            if needed.intersection(node.outputs) or self.holds(node.layer):
                nodes.append(node)
                needed.update(node.inputs)
        values = dict(zip(graph.inputs, xs))
        for node in reversed(nodes):
            y = self.call(node.layer, [values[t] for t in node.inputs])
            values.update(zip(node.outputs, y if len(node.outputs) > 1 else (y,)))  # several: NAME.0, NAME.1, ...
        return values

    def call(self, layer: GraphLayer, xs: list[np.ndarray]) -> np.ndarray:
        """One call's output in inference mode, gathering on the way."""
        if layer in self.moments:
            assert isinstance(layer, LayerCall) and isinstance(layer.config, Normalization)
            self.moments[layer].add(xs[0], layer.config.kept(xs[0].ndim - 1))
        if isinstance(layer, ModelCall) and self.holds(layer):
            graph = layer.graph
            return self.run(graph, xs, wanted=graph.outputs)[graph.outputs[0]]
        if isinstance(layer, WrapperCall) and layer.inner is not None and self.holds(layer):
            inner = layer.inner
            return layer.config.forward_around(lambda ys, training: (self.call(inner, ys), None), xs, False)[0]
        return layer.forward(self.params, xs, False)[0]
