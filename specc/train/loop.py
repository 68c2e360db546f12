"""The fit / evaluate / predict loops over mini-batches."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..runtime.blas import managed
from ..io.data import Dataset
from ..runtime.execute import Parameters, backward, forward
from ..graph import Graph
from .callbacks import Callback, RunFiles, Trainer
from .checkpoint import TrainState
from .losses import LOSSES
from .metrics import metric_function
from .optimizers import NonFiniteGradients, Optimizer
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


def losses(graph: Graph, objective: Objective, values: dict, batch: Dataset):
    """(total weighted loss, per-output losses, per-output loss gradients) of one batch."""
    total, per_output, output_grads = 0.0, {}, {}
    for out in graph.outputs:
        loss, grad = LOSSES[objective.losses[out]](values[out], batch.targets[out], batch.sample_weight)
        weight = objective.weights[out]
        per_output[out] = loss
        total += weight * loss
        output_grads[out] = grad * weight if weight != 1.0 else grad
    return total, per_output, output_grads


def train_step(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, batch: Dataset):
    """One optimizer step; returns (total loss, per-output losses, outputs).

    A loss that is not finite takes no step (the caller stops on it); gradients that are not finite raise
    NonFiniteGradients carrying the loss, and take no step either."""
    values, tape = forward(graph, params, batch.inputs, training=True)
    total, per_output, output_grads = losses(graph, objective, values, batch)
    outputs = {o: values[o] for o in graph.outputs}
    if not math.isfinite(total):
        return total, per_output, outputs
    params.grads[...] = 0
    backward(graph, params, tape, output_grads)
    try:
        optimizer.step(params.trainable, params.trainable_grads)
    except NonFiniteGradients as e:
        e.loss = total
        raise
    return total, per_output, outputs


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

    def state(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}

    def restore(self, state: dict):
        self.sums, self.count = dict(state.get("sums", {})), state.get("count", 0)


@managed()  # BLAS threads per product while the loop runs
def evaluate(graph: Graph, params: Parameters, objective: Objective, data: Dataset, batch_size: int,
             prefix: str = "") -> dict[str, float]:
    logs = RunningLogs(graph, objective, prefix)
    for index in batches(data.rows, batch_size):
        batch = data.take(index)
        values, _ = forward(graph, params, batch.inputs, training=False)
        total, per_output, _ = losses(graph, objective, values, batch)
        logs.add(total, per_output, values, batch.targets, batch.rows)
    return logs.means()


@managed()
def predict(graph: Graph, params: Parameters, inputs: dict[str, np.ndarray], batch_size: int) -> dict:
    rows = len(next(iter(inputs.values())))
    parts: dict[str, list] = {o: [] for o in graph.outputs}
    for index in batches(rows, batch_size):
        values, _ = forward(graph, params, {k: v[index] for k, v in inputs.items()}, training=False)
        for o in graph.outputs:
            parts[o].append(values[o])
    return {o: np.concatenate(p) for o, p in parts.items()}


def _train(graph, params, optimizer, objective, train, validation, epochs, batch_size, shuffle, progress,
           trainer, state, stop, say, pending) -> bool:
    """The epochs of fit(); True when the run stopped before its end (interrupted or NaN): no train end."""
    rng = np.random.default_rng()
    while state.epoch < epochs:
        epoch = state.epoch
        rng.bit_generator.state = state.rng
        order = rng.permutation(train.rows) if shuffle else None
        logs = RunningLogs(graph, objective)
        logs.restore(state.running)
        if progress:
            progress.epoch_begin(epoch, state.step)
        for step, index in enumerate(batches(train.rows, batch_size, order)):
            if step < state.step:
                continue
            batch = train.take(index)
            try:
                total, per_output, outputs = train_step(graph, params, optimizer, objective, batch)
                bad = None if math.isfinite(total) else total
            except NonFiniteGradients as e:
                total, bad = e.loss, "gradients"
            if bad is not None:
                if bad == "gradients":  # the loss is finite, but its gradients are not
                    kind = "too large for float32" if np.isfinite(params.trainable_grads).all() else "nan or inf"
                    what = f"the gradients became {kind} (loss {total:.4g})"
                else:
                    what = f"loss became {bad}"
                message = f"{what} at epoch {epoch + 1}, batch {step + 1}; stopped; the last good weights are kept"
                state.stopped = {"reason": "nan", "message": message, "epoch": epoch + 1, "batch": step + 1}
                say(message, always=True)
                return True
            logs.add(total, per_output, outputs, batch.targets, batch.rows)
            state.step = step + 1
            if progress:
                progress.batch_end(step, logs.means(), batch.rows)
            if stop is not None and stop():
                state.running = logs.state()
                trainer.write_run_files()
                state.stopped = {"reason": "interrupted", "message": f"interrupted at {state.describe()}",
                                 "epoch": epoch + 1, "batch": state.step}
                return True
        epoch_logs = logs.means()
        if validation is not None:
            epoch_logs.update(evaluate(graph, params, objective, validation, batch_size, prefix="val_"))
        state.history.append(epoch_logs)
        stop_training = False
        for cb in trainer.callbacks:  # every callback sees the epoch, as in Keras, even after one said stop
            stop_training = bool(cb.on_epoch_end(epoch, epoch_logs)) or stop_training
        state.epoch, state.step, state.running, state.rng = epoch + 1, 0, {}, rng.bit_generator.state
        state.finished = stop_training or state.epoch >= epochs
        if stop_training:
            state.stopped = {"reason": "early_stopping", "message": f"stopped early after epoch {epoch + 1}",
                             "epoch": epoch + 1, "batch": None}
        for cb in trainer.callbacks:
            cb.after_epoch(epoch, epoch_logs)
        trainer.write_run_files()
        if progress:
            progress.epoch_end(epoch_logs)
        for text in pending:
            say(text)
        pending.clear()
        if stop_training:
            break
        if stop is not None and not state.finished and stop():
            state.stopped = {"reason": "interrupted", "message": f"interrupted at {state.describe()}",
                             "epoch": epoch + 1, "batch": None}
            return True
    return False


@managed()
def fit(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, train: Dataset,
        validation: Optional[Dataset], epochs: int, batch_size: int, shuffle: bool, seed: int,
        progress: Optional[Progress] = None, callbacks: list[Callback] = (), state: Optional[TrainState] = None,
        stop: Optional[Callable[[], bool]] = None, files: Optional[RunFiles] = None) -> list[dict[str, float]]:
    """Train up to epoch `epochs`; one dict of logs per epoch (training means, then `val_` entries).

    `state` continues a run where it stopped (epoch, batch, shuffling, running sums, callbacks); the weights
    and optimizer state are the caller's to restore. `stop` is asked after every batch: when it says so, the
    run stops there and its checkpoint is written. A loss or gradient that turns NaN or infinite stops the
    run before the step that would spoil the weights. Why a run stopped early is in `state.stopped`."""
    if state is None:
        state = TrainState.fresh(seed, epochs, batch_size)
    state.epochs, state.finished, state.stopped = epochs, False, None
    files = files or RunFiles(Path.cwd())
    pending: list[str] = []  # callbacks' words at the end of an epoch, shown after its line
    trainer = Trainer(params, optimizer, state, list(callbacks), files, pending.append)
    for cb in trainer.callbacks:
        cb.bind(trainer)
        cb.on_train_begin()
    trainer.restore_callbacks()
    say = progress.message if progress else (lambda text, always=False: None)
    # numbers that overflow are caught (the loss or the gradients turn non-finite) and said, not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        if _train(graph, params, optimizer, objective, train, validation, epochs, batch_size, shuffle, progress,
                  trainer, state, stop, say, pending):
            return state.history
    trainer.say = say
    for cb in trainer.callbacks:
        cb.on_train_end()
    return state.history
