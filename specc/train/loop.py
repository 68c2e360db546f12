"""The fit / evaluate / predict loops over mini-batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..data import Dataset
from ..execute import Parameters, backward, forward
from ..graph import Graph
from .losses import LOSSES
from .metrics import metric_function
from .optimizers import Optimizer
from .progress import Progress


@dataclass
class Objective:
    """What training minimizes and reports, per output: a loss, its weight, named metrics."""
    losses: dict[str, str]
    weights: dict[str, float]
    metrics: dict[str, dict[str, Callable]]

    @classmethod
    def from_compile(cls, compile_spec, graph: Graph) -> "Objective":
        outputs = graph.outputs
        loss = compile_spec.loss
        losses = {o: loss[o] if isinstance(loss, dict) else loss for o in outputs}
        given = compile_spec.loss_weights
        if given is None:
            weights = {o: 1.0 for o in outputs}
        elif isinstance(given, list):
            weights = dict(zip(outputs, given))
        else:
            weights = {o: given.get(o, 1.0) for o in outputs}
        wanted = compile_spec.metrics
        metrics = {}
        for o in outputs:
            names = wanted.get(o, []) if isinstance(wanted, dict) else wanted
            metrics[o] = {("accuracy" if n == "acc" else n): metric_function(n, losses[o], graph.shapes[o])
                          for n in names}
        return cls(losses, weights, metrics)

    def log_name(self, output: str, what: str, outputs: list[str]) -> str:
        """Keras' history names: `loss`, `accuracy` for one output; `out_loss`, `out_accuracy` for several."""
        return what if len(outputs) == 1 else f"{output}_{what}"


def batches(rows: int, batch_size: int, order: Optional[np.ndarray] = None):
    for start in range(0, rows, batch_size):
        index = slice(start, start + batch_size) if order is None else np.sort(order[start:start + batch_size])
        yield index


def train_step(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, batch: Dataset):
    """One optimizer step; returns (total loss, per-output losses, outputs)."""
    values, tape = forward(graph, params, batch.inputs, training=True)
    total, per_output, output_grads = 0.0, {}, {}
    for out in graph.outputs:
        loss, grad = LOSSES[objective.losses[out]](values[out], batch.targets[out])
        weight = objective.weights[out]
        per_output[out] = loss
        total += weight * loss
        output_grads[out] = grad * weight if weight != 1.0 else grad
    params.grads[...] = 0
    backward(graph, params, tape, output_grads)
    optimizer.step(params.trainable, params.trainable_grads)
    return total, per_output, {o: values[o] for o in graph.outputs}


class RunningLogs:
    """Sample-weighted means of losses and metrics over the batches of an epoch."""

    def __init__(self, graph: Graph, objective: Objective, prefix: str = ""):
        self.graph, self.objective, self.prefix = graph, objective, prefix
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, total: float, per_output: dict, outputs: dict, targets: dict, rows: int):
        entries = {"loss": total}
        names = self.graph.outputs
        if len(names) > 1:
            entries.update({f"{o}_loss": per_output[o] for o in names})
        for o in names:
            for metric, fn in self.objective.metrics[o].items():
                entries[self.objective.log_name(o, metric, names)] = fn(outputs[o], targets[o])
        for k, v in entries.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * rows
        self.count += rows

    def means(self) -> dict[str, float]:
        return {self.prefix + k: v / max(self.count, 1) for k, v in self.sums.items()}


def evaluate(graph: Graph, params: Parameters, objective: Objective, data: Dataset, batch_size: int,
             prefix: str = "") -> dict[str, float]:
    logs = RunningLogs(graph, objective, prefix)
    for index in batches(data.rows, batch_size):
        batch = data.take(index)
        values, _ = forward(graph, params, batch.inputs, training=False)
        total, per_output = 0.0, {}
        for out in graph.outputs:
            per_output[out], _ = LOSSES[objective.losses[out]](values[out], batch.targets[out])
            total += objective.weights[out] * per_output[out]
        logs.add(total, per_output, values, batch.targets, batch.rows)
    return logs.means()


def predict(graph: Graph, params: Parameters, inputs: dict[str, np.ndarray], batch_size: int) -> dict:
    rows = len(next(iter(inputs.values())))
    parts: dict[str, list] = {o: [] for o in graph.outputs}
    for index in batches(rows, batch_size):
        values, _ = forward(graph, params, {k: v[index] for k, v in inputs.items()}, training=False)
        for o in graph.outputs:
            parts[o].append(values[o])
    return {o: np.concatenate(p) for o, p in parts.items()}


def fit(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, train: Dataset,
        validation: Optional[Dataset], epochs: int, batch_size: int, shuffle: bool, seed: int,
        progress: Optional[Progress] = None) -> list[dict[str, float]]:
    """Train for `epochs`; one dict of logs per epoch (training means, then `val_` entries)."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own: changing the model does not reshuffle data
    history = []
    for epoch in range(epochs):
        if progress:
            progress.epoch_begin(epoch)
        order = rng.permutation(train.rows) if shuffle else None
        logs = RunningLogs(graph, objective)
        for step, index in enumerate(batches(train.rows, batch_size, order)):
            batch = train.take(index)
            total, per_output, outputs = train_step(graph, params, optimizer, objective, batch)
            logs.add(total, per_output, outputs, batch.targets, batch.rows)
            if progress:
                progress.batch_end(step, logs.means())
        epoch_logs = logs.means()
        if validation is not None:
            epoch_logs.update(evaluate(graph, params, objective, validation, batch_size, prefix="val_"))
        history.append(epoch_logs)
        if progress:
            progress.epoch_end(epoch_logs)
    return history
