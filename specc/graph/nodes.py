"""The compiled graph: layers, the nodes that call them, and every tensor's shape."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..errors import KeyPath
from ..layers import Layer, Shape, show_shape


@dataclass(eq=False)
class Node:
    """One call of a layer: which tensors went in, which came out, and their shapes."""
    layer: "GraphLayer"
    index: int                 # 0, 1, 2 ... in the order the spec calls the layer
    inputs: list[str]
    output: str
    input_shapes: list[Shape]
    output_shape: Shape
    path: KeyPath              # the spec entry that makes this call


@dataclass(eq=False)
class GraphLayer:
    """A layer or sub-model as defined once in a spec; called at one or more nodes, with one set of weights."""
    name: str
    key: str                   # prefix of its weights in a weights file: "dense_1", "vision_model/conv_1"
    config: Union[Layer, "Graph"]
    path: KeyPath
    trainable: bool = True
    weight_shapes: dict[str, Shape] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inner: Optional["GraphLayer"] = None   # what a TimeDistributed wrapper applies at every step

    @property
    def is_model(self) -> bool:
        return isinstance(self.config, Graph)

    @property
    def type_name(self) -> str:
        if self.inner is not None:
            return f"TimeDistributed({self.inner.type_name})"
        return "Model" if self.is_model else type(self.config).__name__

    def count_params(self) -> int:
        if self.inner is not None:
            return self.inner.count_params()
        if self.is_model:
            return self.config.count_params()
        return sum(int(np.prod(s)) for s in self.weight_shapes.values())

    def get_input_shape_at(self, index: int) -> Union[Shape, list[Shape]]:
        shapes = self._node(index).input_shapes
        return shapes[0] if len(shapes) == 1 else shapes

    def get_output_shape_at(self, index: int) -> Shape:
        return self._node(index).output_shape

    @property
    def input_shape(self) -> Union[Shape, list[Shape]]:
        return self._agreed("input_shape", self.get_input_shape_at)

    @property
    def output_shape(self) -> Shape:
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


@dataclass(eq=False)
class Graph:
    """A functional model: inputs, nodes in an order where each comes after what it reads, outputs."""
    name: str
    inputs: dict[str, Shape]
    input_dtypes: dict[str, str]
    nodes: list[Node]
    outputs: list[str]
    layers: dict[str, GraphLayer]   # every layer called in this graph (including models from outer scopes)
    shapes: dict[str, Shape]        # every tensor

    def all_layers(self) -> list[GraphLayer]:
        """Each layer with weights, once, descending into sub-models; a weight's key is layer.key/name."""
        seen: dict[int, GraphLayer] = {}

        def visit(graph: Graph):
            for layer in graph.layers.values():
                visit_layer(layer)

        def visit_layer(layer: GraphLayer):
            if id(layer) in seen:
                return
            seen[id(layer)] = layer
            if layer.inner is not None:
                visit_layer(layer.inner)
            if layer.is_model:
                visit(layer.config)
        visit(self)
        return [layer for layer in seen.values() if not layer.is_model and layer.inner is None]

    def weight_shapes(self) -> dict[str, Shape]:
        return {f"{layer.key}/{name}": shape
                for layer in self.all_layers() for name, shape in layer.weight_shapes.items()}

    def count_params(self, trainable: bool | None = None) -> int:
        return sum(int(np.prod(shape)) for layer in self.all_layers()
                   if trainable is None or self.is_trainable(layer) == trainable
                   for shape in layer.weight_shapes.values())

    def is_trainable(self, layer: GraphLayer) -> bool:
        """A layer trains unless it, or a model that holds it, is frozen."""
        return layer.trainable and all(owner.trainable for owner in self._owners(layer))

    def _owners(self, target: GraphLayer) -> list[GraphLayer]:
        def path_to(graph: Graph) -> list[GraphLayer] | None:
            for layer in graph.layers.values():
                found = path_within(layer)
                if found is not None:
                    return found
            return None

        def path_within(layer: GraphLayer) -> list[GraphLayer] | None:
            if layer is target:
                return []
            if layer.inner is not None:
                inner = path_within(layer.inner)
                return None if inner is None else [layer, *inner]
            if layer.is_model:
                inner = path_to(layer.config)
                return None if inner is None else [layer, *inner]
            return None
        return path_to(self) or []

    def id_limits(self, tensor: str) -> list[int]:
        """`input_dim` of every layer taking ids (Embedding) that reads `tensor`, inside sub-models too."""
        limits = []
        for node in self.nodes:
            for position, name in enumerate(node.inputs):
                if name != tensor:
                    continue
                layer = node.layer.inner or node.layer
                if layer.is_model:
                    limits += layer.config.id_limits(list(layer.config.inputs)[position])
                elif getattr(layer.config, "input_dim", None) is not None:
                    limits.append(layer.config.input_dim)
        return limits

    def get_layer(self, name: str) -> GraphLayer:
        if name in self.layers:
            return self.layers[name]
        for layer in self.all_layers():
            if layer.key == name:
                return layer
        from ..errors import did_you_mean
        raise KeyError(f"no layer '{name}'{did_you_mean(name, self.layers)}")
