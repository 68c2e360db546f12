"""The compiled graph: inputs, nodes in an order where each comes after what it reads, outputs; and running
it: forward over the nodes in order, backward in reverse."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import numpy as np

from ..errors import did_you_mean
from ..layers import Shape, Training, TrainingFlag
from .nodes import GraphLayer, LayerCall, Node

FLOAT32_BYTES = 4


class Tape(list):
    """What a forward pass keeps for backward, one entry per node; and the masks of the graph's outputs
    (Keras' masking: a loss ignores the masked positions)."""
    masks: dict[str, np.ndarray]

    def __init__(self, masks: Optional[dict[str, np.ndarray]] = None):
        super().__init__()
        self.masks = masks or {}


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

    def walk(self) -> list[GraphLayer]:
        """Every layer, model and wrapper once, descending into what each applies, in spec order."""
        return list(self._walked[0])

    def all_layers(self) -> list[LayerCall]:
        """Each layer that can hold weights, once; a weight's key is layer.key/name."""
        return [layer for layer in self.walk() if isinstance(layer, LayerCall)]

    def weight_shapes(self) -> dict[str, Shape]:
        return {f"{layer.key}/{name}": shape
                for layer in self.all_layers() for name, shape in layer.weight_shapes.items()}

    def count_params(self, trainable: bool | None = None) -> int:
        return sum(math.prod(shape) for layer in self.all_layers() for name, shape in layer.weight_shapes.items()
                   if trainable is None or self.learns(layer, name) == trainable)

    def learns(self, layer: LayerCall, weight: str) -> bool:
        """Whether training changes this weight of the layer through its gradient."""
        return self.is_trainable(layer) and weight not in layer.config.state_weights

    def is_trainable(self, layer: GraphLayer) -> bool:
        """A layer trains unless it, or a model or wrapper that holds it, is frozen (the holders on the first
        path to it in walk order)."""
        return layer.trainable and layer not in self._walked[1]

    @functools.cached_property  # a compiled Graph never changes: one walk serves every later question
    def _walked(self) -> tuple[tuple[GraphLayer, ...], frozenset[GraphLayer]]:
        """Every layer once in walk order, and those held by a frozen model or wrapper."""
        seen: dict[GraphLayer, None] = {}  # layers hash by identity
        held_by_frozen: set[GraphLayer] = set()

        def visit(layer: GraphLayer, holders_trainable: bool):
            if layer not in seen:
                seen[layer] = None
                if not holders_trainable:
                    held_by_frozen.add(layer)
                for child in layer.children():
                    visit(child, holders_trainable and layer.trainable)
        for layer in self.layers.values():
            visit(layer, True)
        return tuple(seen), frozenset(held_by_frozen)

    def training_step_bytes(self, batch_size: int) -> int:
        """About how many bytes one training step on `batch_size` rows needs, every value a float32:

            4 bytes × (4 × parameters + batch_size × (input values + values kept per row))

        Each weight is held four times: its value, its gradient and two optimizer slots (Adam's m and v).
        A row keeps its input values, and for every node its output and as much again for what its
        backward reads (GraphLayer.values_kept), inside sub-models and wrappers too. Passing buffers
        (im2col chunks, gradients on their way back) are left out: the figure tells a model that cannot
        fit from one that may; it is not a budget."""
        per_row = sum(math.prod(shape) for shape in self.inputs.values()) + self.values_kept_per_row()
        return FLOAT32_BYTES * (4 * self.count_params() + batch_size * per_row)

    def values_kept_per_row(self) -> int:
        """Values one row's forward pass keeps until backward: what every node keeps."""
        return sum(node.layer.values_kept(node.output_values()) for node in self.nodes)

    def id_limits(self, tensor: str) -> list[int]:
        """The id range of every layer taking ids (Embedding) that reads `tensor`, inside sub-models too."""
        return [limit for node in self.nodes for position, name in enumerate(node.inputs) if name == tensor
                for limit in node.layer.id_limits(position)]

    def get_layer(self, name: str) -> GraphLayer:
        if name in self.layers:
            return self.layers[name]
        for layer in self.all_layers():
            if layer.key == name:
                return layer
        raise KeyError(f"no layer '{name}'{did_you_mean(name, self.layers)}")

    # -- running it -------------------------------------------------------------------------------------
    def forward(self, params, inputs: dict[str, np.ndarray], training: TrainingFlag):
        """Every tensor's value, and the tape backward() needs. `training=True` is a Training of seed 0, step 0."""
        if training is True:
            training = Training()
        if self._carries_masks:
            return self._forward_masked(params, inputs, training)
        values = dict(inputs)
        tape = Tape()
        for i, node in enumerate(self.nodes):
            y, cache = node.layer.forward(params, [values[t] for t in node.inputs], training and training.at(i))
            if len(node.outputs) == 1:
                values[node.outputs[0]] = y
            else:
                values.update(zip(node.outputs, y))
            tape.append(cache)
        return values, tape

    @functools.cached_property
    def _carries_masks(self) -> bool:
        """Whether a layer of it makes masks (Embedding with mask_zero, Masking): then every node passes them."""
        return any(node.layer.makes_masks() for node in self.nodes)

    def _forward_masked(self, params, inputs: dict[str, np.ndarray], training: Union[Training, Literal[False]]):
        """forward, with each tensor's mask going from node to node as Keras propagates them."""
        values = dict(inputs)
        masks: dict[str, np.ndarray] = {}
        tape = Tape(masks)
        for i, node in enumerate(self.nodes):
            y, cache, made = node.layer.forward_masked(params, [values[t] for t in node.inputs],
                                                       training and training.at(i), [masks.get(t) for t in node.inputs])
            values.update(zip(node.outputs, y if len(node.outputs) > 1 else (y,)))
            masks.update((tensor, mask) for tensor, mask in zip(node.outputs, made) if mask is not None)
            tape.append(cache)
        tape.masks = {name: masks[name] for name in self.outputs if name in masks}
        return values, tape

    def backward(self, params, tape: list, output_grads: dict[str, np.ndarray],
                 need_inputs: tuple[bool, ...] | None = None) -> list:
        """Add every weight's gradient into params' gradients; return the gradient of each graph input (None
        where `need_inputs` says it is not wanted: the default for a top-level graph's inputs). A node with
        several outputs gets the list of their gradients, None for those no loss reaches."""
        plan = _gradient_plan(self, need_inputs or (False,) * len(self.inputs))
        grads = dict(output_grads)
        for node, cache, (run, need_dx) in zip(reversed(self.nodes), reversed(tape), reversed(plan)):
            dy: Union[np.ndarray, list, None]
            if len(node.outputs) == 1:
                dy = grads.pop(node.outputs[0], None)
            else:
                dys = [grads.pop(tensor, None) for tensor in node.outputs]
                dy = None if all(d is None for d in dys) else dys
            if dy is None or not run:
                continue  # nothing downstream reaches a loss, or nothing upstream can learn from it
            for tensor, dx in zip(node.inputs, node.layer.backward(params, cache, dy, need_dx)):
                if dx is not None:
                    # never in place: a backward may hand the same array to several inputs (Add)
                    grads[tensor] = grads[tensor] + dx if tensor in grads else dx
        return [grads.get(name) for name in self.inputs]


@functools.lru_cache(maxsize=None)  # a compiled Graph never changes; it hashes by identity
def _gradient_plan(graph: Graph, need_inputs: tuple[bool, ...]) -> tuple[tuple[bool, bool], ...]:
    """For each node: (run its backward at all, does any of its inputs need a gradient)."""
    needed = {name for name, need in zip(graph.inputs, need_inputs) if need}
    plan = []
    for node in graph.nodes:
        need_dx = any(tensor in needed for tensor in node.inputs)
        learns = node.layer.learns()
        if need_dx or learns:
            needed.update(node.outputs)
        plan.append((need_dx or learns, need_dx))
    return tuple(plan)
