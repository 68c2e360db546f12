"""What a layer's weight arguments ask of training: regularizer penalties added to the loss (and their
gradients to the weights' gradients) before each optimizer step, constraints applied after it.

Only weights that training changes are regularized and constrained, as in Keras (a frozen layer's
regularizer adds nothing)."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..layers.constraints import Constraint, constraint
from ..layers.regularizers import Regularizer, regularizer
from ..runtime.parameters import Parameters


class WeightRules:
    """The regularized and the constrained weights of a graph, found once: (weight, its gradient, rule)."""

    def __init__(self, graph: Graph, params: Parameters):
        self.penalized: list[tuple[np.ndarray, np.ndarray, Regularizer]] = []
        self.constrained: list[tuple[np.ndarray, Constraint]] = []
        for layer in graph.all_layers():
            weights, grads = params.weights(layer), params.gradients(layer)
            for name in layer.weight_shapes:
                if not graph.learns(layer, name):
                    continue
                rule = layer.config.weight_argument(name, "regularizer")
                if rule is not None:
                    self.penalized.append((weights[name], grads[name], regularizer(rule)))
                rule = layer.config.weight_argument(name, "constraint")
                if rule is not None:
                    self.constrained.append((weights[name], constraint(rule)))

    def penalty(self) -> float:
        """The sum of the penalties."""
        return sum(rule.penalty(weight) for weight, _, rule in self.penalized)

    def penalize(self) -> float:
        """Add each regularizer's gradient into its weight's gradient; the sum of the penalties."""
        total = 0.0
        for weight, grad, rule in self.penalized:
            total += rule.penalty(weight)
            grad += rule.gradient(weight).astype(grad.dtype)
        return total

    def constrain(self):
        for weight, rule in self.constrained:
            rule.apply(weight)
